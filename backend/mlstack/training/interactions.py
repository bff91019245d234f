"""Synthetic film catalogue and viewers for the recommendation demo, with a fixed seed.

Structure a recommender can find: each user likes a few genres (latent tastes), picks films in them
mostly by popularity (a long tail), sometimes strays to a popular film of any genre; plays, likes, skips
and ratings follow from whether a film fits the user's tastes. Generated, never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

GENRES = (
    "Drama",
    "Comedy",
    "Action",
    "Thriller",
    "Romance",
    "Science fiction",
    "Horror",
    "Documentary",
    "Animation",
    "Crime",
    "Fantasy",
    "Musical",
)
GENRE_SHARE = np.array([18, 16, 12, 10, 9, 7, 6, 6, 5, 5, 4, 2], dtype=float)
EVENT_TYPES = ("play", "like", "skip", "rating")
ADJECTIVES = [
    "Silent",
    "Crimson",
    "Last",
    "Golden",
    "Hidden",
    "Broken",
    "Endless",
    "Electric",
    "Northern",
    "Quiet",
    "Wild",
    "Distant",
    "Secret",
    "Burning",
    "Frozen",
    "Little",
    "Midnight",
    "Paper",
    "Velvet",
    "Iron",
    "Hollow",
    "Lucky",
    "Savage",
    "Gentle",
]
NOUNS = [
    "River",
    "Garden",
    "Empire",
    "Signal",
    "Harbour",
    "Orchard",
    "Machine",
    "Letter",
    "Kingdom",
    "Horizon",
    "Station",
    "Mirror",
    "Forest",
    "Engine",
    "Lantern",
    "Island",
    "Summer",
    "Winter",
    "Detective",
    "Voyage",
    "Circus",
    "Bridge",
    "Crown",
    "Shadow",
    "Echo",
]
STRAY_SHARE = 0.15
"""Share of a user's picks that ignore their tastes (a popular film of any genre)."""


@dataclass(frozen=True)
class InteractionSet:
    """A catalogue (item_id, title, genre, year, popularity); events (user_id, item_id, type, value, ts)."""

    items: pd.DataFrame
    events: pd.DataFrame
    description: str


def _catalogue(rng: np.random.Generator, n_items: int) -> pd.DataFrame:
    genre = rng.choice(len(GENRES), n_items, p=GENRE_SHARE / GENRE_SHARE.sum())
    # long tail: a Zipf-like popularity over a random order of the films
    rank = rng.permutation(n_items) + 1
    popularity = rank.astype(float) ** -0.9
    titles = [
        f"The {ADJECTIVES[a]} {NOUNS[b]}" + (f" {n}" if n > 1 else "")
        for a, b, n in zip(
            rng.integers(0, len(ADJECTIVES), n_items),
            rng.integers(0, len(NOUNS), n_items),
            rng.choice([1, 1, 1, 1, 2, 3], n_items),
            strict=True,
        )
    ]
    return pd.DataFrame(
        {
            "item_id": [f"film-{i:05d}" for i in range(1, n_items + 1)],
            "title": titles,
            "genre": np.asarray(GENRES)[genre],
            "year": rng.integers(1960, 2026, n_items),
            "popularity": np.round(popularity / popularity.max(), 6),
        }
    )


def _tastes(rng: np.random.Generator, n_users: int) -> np.ndarray:
    """Each user's weight per genre: one to three liked genres, drawn by genre share."""
    tastes = np.zeros((n_users, len(GENRES)))
    liked = rng.choice([1, 2, 3], n_users, p=[0.35, 0.45, 0.2])
    share = GENRE_SHARE / GENRE_SHARE.sum()
    for count in (1, 2, 3):
        users = np.flatnonzero(liked == count)
        for user in users:
            genres = rng.choice(len(GENRES), count, replace=False, p=share)
            tastes[user, genres] = rng.dirichlet(np.full(count, 2.0))
    return tastes


def _picks(
    rng: np.random.Generator, items: pd.DataFrame, tastes: np.ndarray, per_user: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(user index, item index) pairs: a genre by taste, then a film of it by popularity."""
    users = np.repeat(np.arange(len(tastes)), per_user)
    cumulative = tastes.cumsum(axis=1)[users]
    genre = (rng.random(len(users))[:, None] > cumulative).sum(axis=1).clip(0, len(GENRES) - 1)
    popularity = items["popularity"].to_numpy()
    genre_of_item = items["genre"].map({g: i for i, g in enumerate(GENRES)}).to_numpy()
    picked = np.empty(len(users), dtype=np.int64)
    for g in range(len(GENRES)):
        rows = np.flatnonzero(genre == g)
        members = np.flatnonzero(genre_of_item == g)
        picked[rows] = _by_weight(rng, members, popularity[members], len(rows))
    stray = rng.random(len(users)) < STRAY_SHARE
    picked[stray] = _by_weight(rng, np.arange(len(items)), popularity, int(stray.sum()))
    pairs = np.unique(users * len(items) + picked)  # one interaction per (user, film)
    return pairs // len(items), pairs % len(items)


def _by_weight(rng: np.random.Generator, members: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    cdf = np.cumsum(weight) / weight.sum()
    picked: np.ndarray = members[np.searchsorted(cdf, rng.random(n), side="right").clip(0, len(members) - 1)]
    return picked


def _events(
    rng: np.random.Generator, items: pd.DataFrame, tastes: np.ndarray, users: np.ndarray, picked: np.ndarray
) -> pd.DataFrame:
    """Event type and value from how well a film fits its viewer's tastes."""
    genre_of_item = items["genre"].map({g: i for i, g in enumerate(GENRES)}).to_numpy()
    fit = tastes[users, genre_of_item[picked]] > 0
    draw = rng.random(len(users))
    kind = np.where(
        fit,
        np.select([draw < 0.3, draw < 0.42], [1, 3], 0),  # like, rating, else play
        np.select([draw < 0.45, draw < 0.55], [2, 3], 0),  # skip, rating, else play
    )
    rating = np.where(fit, rng.integers(3, 6, len(users)), rng.integers(1, 4, len(users)))
    value = np.where(
        kind == 3, rating, np.where(kind == 0, np.round(rng.uniform(0.3, 1.0, len(users)), 2), 1)
    )
    ts = 1_700_000_000 + rng.integers(0, 365 * 86400, len(users))
    return pd.DataFrame(
        {
            "user_id": [f"user-{u:06d}" for u in users + 1],
            "item_id": items["item_id"].to_numpy()[picked],
            "type": np.asarray(EVENT_TYPES)[kind],
            "value": value.astype(float),
            "ts": ts,
        }
    ).sort_values(["user_id", "ts"], ignore_index=True)


def demo_interactions(n_users: int = 20_000, n_items: int = 3_000, seed: int = 0) -> InteractionSet:
    """The same catalogue and events for the same arguments."""
    rng = np.random.default_rng(seed)
    items = _catalogue(rng, n_items)
    tastes = _tastes(rng, n_users)
    per_user = np.clip(rng.lognormal(np.log(22), 0.6, n_users), 5, 200).astype(int)
    users, picked = _picks(rng, items, tastes, per_user)
    events = _events(rng, items, tastes, users, picked)
    description = (
        f"Synthetic demo data: {n_items} films in {len(GENRES)} genres with long-tail popularity, "
        f"{n_users} viewers with latent genre tastes, {len(events)} plays, likes, skips and ratings"
    )
    return InteractionSet(items, events, description)
