"""Realistic rows from a model's manifest schema (`GET /v1/models/{m}`), and the V2 body for a table."""

from __future__ import annotations

import random
from typing import Any

V2_TYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}


class RowMaker:
    """Draws rows within each feature's training range and categories; numbers make almost every row new."""

    def __init__(self, inputs: list[dict[str, Any]], seed: int | None = None) -> None:
        self.inputs = inputs
        self._random = random.Random(seed)

    def row(self) -> dict[str, Any]:
        return {feature["name"]: self._value(feature) for feature in self.inputs}

    def rows(self, count: int) -> list[dict[str, Any]]:
        return [self.row() for _ in range(count)]

    def _value(self, feature: dict[str, Any]) -> Any:
        kind, rnd = feature["type"], self._random
        low, high = feature.get("minimum"), feature.get("maximum")
        if kind == "string":
            return rnd.choice(feature.get("categories") or [feature.get("typical") or "x"])
        if kind == "boolean":
            return rnd.random() < 0.5
        if low is None or high is None:
            return feature.get("typical") or 0
        if kind == "integer":
            return rnd.randint(int(low), int(high))
        return round(rnd.uniform(low, high), 6)


def v1_body(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"instances": rows}


def v2_body(inputs: list[dict[str, Any]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One tensor per feature, shape [N], as docs/CONTRACT.md maps a table."""
    return {
        "inputs": [
            {
                "name": f["name"],
                "shape": [len(rows)],
                "datatype": V2_TYPES[f["type"]],
                "data": [row[f["name"]] for row in rows],
            }
            for f in inputs
        ]
    }
