"""The recommendation task: candidates, a small search on a validation split, held-out evaluation, publish.

Candidates a data scientist tries first: popularity (the baseline to beat), item-item cosine similarity
with a neighbour cut-off, and a truncated SVD of the weighted user-item matrix (matrix factorisation with
fold-in). Settings are chosen on a validation split of the training interactions; the chosen candidate of
each family is then measured on held-out interactions the search never saw. Only a model that beats
popularity on NDCG@10 and recall@10 is published.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from mlstack.recommend.model import Recommender, event_weight, top_k_rows
from mlstack.store.manifest import (
    Artifact,
    CatalogueItem,
    ExplanationFacts,
    Feature,
    Manifest,
    RecommenderFacts,
    Training,
)
from mlstack.store.model_store import ModelStore, build_manifest

K = 10
HOLDOUT_SHARE = 0.2
MIN_POSITIVES = 5
EVAL_USERS = 2_000
GRID: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "itemknn": [{"neighbours": 50}, {"neighbours": 200}],
    "svd": [{"components": c, "alpha": a} for c in (32, 64, 128) for a in (0.0, 0.4)],
}
INPUTS = [
    Feature(name="user_id", type="string", nullable=True),
    Feature(name="k", type="integer", nullable=True, minimum=1, maximum=100, typical=10),
]


class NotBetterThanPopularity(Exception):
    """The best candidate does not beat the popularity baseline on held-out data: nothing is published."""


@dataclass(frozen=True)
class Matrix:
    """Positive interaction weights, users × items, and the ids of both axes."""

    values: sp.csr_matrix
    users: np.ndarray


def weights(events: pd.DataFrame) -> pd.Series:
    return pd.Series(
        [event_weight(t, v) for t, v in zip(events["type"], events["value"], strict=True)], index=events.index
    )


def user_item(events: pd.DataFrame, item_index: dict[str, int]) -> Matrix:
    """Summed event weights per (user, item); only what is left positive counts as interest."""
    frame = events.assign(w=weights(events))
    summed = frame.groupby(["user_id", "item_id"], sort=True)["w"].sum()
    summed = summed[summed > 0]
    users, user_codes = np.unique(summed.index.get_level_values(0), return_inverse=True)
    items = summed.index.get_level_values(1).map(item_index).to_numpy()
    values = sp.csr_matrix(
        (summed.to_numpy(np.float32), (user_codes, items)), shape=(len(users), len(item_index))
    )
    return Matrix(values, users)


def split(matrix: sp.csr_matrix, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Per user with enough interests, a random share of them held out; (train, held out)."""
    rng = np.random.default_rng(seed)
    coo = matrix.tocoo()
    counts = np.bincount(coo.row, minlength=matrix.shape[0])
    draw = rng.random(coo.nnz)
    held = (draw < HOLDOUT_SHARE) & (counts[coo.row] >= MIN_POSITIVES)
    shape = matrix.shape
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=shape)
    test = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=shape)
    return train, test


def fit(
    family: str, params: dict[str, Any], train: sp.csr_matrix, base: dict[str, Any], seed: int
) -> dict[str, Any]:
    """The artifact dict of one candidate, fitted on `train`."""
    counts = np.asarray((train > 0).sum(axis=0)).ravel().astype(np.float32)
    artifact = {**base, "kind": family, "popularity": counts / max(float(counts.max()), 1.0)}
    if family == "itemknn":
        artifact["neighbours"] = _neighbours(train, params["neighbours"])
    elif family == "svd":
        scale = (np.maximum(counts, 1.0) ** -params["alpha"]).astype(np.float32)
        scale /= scale.max()
        svd = TruncatedSVD(n_components=params["components"], n_iter=4, random_state=seed)
        svd.fit(train @ sp.diags(scale))
        artifact["factors"] = svd.components_.T.astype(np.float32)
        artifact["scale"] = scale
    return artifact


def _neighbours(train: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Cosine similarity between item columns, each row cut to its `keep` most similar items."""
    norms = np.sqrt(np.asarray(train.multiply(train).sum(axis=0)).ravel())
    normed = train @ sp.diags(1.0 / np.maximum(norms, 1e-9))
    similarity = (normed.T @ normed).toarray().astype(np.float32)
    np.fill_diagonal(similarity, 0.0)
    best = np.argpartition(-similarity, keep - 1, axis=1)[:, :keep]
    rows = np.repeat(np.arange(similarity.shape[0]), keep)
    data = np.take_along_axis(similarity, best, axis=1).ravel()
    return sp.csr_matrix((data, (rows, best.ravel())), shape=similarity.shape)


def evaluate(
    artifact: dict[str, Any], train: sp.csr_matrix, test: sp.csr_matrix, seed: int
) -> dict[str, float]:
    """recall@10, NDCG@10, hit rate@10 and catalogue coverage over (a sample of) users with held-out items."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if len(users) > EVAL_USERS:
        users = np.sort(np.random.default_rng(seed).choice(users, EVAL_USERS, replace=False))
    history, truth = train[users], test[users]
    scores = Recommender(artifact).scores_matrix(history)
    scores[history.nonzero()] = -np.inf  # what a user has seen is never recommended
    top = top_k_rows(scores, K)
    hits = np.take_along_axis(truth.toarray() > 0, top, axis=1)
    relevant = np.diff(truth.indptr)
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    ideal = np.array([discounts[: min(r, K)].sum() for r in relevant])
    return {
        "recall_at_10": round(float(np.mean(hits.sum(axis=1) / np.minimum(relevant, K))), 6),
        "ndcg_at_10": round(float(np.mean((hits * discounts).sum(axis=1) / ideal)), 6),
        "hit_rate_at_10": round(float(np.mean(hits.any(axis=1))), 6),
        "coverage_at_10": round(len(np.unique(top)) / train.shape[1], 6),
        "users_evaluated": len(users),
    }


@dataclass(frozen=True)
class Outcome:
    family: str
    params: dict[str, Any]
    validation: dict[str, float]
    test: dict[str, float]


def search(matrix: sp.csr_matrix, base: dict[str, Any], seed: int) -> tuple[list[Outcome], sp.csr_matrix]:
    """Each family's best settings on a validation split, then measured once on the held-out test split."""
    train, test = split(matrix, seed)
    fit_part, validation = split(train, seed + 1)
    outcomes = []
    for family, grid in GRID.items():
        tried = [
            (p, evaluate(fit(family, p, fit_part, base, seed), fit_part, validation, seed)) for p in grid
        ]
        params, scores = max(tried, key=lambda t: t[1]["ndcg_at_10"])
        held_out = evaluate(fit(family, params, train, base, seed), train, test, seed)
        outcomes.append(Outcome(family, params, scores, held_out))
        print(f"  {family:<10} {params}: validation ndcg@10={scores['ndcg_at_10']:.4f}, test {held_out}")
    return outcomes, test


@dataclass(frozen=True)
class RecommendRequest:
    model: str
    items: pd.DataFrame
    events: pd.DataFrame
    source: str
    description: str
    seed: int = 0
    promote: bool = True


def train_and_publish_recommender(request: RecommendRequest, store: ModelStore) -> Manifest:
    started = time.perf_counter()
    items = request.items.reset_index(drop=True)
    item_index = {item: i for i, item in enumerate(items["item_id"])}
    base = {"item_ids": items["item_id"].tolist(), "genres": items["genre"].tolist()}
    matrix = user_item(request.events, item_index)
    if matrix.values.nnz == 0 or (np.diff(matrix.values.indptr) >= MIN_POSITIVES).sum() < 10:
        raise NotBetterThanPopularity(
            f"too few users with {MIN_POSITIVES} or more interests to evaluate a model"
        )
    outcomes, test = search(matrix.values, base, request.seed)
    baseline = next(o for o in outcomes if o.family == "popularity")
    best = max(outcomes, key=lambda o: o.validation["ndcg_at_10"])
    if best.family == "popularity" or not _beats(best.test, baseline.test):
        raise NotBetterThanPopularity(
            f"best candidate {best.family} does not beat popularity on held-out NDCG@10 and recall@10"
        )
    artifact = fit(best.family, best.params, matrix.values, base, request.seed)  # served: every interaction
    facts = _facts(items, best, artifact)
    training = Training(
        source=request.source,
        target="interactions",
        rows=len(request.events),
        data_sha256=_events_sha256(request.events),
        train_rows=int(matrix.values.nnz - test.nnz),
        test_rows=int(test.nnz),
        estimator=best.family,
        params=best.params,
        search=[{"family": o.family, "params": o.params, "validation": o.validation} for o in outcomes],
        seconds=round(time.perf_counter() - started, 2),
    )
    metrics: dict[str, Any] = {
        **{k: v for k, v in best.test.items() if k != "users_evaluated"},
        "users_evaluated": best.test["users_evaluated"],
        "baseline_popularity": baseline.test,
        "candidates": {o.family: o.test for o in outcomes},
        "cv_scoring": "ndcg_at_10",
        "cv_score": best.validation["ndcg_at_10"],
    }

    def describe(version: str, file: Artifact) -> Manifest:
        return build_manifest(
            model=request.model,
            version=version,
            task="recommendation",
            description=request.description,
            inputs=INPUTS,
            metrics=metrics,
            training=training,
            artifact=file,
            recommender=facts,
            explanation=ExplanationFacts(method="recommender_items"),  # no data needed: the artifact suffices
        )

    manifest = store.publish(request.model, artifact, describe)
    if request.promote:
        store.set_current(request.model, manifest.version)
    return manifest


def _beats(candidate: dict[str, float], baseline: dict[str, float]) -> bool:
    return all(candidate[m] > baseline[m] for m in ("ndcg_at_10", "recall_at_10"))


def _facts(items: pd.DataFrame, best: Outcome, artifact: dict[str, Any]) -> RecommenderFacts:
    factors = artifact.get("factors")
    shape = (
        list(factors.shape)
        if factors is not None
        else list(artifact.get("neighbours", np.zeros((0, 0))).shape)
    )
    columns = (items["item_id"], items["title"], items["genre"], items["year"])
    catalogue = [
        CatalogueItem(item_id=item_id, title=title, genre=genre, year=int(year))
        for item_id, title, genre, year in zip(*columns, strict=True)
    ]
    return RecommenderFacts(
        kind=best.family, factor_shape=shape, genres=sorted(items["genre"].unique()), items=catalogue
    )


def _events_sha256(events: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(events, index=False).to_numpy().tobytes()).hexdigest()
