"""Scoring for a recommender artifact: fold a history into scores over the catalogue, then top-k.

The artifact is a plain dict of numpy arrays and lists (no class of ours is pickled), written by
training/recommend.py. Training evaluates with the same functions that serve, so the held-out figures
are the served model's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

EVENT_TYPES = ("play", "like", "skip", "rating")
GENRE_SEEDS = 20
"""A preferred genre in a profile stands for this many of its most popular films."""


def event_weight(kind: str, value: float | None) -> float:
    """How much an interaction says the user wants more like it; negative for a skip or a low rating."""
    if kind == "like":
        return 3.0
    if kind == "skip":
        return -1.0
    if kind == "rating":
        return float(value if value is not None else 3.0) - 2.5
    return 1.0  # a play


@dataclass(frozen=True, slots=True)
class Ranked:
    """Top-k item ids, best first, their scores, and whether they were personal or the popular fallback."""

    items: list[str]
    scores: list[float]
    source: str


@dataclass(frozen=True, slots=True)
class Interests:
    """Positive interest per catalogue index, the indexes never recommended, and which interests come
    from the history itself (the others stand for a preferred genre)."""

    weights: dict[int, float]
    excluded: set[int]
    from_history: frozenset[int]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        indexes = np.fromiter(self.weights, dtype=np.int64, count=len(self.weights))
        values = np.fromiter(self.weights.values(), dtype=np.float64, count=len(self.weights))
        return indexes, values


class Recommender:
    """A loaded artifact: popularity, item factors (matrix factorisation) or item neighbours (item-item)."""

    def __init__(self, artifact: dict[str, Any]) -> None:
        self.kind: str = artifact["kind"]
        self.item_ids = np.asarray(artifact["item_ids"], dtype=object)
        self.index = {item: i for i, item in enumerate(artifact["item_ids"])}
        self.popularity = np.asarray(artifact["popularity"], dtype=np.float32)
        self.scale = np.asarray(artifact.get("scale", np.ones(len(self.item_ids))), dtype=np.float32)
        self.factors: np.ndarray | None = artifact.get("factors")
        self.neighbours: sp.csr_matrix | None = artifact.get("neighbours")
        self.genres = np.asarray(artifact["genres"], dtype=object)
        self._by_genre = self._genre_seeds()

    def _genre_seeds(self) -> dict[str, np.ndarray]:
        seeds = {}
        for genre in np.unique(self.genres):
            members = np.flatnonzero(self.genres == genre)
            order = np.argsort(-self.popularity[members], kind="stable")
            seeds[str(genre)] = members[order[:GENRE_SEEDS]]
        return seeds

    @property
    def genre_names(self) -> list[str]:
        return sorted(self._by_genre)

    def scores_matrix(self, history: sp.csr_matrix) -> np.ndarray:
        """Scores for many users at once: one row of positive weights per user (training's evaluation)."""
        if self.kind == "svd":
            assert self.factors is not None
            scores: np.ndarray = np.asarray((history @ sp.diags(self.scale)) @ self.factors) @ self.factors.T
            return scores
        if self.kind == "itemknn":
            assert self.neighbours is not None
            return np.asarray((history @ self.neighbours).todense())
        return np.tile(self.popularity, (history.shape[0], 1))

    def scores(self, indexes: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Scores over the catalogue for one history: the user's vector is folded in right here."""
        if self.kind == "svd":
            assert self.factors is not None
            user = (weights * self.scale[indexes]) @ self.factors[indexes]
            folded: np.ndarray = self.factors @ user
            return folded
        if self.kind == "itemknn":
            assert self.neighbours is not None
            return _weighted_rows(self.neighbours, indexes, weights)
        return self.popularity.astype(np.float64)

    def recommend(
        self,
        history: Iterable[tuple[str, float]],
        k: int,
        genres: Sequence[str] = (),
        seen: Iterable[str] = (),
    ) -> Ranked:
        """Top-k for a history of (item id, weight) and preferred genres; seen items are left out."""
        return self.rank(self.interests(history, genres, seen), k)

    def rank(self, interests: Interests, k: int) -> Ranked:
        """Top-k for known interests; the popular items when there are none."""
        if not interests.weights:
            return self._top(self.popularity.astype(np.float64), k, interests.excluded, "popular")
        indexes, weights = interests.arrays()
        return self._top(self.scores(indexes, weights), k, interests.excluded, "personal")

    def interests(
        self, history: Iterable[tuple[str, float]], genres: Sequence[str] = (), seen: Iterable[str] = ()
    ) -> Interests:
        """What a history says: positive weights per item (a preferred genre adds its popular films) and
        the items never to recommend (everything in the history, and `seen`)."""
        totals: dict[int, float] = {}
        for item, weight in history:
            index = self.index.get(item)
            if index is not None:
                totals[index] = totals.get(index, 0.0) + weight
        excluded = set(totals) | {self.index[i] for i in seen if i in self.index}
        positive = {i: w for i, w in totals.items() if w > 0}
        from_history = frozenset(positive)
        for genre in genres:
            for index in self._by_genre.get(genre, ()):
                positive[int(index)] = positive.get(int(index), 0.0) + 1.0
        return Interests(positive, excluded, from_history)

    def popular(self, k: int) -> Ranked:
        return self._top(self.popularity.astype(np.float64), k, set(), "popular")

    def _top(self, scores: np.ndarray, k: int, excluded: set[int], source: str) -> Ranked:
        scores = scores.astype(np.float64, copy=True)
        if excluded:
            scores[np.fromiter(excluded, dtype=np.int64, count=len(excluded))] = -np.inf
        k = min(k, len(scores) - len(excluded))
        if k <= 0:
            return Ranked([], [], source)
        best = top_k(scores, k)
        return Ranked(self.item_ids[best].tolist(), [round(float(s), 6) for s in scores[best]], source)


def _weighted_rows(matrix: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The weighted sum of a few rows of a CSR matrix, dense: `matrix[rows].T @ weights`, from the CSR
    arrays themselves. scipy's fancy indexing cost 100-150 µs per request, more than the rest of it."""
    starts, ends = matrix.indptr[rows], matrix.indptr[rows + 1]
    spans = [np.arange(start, end) for start, end in zip(starts.tolist(), ends.tolist(), strict=True)]
    taken = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
    values = matrix.data[taken] * np.repeat(weights, ends - starts)
    return np.bincount(matrix.indices[taken], weights=values, minlength=matrix.shape[1]).astype(np.float64)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the k highest scores, best first: a partial sort, then a sort of k values only."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.argsort(-scores[part], kind="stable")]


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Row-wise top_k for a matrix of scores (one user per row)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)
