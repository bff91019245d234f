"""CSV tables against a model's schema: what is missing or wrong, and rows as the API wants them."""

from __future__ import annotations

from typing import Any

import pandas as pd

TRUE, FALSE = {"true", "1", "yes", "t", "y"}, {"false", "0", "no", "f", "n"}


def problems(frame: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
    """Everything that would make rows fail, as sentences; empty when the table fits the schema."""
    found = []
    names = [f["name"] for f in manifest["inputs"]]
    missing = [name for name in names if name not in frame.columns]
    if missing:
        found.append(f"missing columns: {', '.join(missing)}")
    for feature in manifest["inputs"]:
        if feature["name"] in frame.columns:
            found.extend(_column_problems(frame[feature["name"]], feature))
    return found


def extra_columns(frame: pd.DataFrame, manifest: dict[str, Any]) -> list[str]:
    names = {f["name"] for f in manifest["inputs"]}
    return [str(c) for c in frame.columns if c not in names]


def _column_problems(column: pd.Series, feature: dict[str, Any]) -> list[str]:
    name, kind = feature["name"], feature["type"]
    present = column.dropna()
    found = []
    if len(present) < len(column) and not feature.get("nullable"):
        found.append(
            f"{name}: {len(column) - len(present)} empty value(s), and the model needs one in every row"
        )
    if kind in ("number", "integer") and not pd.api.types.is_numeric_dtype(present):
        bad = present[pd.to_numeric(present, errors="coerce").isna()]
        found.append(f"{name}: not a number in {len(bad)} row(s), e.g. {bad.iloc[0]!r}")
    elif kind == "boolean":
        bad = present[~present.astype(str).str.lower().isin(TRUE | FALSE)]
        if len(bad):
            found.append(f"{name}: not true/false in {len(bad)} row(s), e.g. {bad.iloc[0]!r}")
    elif kind == "string" and feature.get("reject_unknown") and feature.get("categories"):
        bad = present[~present.astype(str).isin(feature["categories"])]
        if len(bad):
            found.append(f"{name}: unknown value(s) {sorted(bad.astype(str).unique())[:5]}")
    return found


def rows(frame: pd.DataFrame, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """JSON-ready rows in schema order: numbers as numbers, booleans as booleans, empty cells as null."""
    converters = {f["name"]: _converter(f["type"]) for f in manifest["inputs"]}
    records = frame[list(converters)].astype(object).where(frame[list(converters)].notna(), None)
    return [
        {name: convert(row[name]) for name, convert in converters.items()} for _, row in records.iterrows()
    ]


def _converter(kind: str) -> Any:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if kind == "integer":
            return int(float(value)) if float(value).is_integer() else float(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            return str(value).lower() in TRUE
        return str(value)

    return convert
