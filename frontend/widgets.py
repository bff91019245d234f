"""Rendering helpers shared by the pages: the schema form, the probability and contribution charts, model
pickers. No HTTP."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st


def model_picker(models: list[dict[str, Any]], key: str) -> tuple[str, str | None]:
    """A model and a version (None = whatever is current)."""
    names = [m["name"] for m in models]
    left, right = st.columns([2, 1])
    name = left.selectbox("Model", names, key=f"{key}-model")
    chosen = next(m for m in models if m["name"] == name)
    current = chosen.get("current")
    labels = ["current" + (f" (v{current})" if current else "")] + [
        f"v{v}" for v in reversed(chosen["versions"])
    ]
    picked = right.selectbox("Version", labels, key=f"{key}-version")
    return name, None if picked.startswith("current") else picked.removeprefix("v")


def schema_form(manifest: dict[str, Any], key: str) -> dict[str, Any]:
    """One input per feature, generated from the manifest's schema; call inside st.form."""
    columns = st.columns(3)
    row = {}
    for i, feature in enumerate(manifest["inputs"]):
        with columns[i % 3]:
            row[feature["name"]] = feature_input(feature, f"{key}-{manifest['model']}-{feature['name']}")
    return row


def feature_input(feature: dict[str, Any], key: str) -> Any:
    name, kind, typical = feature["name"], feature["type"], feature.get("typical")
    if kind == "string":
        options = list(feature.get("categories") or [typical])
        if feature.get("nullable"):
            options.append(None)
        index = options.index(typical) if typical in options else 0
        return st.selectbox(
            name, options, index=index, key=key, format_func=lambda v: "(missing)" if v is None else v
        )
    if kind == "boolean":
        options = [True, False, None] if feature.get("nullable") else [True, False]
        return st.selectbox(
            name,
            options,
            index=options.index(bool(typical)),
            key=key,
            format_func=lambda v: "(missing)" if v is None else str(v).lower(),
        )
    hint = f"seen in training: {feature.get('minimum'):g} to {feature.get('maximum'):g}"
    if kind == "integer":
        return st.number_input(name, value=int(typical), step=1, help=hint, key=key)
    return st.number_input(name, value=float(typical), help=hint, key=key, format="%g")


def proba_chart(probabilities: dict[str, float]) -> None:
    frame = pd.DataFrame({"class": list(probabilities), "probability": list(probabilities.values())})
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("class:N", sort=None),
            tooltip=["class", alt.Tooltip("probability:Q", format=".4f")],
        )
    )
    st.altair_chart(chart, width="stretch")


SPACES = {"log_odds": "log-odds", "class_logit": "logit", "target": ""}


def contributions_chart(explanation: dict[str, Any]) -> None:
    """Why: each feature's push on the model's output as a bar, largest first, up in one colour and down
    in the other; a missing value shows what the pipeline filled in."""
    rows = [
        {
            "feature": f"{c['feature']} = {_shown(c)}",
            "contribution": c["contribution"],
            "direction": "raises" if c["contribution"] >= 0 else "lowers",
        }
        for c in sorted(explanation["contributions"], key=lambda c: -abs(c["contribution"]))
    ]
    frame = pd.DataFrame(rows)
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("contribution:Q", title=f"contribution ({_space(explanation)})"),
            y=alt.Y("feature:N", sort=None, title=None, axis=alt.Axis(labelLimit=320)),
            color=alt.Color(
                "direction:N",
                scale=alt.Scale(domain=["raises", "lowers"], range=["#d62728", "#1f77b4"]),
                legend=alt.Legend(title=None, orient="bottom"),
            ),
            tooltip=["feature", alt.Tooltip("contribution:Q", format="+.4f")],
        )
    )
    st.altair_chart(chart, width="stretch")


def explanation_caption(explanation: dict[str, Any]) -> str:
    """The sum the chart splits: base value + contributions = output, and what the output is."""
    space = _space(explanation)
    line = (
        f"Base value {explanation['base_value']:+.4f} + contributions = {explanation['output']:+.4f} {space}"
    ).rstrip()
    probability, of = explanation["probability"], explanation["explained_class"]
    if probability is not None:
        line += f", a probability of {probability:.3f} for class {of}"
    method = explanation["method"].replace("_", " ")
    return f"{line}. Method: {method}; it adds up to the {explanation['adds_up_to']} pipeline's output."


def _space(explanation: dict[str, Any]) -> str:
    return SPACES.get(explanation["output_space"], explanation["output_space"])


def _shown(contribution: dict[str, Any]) -> str:
    if contribution["imputed"]:
        return f"(missing → {contribution['imputed_as']})"
    return "(missing)" if contribution["value"] is None else f"{contribution['value']}"


def answer_facts(version: str, cache: str, latency_ms: float, engine: str | None = None) -> None:
    """`engine`: the runtime that serves the version (onnx or joblib), when the API said which."""
    columns = st.columns(4 if engine else 3)
    columns[0].metric("Model version", version)
    columns[1].metric("Cache (X-Cache)", cache)
    columns[2].metric("Round trip", f"{latency_ms:.1f} ms")
    if engine:
        columns[3].metric("Runtime", engine)
