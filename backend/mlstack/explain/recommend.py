""" "Because you liked X": the items behind each recommended item's score.

A personal score is linear in the interest weights: for item-item neighbours score(i) = Σ_h sim(h, i)·w(h),
for the factor model score(i) = Σ_h w(h)·scale(h)·(f(h)·f(i)). The term of history item h is its
contribution, exact (the terms add up to the score) and its Shapley value in the game of removing history
items. A `share` is the contribution over the score. Interests that stand for a preferred genre (its
popular films) are named as such; popular-fallback recommendations have no "because".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mlstack.recommend.model import Interests, Ranked, Recommender

TOP_BECAUSE = 3
"""Contributing items named per recommendation."""


@dataclass(frozen=True, slots=True)
class Because:
    item: str
    contribution: float
    share: float
    """contribution / score: the part of the recommendation this item accounts for."""
    source: Literal["history", "genre"]
    """In the user's history (or the visitor's list), or one of a preferred genre's popular films."""


@dataclass(frozen=True, slots=True)
class ExplainedItem:
    item: str
    score: float
    because: list[Because]
    """The largest positive contributions, largest first."""


def explain_recommendations(
    model: Recommender,
    history: Iterable[tuple[str, float]],
    k: int,
    genres: Sequence[str] = (),
    seen: Iterable[str] = (),
    top: int = TOP_BECAUSE,
) -> tuple[Ranked, list[ExplainedItem]]:
    """The same top-k as Recommender.recommend, each item with the items its score came from."""
    interests = model.interests(history, genres, seen)
    ranked = model.rank(interests, k)
    if ranked.source != "personal" or not ranked.items:
        return ranked, [ExplainedItem(i, s, []) for i, s in zip(ranked.items, ranked.scores, strict=True)]
    indexes, _ = interests.arrays()
    terms = contributions(model, interests, np.array([model.index[i] for i in ranked.items]))
    explained = [
        ExplainedItem(item, score, _because(model, interests, indexes, terms[:, r], top))
        for r, (item, score) in enumerate(zip(ranked.items, ranked.scores, strict=True))
    ]
    return ranked, explained


def contributions(model: Recommender, interests: Interests, items: np.ndarray) -> np.ndarray:
    """(interests × items): the term each interest adds to each item's score, in float64."""
    indexes, weights = interests.arrays()
    if model.kind == "itemknn" and model.neighbours is not None:
        similarity = model.neighbours[indexes][:, items].toarray().astype(np.float64)
        return np.asarray(similarity * weights[:, None], dtype=np.float64)
    if model.kind == "svd" and model.factors is not None:
        factors = model.factors.astype(np.float64)
        scaled = weights * model.scale[indexes].astype(np.float64)
        return np.asarray(scaled[:, None] * (factors[indexes] @ factors[items].T), dtype=np.float64)
    return np.zeros((len(indexes), len(items)))


def _because(
    model: Recommender, interests: Interests, indexes: np.ndarray, terms: np.ndarray, top: int
) -> list[Because]:
    score = float(terms.sum())
    order = np.argsort(-terms, kind="stable")[:top]
    return [
        Because(
            item=str(model.item_ids[indexes[j]]),
            contribution=float(terms[j]),
            share=float(terms[j] / score) if score > 0 else 0.0,
            source="history" if int(indexes[j]) in interests.from_history else "genre",
        )
        for j in order
        if terms[j] > 0
    ]
