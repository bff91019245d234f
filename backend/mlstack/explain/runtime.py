"""`:explain` behind the Runtime interface: each row's prediction with its explanation as a further output.

So explanations pass the core's one flow as predictions do: the same validation, the cache in a key space
of their own (same version rules), micro-batches on the worker thread. Each row's answer depends on that
row only, so the rows of concurrent requests are explained in one call and handed back by index.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from mlstack.errors import BadInput
from mlstack.explain.loading import Explainer
from mlstack.explain.recommend import ExplainedItem, explain_recommendations
from mlstack.explain.result import Explained, RowExplanation
from mlstack.recommend.model import Ranked
from mlstack.recommend.runtime import EXPLAIN_CACHE_SPACE, Query, RecommenderRuntime
from mlstack.serving.runtime import Prediction, Runtime
from mlstack.serving.validation import Rows

FLOAT32_MAX = float(np.finfo(np.float32).max)
OUT_OF_RANGE = "must be within ±3.4e38 (float32's range) to be explained"
EXPLANATIONS = "explanations"
"""The output every explaining runtime adds: one explanation per row."""
CACHE_SPACE = "explain"


class TabularExplaining:
    """A table model's explanations beside the served runtime's prediction (labels, probabilities). The
    contributions add up to the joblib pipeline's output; an ONNX-served prediction may differ from it
    within the version's publish-time parity tolerance, which each explanation then states."""

    engine = "joblib"
    inline_rows = 0  # milliseconds per call: it runs on the batcher's worker thread
    erasable = False
    outputs: tuple[str, ...] = (EXPLANATIONS,)

    def __init__(self, served: Runtime, explainer: Explainer) -> None:
        self.manifest = served.manifest
        self.explainer = explainer
        self._served = served
        permutations = explainer.permutations  # the sampling method's answers depend on its count
        self.cache_space = CACHE_SPACE if permutations is None else f"{CACHE_SPACE}-p{permutations}"
        onnx = self.manifest.onnx
        parity = onnx.tolerance if served.engine == "onnx" and onnx is not None else None
        self._served_facts = {"predicted_by": served.engine, "parity_tolerance": parity}
        # checked per request, before its rows are looked up or gathered with other requests' rows
        self.prepare: Callable[[Rows], Awaitable[Rows]] | None = (
            self._within_range if explainer.method_name is not None else self._refuse
        )

    async def _refuse(self, rows: Rows) -> Rows:
        self.explainer.explain(rows)  # an Unavailable raises NotExplainable (409) with its reason
        return rows

    async def _within_range(self, rows: Rows) -> Rows:
        """Numbers beyond float32's range: the ONNX export answers no probabilities for them, and a linear
        model's output may not even be finite in float64, so there is nothing to split into parts."""
        for i, row in enumerate(rows.values):
            for feature, value in zip(rows.features, row, strict=True):
                if type(value) is float and not -FLOAT32_MAX <= value <= FLOAT32_MAX:
                    raise BadInput(f"instances[{i}].{feature.name}", OUT_OF_RANGE)
        return rows

    def predict(self, rows: Rows) -> Prediction:
        explained = self.explainer.explain(rows)
        served = self._served.predict(rows)
        facts = {**_facts(explained), **self._served_facts}
        return Prediction(
            served.labels, served.probabilities, {EXPLANATIONS: [_row(r, facts) for r in explained.rows]}
        )


def _facts(explained: Explained) -> dict[str, Any]:
    return {
        "method": explained.method,
        "output_space": explained.output_space,
        "adds_up_to": explained.adds_up_to,
        "tolerance": explained.tolerance,
        "permutations": explained.permutations,
    }


def _row(row: RowExplanation, facts: dict[str, Any]) -> dict[str, Any]:
    contributions = [
        {
            "feature": c.feature,
            "value": c.value,
            "contribution": c.contribution,
            "imputed": c.imputed,
            "imputed_as": c.imputed_as,
        }
        for c in row.contributions
    ]
    return {
        "output": row.output,
        "base_value": row.base_value,
        "probability": row.probability,
        "explained_class": row.explained_class,
        "contributions": contributions,
        **facts,
    }


class RecommendationExplaining:
    """A recommender's explanations: the same top-k as its predictions, read from the same user snapshot,
    each item with the history items behind its score ("because you liked")."""

    engine = "joblib"
    cache_space = EXPLAIN_CACHE_SPACE
    erasable = True  # keyed by the user's id and data version, erased with the user's recommendations
    outputs: tuple[str, ...] = ("scores", "sources", EXPLANATIONS)

    def __init__(self, recommender: RecommenderRuntime) -> None:
        self.manifest = recommender.manifest
        self.inline_rows = recommender.inline_rows  # a slice more than a ranking: the same policy
        self.prepare: Callable[[Rows], Awaitable[Rows]] | None = recommender.prepare
        self._recommender = recommender

    def predict(self, rows: Rows) -> Prediction:
        answers = [self._explained(query) for query in rows.values]
        extra: dict[str, list[Any]] = {
            "scores": [ranked.scores for ranked, _ in answers],
            "sources": [ranked.source for ranked, _ in answers],
            EXPLANATIONS: [_recommendation(items) for _, items in answers],
        }
        return Prediction(labels=[ranked.items for ranked, _ in answers], extra=extra)

    def _explained(self, query: Query) -> tuple[Ranked, list[ExplainedItem]]:
        model = self._recommender.model
        taste = self._recommender.taste(query)
        if taste is None:
            ranked = model.popular(query.k)
            return ranked, [ExplainedItem(i, s, []) for i, s in zip(ranked.items, ranked.scores, strict=True)]
        return explain_recommendations(model, taste.history, query.k, taste.genres)


def _recommendation(items: list[ExplainedItem]) -> dict[str, Any]:
    return {
        "method": "recommender_items",
        "items": [{"item": item.item, "score": item.score, "because": _because(item)} for item in items],
    }


def _because(item: ExplainedItem) -> list[dict[str, Any]]:
    return [
        {"item": b.item, "contribution": b.contribution, "share": b.share, "source": b.source}
        for b in item.because
    ]
