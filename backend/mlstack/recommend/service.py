"""Recommendations for `:predict` on a recommender: read the user's current data, use the cache, fold in.

An instance is `{"user_id": ..., "k": 10}` (a known user: their history and profile, read now from the
user data store) or `{"items": [...], "k": 10}` (a visitor: the items they liked). An unknown user gets
the popular items, with source "popular". Cache keys carry the user's data version, so a write is never
answered by a recommendation computed before it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from mlstack.cache.predictions import Entry, PredictionCache, cache_status
from mlstack.errors import BadInput, MalformedRequest
from mlstack.recommend.model import Ranked, event_weight
from mlstack.recommend.runtime import DEFAULT_K, RecommenderRuntime
from mlstack.serving.registry import Loaded
from mlstack.serving.validation import Rows
from mlstack.settings import Settings
from mlstack.telemetry.metrics import Metrics
from mlstack.users.payloads import user_id as checked_user_id
from mlstack.users.store import Snapshot, UserStore

VISITOR_WEIGHT = 3.0
"""An item a visitor names counts as much as a like."""
MAX_VISITOR_ITEMS = 500
INLINE_MAX_QUERIES = 8
"""Requests with up to this many rankings to compute run them on the event loop."""
REC_PREFIX = "mlstack:rec"
SWEEP_AGAIN_S = 2.0
"""After an erasure, the user's cached recommendations are swept once more this much later."""


@dataclass(frozen=True, slots=True)
class Query:
    k: int
    user_id: str | None = None
    items: tuple[str, ...] = ()


def user_cache_pattern(user_id: str) -> str:
    """Every cached recommendation of one user, whatever the model or version (for erasure)."""
    return f"{REC_PREFIX}:*:u:{user_id}:*"


class Recommendations:
    def __init__(
        self, users: UserStore, cache: PredictionCache, metrics: Metrics, settings: Settings
    ) -> None:
        self.users = users
        self.cache = cache
        self.metrics = metrics
        self.max_k = settings.recommend_max_k
        self._sweeps: set[asyncio.Task[None]] = set()

    async def answer(self, loaded: Loaded, instances: Any) -> tuple[list[Entry], str]:
        """One entry per instance ({"l": items, "s": scores, "src": source}) and the X-Cache status."""
        runtime = loaded.runtime
        assert isinstance(runtime, RecommenderRuntime)
        if not isinstance(instances, list):
            raise MalformedRequest("instances: must be a list of objects")
        loaded.validator.check_count(len(instances))
        queries = [self._query(i, instance, runtime) for i, instance in enumerate(instances)]
        snapshots = await self._snapshots(queries)
        keys = [_key(loaded, q, snapshots.get(q.user_id or "")) for q in queries]
        cached = await self.cache.get_many(keys, near=False)  # erasure must reach every copy
        entries: list[Entry | None] = (
            [_valid(e) for e in cached] if cached is not None else [None] * len(queries)
        )
        misses = [i for i, entry in enumerate(entries) if entry is None]
        self.metrics.count_cache(
            len(queries) - len(misses),
            len(misses) if cached is not None else 0,
            0 if cached is not None else len(queries),
        )
        if misses:
            work = [(queries[i], snapshots.get(queries[i].user_id or "")) for i in misses]
            # a few rankings take well under a millisecond: a thread hop (and its fight for the GIL
            # with every other request's) cost more, and made the p99 ten times the median
            inline = len(work) <= INLINE_MAX_QUERIES
            computed = _compute(runtime, work) if inline else await asyncio.to_thread(_compute, runtime, work)
            self.metrics.count_predicted(loaded.manifest.model, loaded.version, len(misses))
            for i, entry in zip(misses, computed, strict=True):
                entries[i] = entry
            if cached is not None:
                self.cache.put_many([(keys[i], computed[n]) for n, i in enumerate(misses)])
        return [e for e in entries if e is not None], cache_status(
            cached is not None, len(misses), len(queries)
        )

    async def answer_rows(self, loaded: Loaded, rows: Rows) -> tuple[list[Entry], str]:
        """V2: rows of (user_id, k) tensors; a null user_id is a visitor without history."""
        names = [f.name for f in rows.features]
        instances = []
        for row in rows.values:
            values = dict(zip(names, row, strict=True))
            instance = {"k": int(values["k"]) if values.get("k") is not None else DEFAULT_K}
            instance |= {"user_id": values["user_id"]} if values.get("user_id") is not None else {"items": []}
            instances.append(instance)
        return await self.answer(loaded, instances)

    async def forget(self, user_id: str) -> bool:
        """Remove the user's cached recommendations; False when the cache could not be reached.

        A recommendation computed just before the erasure may store its entry just after this sweep, so
        a second sweep follows a little later, in the background."""
        swept = await self.cache.delete_matching(user_cache_pattern(user_id))
        task = asyncio.create_task(self._sweep_later(user_id))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)
        return swept

    async def _sweep_later(self, user_id: str) -> None:
        await asyncio.sleep(SWEEP_AGAIN_S)
        await self.cache.delete_matching(user_cache_pattern(user_id))

    def _query(self, index: int, instance: Any, runtime: RecommenderRuntime) -> Query:
        where = f"instances[{index}]"
        if not isinstance(instance, dict):
            raise BadInput(where, "must be an object with user_id or items, and k")
        unknown = sorted(set(instance) - {"user_id", "items", "k"})
        if unknown:
            raise BadInput(f"{where}.{str(unknown[0])[:64]}", "unknown field (user_id, items, k)")
        k = self._k(instance.get("k", DEFAULT_K), where)
        if ("user_id" in instance) == ("items" in instance):
            raise BadInput(where, "give either user_id or items")
        if "user_id" in instance:
            return Query(k, user_id=checked_user_id(instance["user_id"], f"{where}.user_id"))
        return Query(k, items=_items(instance["items"], runtime, f"{where}.items"))

    def _k(self, k: Any, where: str) -> int:
        if type(k) is not int or not 1 <= k <= self.max_k:
            raise BadInput(f"{where}.k", f"must be an integer from 1 to {self.max_k}")
        return k

    async def _snapshots(self, queries: list[Query]) -> dict[str, Snapshot | None]:
        user_ids = sorted({q.user_id for q in queries if q.user_id is not None})
        if not user_ids or not self.users.configured:
            return {}
        return dict(zip(user_ids, await self.users.snapshots(user_ids), strict=True))


def _items(items: Any, runtime: RecommenderRuntime, where: str) -> tuple[str, ...]:
    if not isinstance(items, list) or len(items) > MAX_VISITOR_ITEMS:
        raise BadInput(where, f"must be a list of at most {MAX_VISITOR_ITEMS} item ids")
    for i, item in enumerate(items):
        if type(item) is not str or item not in runtime.items:
            raise BadInput(f"{where}[{i}]", f"unknown item {str(item)[:64]!r}")
    return tuple(sorted(set(items)))


def _key(loaded: Loaded, query: Query, snapshot: Snapshot | None) -> str:
    manifest = loaded.manifest
    base = f"{REC_PREFIX}:{manifest.model}:{manifest.version}:{manifest.artifact.sha256[:16]}"
    if query.user_id is not None and snapshot is not None:
        return f"{base}:u:{query.user_id}:{snapshot.version}:{query.k}"
    if query.user_id is not None:
        return f"{base}:popular:{query.k}"  # never names an unknown user: nothing to erase later
    digest = hashlib.blake2b(orjson.dumps(query.items), digest_size=16).hexdigest()
    return f"{base}:i:{digest}:{query.k}"


def _compute(runtime: RecommenderRuntime, work: list[tuple[Query, Snapshot | None]]) -> list[Entry]:
    return [_entry(_rank(runtime, query, snapshot)) for query, snapshot in work]


def _rank(runtime: RecommenderRuntime, query: Query, snapshot: Snapshot | None) -> Ranked:
    model = runtime.model
    if query.user_id is not None:
        if snapshot is None:
            return model.popular(query.k)
        history = [(e["item_id"], event_weight(e["type"], e.get("value"))) for e in snapshot.events]
        genres = snapshot.profile.get("genres", [])
        return model.recommend(history, query.k, genres=genres if isinstance(genres, list) else [])
    return model.recommend([(item, VISITOR_WEIGHT) for item in query.items], query.k)


def _valid(entry: Entry | None) -> Entry | None:
    """A cached entry of the shape this module writes; anything else is a miss."""
    if entry is None or not isinstance(entry.get("l"), list) or not {"s", "src"} <= entry.keys():
        return None
    return entry


def _entry(ranked: Ranked) -> Entry:
    return {"l": ranked.items, "s": ranked.scores, "src": ranked.source}
