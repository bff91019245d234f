"""Every connection a replica makes to Redis, made here from the settings.

| for              | Redis | client    | connect | each command          | retried  | connections  |
| ---------------- | ----- | --------- | ------- | --------------------- | -------- | ------------ |
| cache lookups    | cache | RedisPipe | 2 s (a) | REDIS_TIMEOUT_MS      | once (b) | 1, pipelined |
| cache writes     | cache | RedisPipe | 2 s     | not waited for (c)    | no       | 1, pipelined |
| near-cache watch | cache | redis-py  | 1 s     | PING each 1 s (d)     | no (e)   | 1            |
| statistics       | cache | redis-py  | T       | T = REDIS_TIMEOUT_MS  | no (f)   | up to 4      |
| store changes    | cache | redis-py  | 0.5 s   | none: subscribed      | no (g)   | up to 2      |
| user data        | data  | redis-py  | U       | U = USERS_REDIS_TIMEOUT_MS (h) | once (b) | up to 64 |
| drift counts     | cache | redis-py  | 2 s     | 2 s                   | no (i)   | up to 2      |

Settings are BACKEND_*. Every connection has TCP keepalive (5 s idle, then 2 s × 3 probes): a Redis that
vanishes without a word (a network cut; a restart closes its connections) leaves a connection no timeout
closes, since a reply that is merely late still comes; the kernel finds it dead within about 11 s.
(a) a request waits for a new connection at most its own budget; the connection goes on being made.
(b) on a new connection, when the old one is found dead (after a Redis restart its first use fails);
    every command sent is safe to replay (lookups; user-data writes de-duplicate events by id).
(c) a lost write leaves its rows uncached. (d) answered within 1 s: a busy Redis is not a lost one.
(e) reconnects after BACKEND_CACHE_RETRY_AFTER_S. (f) the next second's snapshot replaces a lost one.
(g) resubscribes every second. (h) every user-data write waits for an fsync.
(i) a lost flush loses a few seconds of counts; no request waits on it (the drift route's read does).
"""

from __future__ import annotations

import socket

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry  # the asyncio one: the sync Retry never retries a coroutine
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError

from mlstack.cache.pipe import RedisPipe
from mlstack.settings import Settings

CACHE_CONNECT_TIMEOUT_S = 2.0
"""How long a connection to the cache may take to be made. A request waits for it only as long as its own
budget (BACKEND_REDIS_TIMEOUT_MS); in Compose, resolving `redis` and connecting took over 25 ms."""
WATCH_TIMEOUT_S = 1.0
"""Lenient: a busy Redis is not a lost one. Lookups keep their own, much shorter timeout."""
STORE_EVENTS_CONNECT_TIMEOUT_S = 0.5
DRIFT_TIMEOUT_S = 2.0
"""Flushes run in the background and the drift route reads many buckets: neither is a lookup's budget."""
KEEPALIVE = {"TCP_KEEPIDLE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 3}
"""Linux names; elsewhere the system's own keepalive timing applies."""
KEEPALIVE_OPTIONS = {
    getattr(socket, name): value for name, value in KEEPALIVE.items() if hasattr(socket, name)
}


def cache_lookups(settings: Settings) -> RedisPipe | None:
    if not (settings.cache_enabled and settings.redis_url):
        return None
    return RedisPipe(
        settings.redis_url, settings.redis_timeout_ms / 1000, CACHE_CONNECT_TIMEOUT_S, KEEPALIVE_OPTIONS
    )


def cache_writes(settings: Settings) -> RedisPipe | None:
    """A connection of their own: Redis takes turns between connections, so a lookup never waits behind a
    long run of SETs (on one connection, under batch load, it did)."""
    return cache_lookups(settings)


def cache_watch(settings: Settings) -> aioredis.Redis | None:
    """Its own connection: sharing a pool with lookups, a restart of Redis broke a lookup."""
    if not (settings.cache_enabled and settings.redis_url and settings.near_cache_entries):
        return None
    return _client(settings.redis_url, WATCH_TIMEOUT_S, None, retries=0, connections=1)


def stats(settings: Settings) -> aioredis.Redis | None:
    if not settings.redis_url:
        return None
    timeout_s = settings.redis_timeout_ms / 1000
    return _client(settings.redis_url, timeout_s, timeout_s, retries=0, connections=4)


def store_events(settings: Settings) -> aioredis.Redis | None:
    if not settings.redis_url:
        return None
    return _client(settings.redis_url, STORE_EVENTS_CONNECT_TIMEOUT_S, None, retries=0, connections=2)


def drift_counts(settings: Settings) -> aioredis.Redis | None:
    if not settings.redis_url:
        return None
    return _client(settings.redis_url, DRIFT_TIMEOUT_S, DRIFT_TIMEOUT_S, retries=0, connections=2)


def user_data(settings: Settings) -> aioredis.Redis | None:
    if not settings.users_redis_url:
        return None
    timeout_s = settings.users_redis_timeout_ms / 1000
    return _client(settings.users_redis_url, timeout_s, timeout_s, retries=1, connections=64)


def _client(
    url: str, connect_timeout_s: float, timeout_s: float | None, retries: int, connections: int
) -> aioredis.Redis:
    """redis-py's asyncio client (with hiredis's parser when installed) that fails fast: no backoff, and a
    retry only for a broken connection (a pooled socket after a Redis restart)."""
    return aioredis.Redis.from_url(
        url,
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=timeout_s,
        socket_keepalive=True,
        socket_keepalive_options=KEEPALIVE_OPTIONS,
        retry=Retry(NoBackoff(), retries, supported_errors=(ConnectionError,)),
        health_check_interval=0,
        max_connections=connections,
    )
