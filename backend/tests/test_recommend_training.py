"""`mlstack train --demo recommend` for real on a small generated set: held-out figures, the artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlstack.cli import main
from mlstack.recommend.model import Recommender, top_k
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import ModelStore
from mlstack.training.interactions import GENRES, demo_interactions
from mlstack.training.recommend import fit, user_item

USERS = "2000"


@pytest.fixture(scope="module")
def recommend_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    assert main(["train", "--demo", "recommend", "--rows", USERS, "--store-dir", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def manifest(recommend_store: Path) -> Manifest:
    return ModelStore(recommend_store).verify("recommend", "1")


def test_a_seed_gives_the_same_catalogue_and_events() -> None:
    first = demo_interactions(n_users=300, n_items=400, seed=3)

    pd.testing.assert_frame_equal(first.events, demo_interactions(n_users=300, n_items=400, seed=3).events)
    assert not first.events.equals(demo_interactions(n_users=300, n_items=400, seed=4).events)


def test_popularity_has_a_long_tail_and_events_have_every_type() -> None:
    demo = demo_interactions(n_users=2000)
    plays = demo.events["item_id"].value_counts()

    assert plays.iloc[:30].sum() > 0.2 * len(demo.events)  # 1% of the films hold a fifth of the plays
    assert set(demo.events["type"]) == {"play", "like", "skip", "rating"}
    assert set(demo.items["genre"]) == set(GENRES)
    assert len(demo.items) == 3000


def test_the_published_model_beats_popularity_on_held_out_data(manifest: Manifest) -> None:
    metrics, baseline = manifest.metrics, manifest.metrics["baseline_popularity"]

    assert manifest.task == "recommendation"
    assert metrics["ndcg_at_10"] > 1.5 * baseline["ndcg_at_10"]
    assert metrics["recall_at_10"] > 1.5 * baseline["recall_at_10"]
    assert metrics["coverage_at_10"] > baseline["coverage_at_10"]
    assert {"popularity", "itemknn", "svd"} == set(metrics["candidates"])
    assert manifest.training.seconds < 30


def test_the_manifest_carries_the_catalogue_and_the_factor_shape(manifest: Manifest) -> None:
    facts = manifest.recommender

    assert facts is not None
    assert len(facts.items) == 3000
    assert facts.factor_shape[0] == 3000
    assert facts.genres == sorted(GENRES)
    assert [f.name for f in manifest.inputs] == ["user_id", "k"]


def test_a_history_of_one_genre_gives_mostly_that_genre(recommend_store: Path, manifest: Manifest) -> None:
    _, artifact = ModelStore(recommend_store).load("recommend", "1")
    model = Recommender(artifact)
    assert manifest.recommender is not None
    genre_of = {item.item_id: item.genre for item in manifest.recommender.items}
    horror = [i for i, g in genre_of.items() if g == "Horror"][:5]

    ranked = model.recommend([(i, 3.0) for i in horror], k=10)

    assert ranked.source == "personal"
    assert sum(genre_of[i] == "Horror" for i in ranked.items) >= 7
    assert not set(horror) & set(ranked.items)
    assert ranked.scores == sorted(ranked.scores, reverse=True)


def test_no_positive_history_falls_back_to_popular(recommend_store: Path) -> None:
    _, artifact = ModelStore(recommend_store).load("recommend", "1")
    model = Recommender(artifact)

    ranked = model.recommend([("film-00001", -1.0)], k=5)

    assert ranked.source == "popular"
    assert "film-00001" not in ranked.items
    assert len(ranked.items) == 5


def test_top_k_is_a_partial_sort_that_matches_a_full_sort() -> None:
    scores = np.random.default_rng(0).random(1000)

    assert top_k(scores, 10).tolist() == np.argsort(-scores)[:10].tolist()


@pytest.mark.parametrize(
    ("family", "params"),
    [("popularity", {}), ("itemknn", {"neighbours": 20}), ("svd", {"components": 8, "alpha": 0.4})],
)
def test_every_family_serves_a_history_the_way_it_was_evaluated(family: str, params: dict[str, Any]) -> None:
    demo = demo_interactions(n_users=500, n_items=300)
    index = {item: i for i, item in enumerate(demo.items["item_id"])}
    base = {"item_ids": list(index), "genres": demo.items["genre"].tolist()}
    matrix = user_item(demo.events, index).values
    model = Recommender(fit(family, params, matrix, base, seed=0))
    history = matrix[0]

    ranked = model.recommend(
        [(base["item_ids"][i], float(w)) for i, w in zip(history.indices, history.data, strict=True)], k=10
    )
    batch = model.scores_matrix(history)[0]

    assert len(ranked.items) == 10
    assert all(isinstance(score, float) for score in ranked.scores)
    assert ranked.scores[0] == pytest.approx(max(np.delete(batch, history.indices)), rel=1e-4)
