"""User data in the durable Redis: profiles, capped interaction histories, event-id de-duplication.

Keys of one user (and nothing else of theirs lives in this Redis):
    mlstack:user:<id>          hash: profile (JSON), version, created_at, seq
    mlstack:user:<id>:events   list of events (JSON), oldest first, capped
    mlstack:user:<id>:ids      sorted set of the event ids seen, to count a retried event once

Every write is one Lua script, so it is atomic, and the data Redis runs with `appendfsync always`: an
acknowledged write is on disk. `version` grows with every change; recommendation cache keys carry it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from mlstack import connections
from mlstack.errors import UserDataUnavailable
from mlstack.settings import Settings

log = logging.getLogger("mlstack.users.store")
USER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
LATEST_EVENTS = 20
IDS_PER_EVENT = 4
"""Event ids remembered per kept event: a retry that comes late is still recognised."""

_APPEND = """
local exists = redis.call('EXISTS', KEYS[1]) == 1
local create = ARGV[2] == '1'
if create then
  if exists then return -1 end
  redis.call('HSET', KEYS[1], 'profile', ARGV[3], 'version', 0, 'created_at', ARGV[4], 'seq', 0)
elseif not exists then
  return -2
end
local added = 0
for i = 5, #ARGV, 2 do
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  if redis.call('ZADD', KEYS[3], 'NX', seq, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    added = added + 1
  end
end
local cap = tonumber(ARGV[1])
if added > 0 then
  redis.call('LTRIM', KEYS[2], -cap, -1)
  local extra = redis.call('ZCARD', KEYS[3]) - cap * 4  -- IDS_PER_EVENT
  if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, extra - 1) end
end
if added > 0 or create then redis.call('HINCRBY', KEYS[1], 'version', 1) end
return added
"""
_SET_PROFILE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'profile', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""
_CLEAR_HISTORY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HINCRBY', KEYS[1], 'version', 1)
return 1
"""


def user_keys(user_id: str) -> list[str]:
    base = f"mlstack:user:{user_id}"
    return [base, f"{base}:events", f"{base}:ids"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One user's data as a recommendation reads it, all from one consistent read."""

    version: str
    """Changes with every write, and differs between a user and an erased one of the same id."""
    profile: dict[str, Any]
    events: list[dict[str, Any]]


class UserStore:
    """The data Redis behind the /v1/users routes and the recommendations' fold-in."""

    def __init__(self, settings: Settings) -> None:
        self.max_events = settings.users_max_events
        self._redis = connections.user_data(settings)
        if self._redis is not None:
            self._append = self._redis.register_script(_APPEND)
            self._set_profile = self._redis.register_script(_SET_PROFILE)
            self._clear = self._redis.register_script(_CLEAR_HISTORY)

    @classmethod
    @asynccontextmanager
    async def start(cls, settings: Settings) -> AsyncIterator[UserStore]:
        store = cls(settings)
        try:
            yield store
        finally:
            if store._redis is not None:
                await store._redis.aclose()

    @property
    def configured(self) -> bool:
        return self._redis is not None

    async def create(
        self, user_id: str, profile: dict[str, Any], events: Sequence[dict[str, Any]], now: float
    ) -> bool:
        """False if the id exists already."""
        added = await self._run_append(user_id, events, create=True, profile=profile, now=now)
        return added >= 0

    async def add_events(self, user_id: str, events: Sequence[dict[str, Any]]) -> int | None:
        """How many events were new (a seen event_id counts once); None for an unknown user."""
        added = await self._run_append(user_id, events, create=False)
        return None if added < 0 else added

    async def set_profile(self, user_id: str, profile: dict[str, Any]) -> bool:
        return bool(await self._call(self._set_profile, user_keys(user_id)[:1], [orjson.dumps(profile)]))

    async def clear_history(self, user_id: str) -> bool:
        return bool(await self._call(self._clear, user_keys(user_id)[:2], []))

    async def erase(self, user_id: str) -> bool:
        """Delete every key of the user; False if there was none."""
        redis = self._client()
        try:
            return bool(await redis.delete(*user_keys(user_id)))
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def get(self, user_id: str) -> dict[str, Any] | None:
        hash_key, events_key, _ = user_keys(user_id)
        redis = self._client()
        try:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(hash_key)
                pipe.llen(events_key)
                pipe.lrange(events_key, -LATEST_EVENTS, -1)
                fields, count, latest = await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        if not fields:
            return None
        return {
            "user_id": user_id,
            "profile": orjson.loads(fields[b"profile"]),
            "event_count": count,
            "latest_events": [_public(orjson.loads(e)) for e in reversed(latest)],
            "version": int(fields[b"version"]),
            "created_at": float(fields[b"created_at"]),
        }

    async def snapshots(self, user_ids: Sequence[str]) -> list[Snapshot | None]:
        """Version, profile and history of each user (None when unknown), in one round trip."""
        redis = self._client()
        try:
            async with redis.pipeline(transaction=True) as pipe:
                for user_id in user_ids:
                    hash_key, events_key, _ = user_keys(user_id)
                    pipe.hmget(hash_key, ["version", "created_at", "profile"])
                    pipe.lrange(events_key, 0, -1)
                raw = await pipe.execute()
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        out: list[Snapshot | None] = []
        for (version, created, profile), events in zip(raw[::2], raw[1::2], strict=True):
            if version is None:
                out.append(None)
                continue
            token = f"{created.decode()}-{version.decode()}"
            out.append(Snapshot(token, orjson.loads(profile), [orjson.loads(e) for e in events]))
        return out

    async def _run_append(
        self,
        user_id: str,
        events: Sequence[dict[str, Any]],
        create: bool,
        profile: dict[str, Any] | None = None,
        now: float = 0.0,
    ) -> int:
        args: list[Any] = [self.max_events, "1" if create else "0", orjson.dumps(profile or {}), now]
        for event in events:
            args += [event["event_id"], orjson.dumps(event)]
        result = await self._call(self._append, user_keys(user_id), args)
        return int(result)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        self._client()
        try:
            return await script(keys=keys, args=args)
        except (TimeoutError, RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise UserDataUnavailable("user data store not configured (BACKEND_USERS_REDIS_URL)")
        return self._redis

    @staticmethod
    def _unavailable(exc: BaseException) -> UserDataUnavailable:
        log.warning("user data store unavailable: %s", exc)
        return UserDataUnavailable("user data store unavailable; retry the request")


def _public(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event[k] for k in ("event_id", "item_id", "type", "value", "ts") if k in event}
