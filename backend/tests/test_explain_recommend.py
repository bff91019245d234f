""" "Because you liked X": the items behind each recommendation come from the history, add up to its score,
and removing one of them lowers the score by exactly its contribution."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlstack.explain.recommend import contributions, explain_recommendations
from mlstack.recommend.model import Recommender
from mlstack.training.interactions import demo_interactions
from mlstack.training.recommend import fit, user_item

FAMILIES = [("itemknn", {"neighbours": 50}), ("svd", {"components": 16, "alpha": 0.4})]


@pytest.fixture(scope="module")
def catalogue() -> tuple[dict[str, Any], Any]:
    demo = demo_interactions(n_users=1500, n_items=600, seed=2)
    index = {item: i for i, item in enumerate(demo.items["item_id"])}
    base = {"item_ids": list(index), "genres": demo.items["genre"].tolist()}
    return base, user_item(demo.events, index).values


def model_of(catalogue: tuple[dict[str, Any], Any], family: str, params: dict[str, Any]) -> Recommender:
    base, matrix = catalogue
    return Recommender(fit(family, params, matrix, base, seed=0))


def one_genre(model: Recommender, genre: str, count: int = 5) -> list[str]:
    """A handful of the genre's most popular films."""
    members = np.flatnonzero(model.genres == genre)
    return [str(model.item_ids[i]) for i in members[np.argsort(-model.popularity[members])][:count]]


@pytest.mark.parametrize(("family", "params"), FAMILIES, ids=[f for f, _ in FAMILIES])
def test_the_because_items_of_a_one_genre_history_come_from_that_history(
    catalogue: tuple[dict[str, Any], Any], family: str, params: dict[str, Any]
) -> None:
    model = model_of(catalogue, family, params)
    history = one_genre(model, "Horror")

    ranked, explained = explain_recommendations(model, [(i, 3.0) for i in history], k=10)

    assert ranked.source == "personal"
    assert ranked.items == model.recommend([(i, 3.0) for i in history], k=10).items
    for item in explained:
        assert item.because, f"{item.item} has no because"
        assert {b.item for b in item.because} <= set(history)
        assert all(b.source == "history" for b in item.because)
        assert [b.contribution for b in item.because] == sorted(
            (b.contribution for b in item.because), reverse=True
        )
        assert sum(b.share for b in item.because) <= 1.0 + 1e-9


@pytest.mark.parametrize(("family", "params"), FAMILIES, ids=[f for f, _ in FAMILIES])
def test_contributions_add_up_to_the_score_and_removing_an_item_removes_its_share(
    catalogue: tuple[dict[str, Any], Any], family: str, params: dict[str, Any]
) -> None:
    model = model_of(catalogue, family, params)
    history = [(i, 3.0) for i in one_genre(model, "Comedy", 4)] + [
        (i, 1.0) for i in one_genre(model, "Drama", 3)
    ]
    interests = model.interests(history)
    indexes, weights = interests.arrays()
    items = np.arange(len(model.item_ids))

    terms = contributions(model, interests, items)

    np.testing.assert_allclose(terms.sum(axis=0), model.scores(indexes, weights), rtol=0, atol=1e-9)
    without_first = model.scores(indexes[1:], weights[1:])
    np.testing.assert_allclose(model.scores(indexes, weights) - without_first, terms[0], rtol=0, atol=1e-9)


def test_a_preferred_genre_is_named_as_such_and_no_history_gives_no_because(
    catalogue: tuple[dict[str, Any], Any],
) -> None:
    model = model_of(catalogue, *FAMILIES[0])

    _, by_genre = explain_recommendations(model, [], k=5, genres=["Horror"])
    ranked, popular = explain_recommendations(model, [], k=5)

    assert {b.source for item in by_genre for b in item.because} == {"genre"}
    assert all(model.genres[model.index[b.item]] == "Horror" for item in by_genre for b in item.because)
    assert ranked.source == "popular"
    assert all(item.because == [] for item in popular)
