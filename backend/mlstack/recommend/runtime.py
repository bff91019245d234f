"""A recommendation model version behind the Runtime interface: queries in, ranked item lists out.

An instance is `{"user_id": ..., "k": 10}` (a known user: their history and profile, read now from the
user-data store) or `{"items": [...], "k": 10}` (a visitor: the items they liked). V2 sends `user_id` and
`k` tensors; a null user_id is a visitor without history. An unknown user gets the popular items, with
source "popular". Each query's cache key carries the user's data version, so a write is never answered by
a recommendation computed before it. When the user-data store cannot be read, known users get the popular
items too, and the answer says so (`Result.degraded`); such answers are never cached.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from mlstack.errors import BadInput, MalformedRequest, UserDataUnavailable
from mlstack.recommend.model import Ranked, Recommender, event_weight
from mlstack.serving.requests import Inputs, Records
from mlstack.serving.runtime import Prediction
from mlstack.serving.validation import Rows, Validator
from mlstack.store.manifest import Manifest
from mlstack.users.payloads import user_id as checked_user_id
from mlstack.users.store import Snapshot, UserStore

DEFAULT_K = 10
VISITOR_WEIGHT = 3.0
"""An item a visitor names counts as much as a like."""
MAX_VISITOR_ITEMS = 500
CACHE_SPACE = "rec"
EXPLAIN_CACHE_SPACE = f"{CACHE_SPACE}:explain"
"""Explained recommendations: keyed like recommendations (user id, data version) under CACHE_SPACE, so
user_cache_pattern reaches them too."""
DEGRADED = "user data unavailable: known users got the popular items"


@dataclass(frozen=True, slots=True)
class Query:
    k: int
    user_id: str | None = None
    items: tuple[str, ...] = ()
    snapshot: Snapshot | None = None
    """The user's data as read for this request (None: a visitor, an unknown user, or none readable)."""


@dataclass(frozen=True, slots=True)
class Taste:
    """A user's history as (item id, weight) and their preferred genres, or a visitor's liked items."""

    history: list[tuple[str, float]]
    genres: list[str] = field(default_factory=list)


def user_cache_pattern(user_id: str) -> str:
    """Every cached recommendation of one user, whatever the model or version (for erasure)."""
    return f"mlstack:{CACHE_SPACE}:*:u:{user_id}:*"


class RecommenderRuntime:
    """The artifact's scorer. Rankings take well under a millisecond each: a few run on the event loop,
    where a thread hop (and its fight for the GIL with every other request) made the p99 ten times the
    median."""

    engine = "joblib"
    inline_rows = 8
    cache_space = CACHE_SPACE
    erasable = True  # an erasure must reach every cached recommendation of the user at once
    outputs: tuple[str, ...] = ("scores", "sources")

    def __init__(self, manifest: Manifest, artifact: dict[str, Any], users: UserStore | None) -> None:
        self.manifest = manifest
        self.model = Recommender(artifact)
        self.items = frozenset(self.model.index)
        self.genres = frozenset(self.model.genre_names)
        self._users = users

    async def prepare(self, rows: Rows) -> Rows:
        """Each known user's data, read in one round trip, and each query's part of its cache key."""
        queries: list[Query] = rows.values
        user_ids = sorted({q.user_id for q in queries if q.user_id is not None})
        snapshots: dict[str, Snapshot | None] = {}
        degraded = None
        if user_ids and self._users is not None and self._users.configured:
            try:
                snapshots = dict(zip(user_ids, await self._users.snapshots(user_ids), strict=True))
            except UserDataUnavailable:
                degraded = DEGRADED
        ready = [replace(q, snapshot=snapshots.get(q.user_id)) if q.user_id else q for q in queries]
        return Rows(rows.features, ready, [_key_part(q) for q in ready], degraded)

    def predict(self, rows: Rows) -> Prediction:
        ranked = [self._rank(query) for query in rows.values]
        extra: dict[str, list[Any]] = {
            "scores": [r.scores for r in ranked],
            "sources": [r.source for r in ranked],
        }
        return Prediction(labels=[r.items for r in ranked], extra=extra)

    def _rank(self, query: Query) -> Ranked:
        taste = self.taste(query)
        if taste is None:
            return self.model.popular(query.k)
        return self.model.recommend(taste.history, query.k, genres=taste.genres)

    def taste(self, query: Query) -> Taste | None:
        """What a query says its person likes; None when nothing is known (the popular items answer)."""
        if query.user_id is None:
            return Taste([(item, VISITOR_WEIGHT) for item in query.items])
        snapshot = query.snapshot
        if snapshot is None:
            return None
        history = [(e["item_id"], event_weight(e["type"], e.get("value"))) for e in snapshot.events]
        genres = snapshot.profile.get("genres", [])
        return Taste(history, genres if isinstance(genres, list) else [])


class QueryValidator:
    """Instances (V1) or user_id and k columns (V2) as queries, every error naming its field."""

    def __init__(
        self, manifest: Manifest, runtime: RecommenderRuntime, columns: Validator, max_k: int
    ) -> None:
        self.features = tuple(manifest.inputs)
        self._items = runtime.items
        self._columns = columns
        self._max_k = max_k

    def validate(self, inputs: Inputs) -> Rows:
        if isinstance(inputs, Records):
            instances = inputs.items
            if not isinstance(instances, list):
                raise MalformedRequest("instances: must be a list of objects")
            self._columns.check_count(len(instances))
            return Rows(self.features, [self._query(f"instances[{i}]", x) for i, x in enumerate(instances)])
        rows = self._columns.columns(inputs)
        at = {f.name: i for i, f in enumerate(rows.features)}
        queries = []
        for n, row in enumerate(rows.values):
            user, k = row[at["user_id"]], row[at["k"]]
            where = f"{inputs.where}[{n}]"
            k = self._k(DEFAULT_K if k is None else int(k), f"{where}.k")
            queries.append(
                Query(k, checked_user_id(user, f"{where}.user_id")) if user is not None else Query(k)
            )
        return Rows(self.features, queries)

    def _query(self, where: str, instance: Any) -> Query:
        if not isinstance(instance, dict):
            raise BadInput(where, "must be an object with user_id or items, and k")
        unknown = sorted(set(instance) - {"user_id", "items", "k"})
        if unknown:
            raise BadInput(f"{where}.{str(unknown[0])[:64]}", "unknown field (user_id, items, k)")
        k = self._k(instance.get("k", DEFAULT_K), f"{where}.k")
        if ("user_id" in instance) == ("items" in instance):
            raise BadInput(where, "give either user_id or items")
        if "user_id" in instance:
            return Query(k, user_id=checked_user_id(instance["user_id"], f"{where}.user_id"))
        return Query(k, items=self._visited(instance["items"], f"{where}.items"))

    def _k(self, k: Any, where: str) -> int:
        if type(k) is not int or not 1 <= k <= self._max_k:
            raise BadInput(where, f"must be an integer from 1 to {self._max_k}")
        return k

    def _visited(self, items: Any, where: str) -> tuple[str, ...]:
        if not isinstance(items, list) or len(items) > MAX_VISITOR_ITEMS:
            raise BadInput(where, f"must be a list of at most {MAX_VISITOR_ITEMS} item ids")
        for i, item in enumerate(items):
            if type(item) is not str or item not in self._items:
                raise BadInput(f"{where}[{i}]", f"unknown item {str(item)[:64]!r}")
        return tuple(sorted(set(items)))


def _key_part(query: Query) -> str:
    if query.user_id is not None and query.snapshot is not None:
        return f"u:{query.user_id}:{query.snapshot.version}:{query.k}"
    if query.user_id is not None:
        return f"popular:{query.k}"  # never names an unknown user: nothing to erase later
    digest = hashlib.blake2b(orjson.dumps(query.items), digest_size=16).hexdigest()
    return f"i:{digest}:{query.k}"
