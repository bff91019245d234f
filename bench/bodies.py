"""Request bodies from the model's manifest: typical rows, one number feature left to wrk to vary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOKEN = "__N__"  # load.lua puts a number unique to the request in its place
ITEM = "__I__"  # load.lua puts a random catalogue item in its place


def varying_feature(inputs: list[dict[str, Any]]) -> str:
    """A number feature: any value is valid, so a counter makes every row distinct."""
    numbers = [f for f in inputs if f["type"] == "number"]
    if not numbers:
        raise SystemExit("bench: the model has no number feature to vary for cache misses")
    return numbers[0]["name"]


def row(inputs: list[dict[str, Any]], vary: bool) -> dict[str, Any]:
    values = {f["name"]: f["typical"] for f in inputs}
    if vary:
        values[varying_feature(inputs)] = TOKEN
    return values


def write(folder: Path, inputs: list[dict[str, Any]]) -> dict[str, Path]:
    """One file per request shape: 1 row varied (misses), 1 row fixed (hits), 100 rows varied."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = {
        "miss1": [row(inputs, vary=True)],
        "hit1": [row(inputs, vary=False)],
        "batch100": [row(inputs, vary=True) for _ in range(100)],
    }
    paths = {}
    for name, rows in shapes.items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps({"instances": rows}))
    return paths


def write_recommendation(folder: Path, items: list[str]) -> tuple[Path, Path]:
    """A visitor's request (3 liked items, drawn per request by load.lua) and the catalogue to draw from."""
    body, catalogue = folder / "rec.json", folder / "rec-items.txt"
    body.write_text(json.dumps({"instances": [{"items": [ITEM] * 3, "k": 10}]}))
    catalogue.write_text("\n".join(items) + "\n")
    return body, catalogue
