"""Live counts in Redis: one hash per model version and time bucket, that every replica adds to.

    mlstack:drift:<model>:<version>:<bucket start, epoch s>   hash: layout field → count

A flush is one MULTI/EXEC pipeline (it lands whole or not at all, so `n` agrees with the bins): HINCRBY per
non-zero field, then EXPIREAT at the bucket's end plus the retention, the same instant whichever replica
sends it. A window is read by computing its buckets' keys (no SCAN) and summing their hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis

from mlstack.drift.layout import Layout

KEY_PREFIX = "mlstack:drift:"


@dataclass(frozen=True, slots=True)
class Taken:
    """One version's counts since the last flush, with its layout's field names."""

    model: str
    version: str
    fields: Sequence[str]
    counts: list[int]


@dataclass(frozen=True, slots=True)
class Span:
    """The buckets a window covers: from the start of the oldest to now."""

    since: int
    until: float
    buckets: list[int]


def bucket_key(model: str, version: str, bucket: int) -> str:
    return f"{KEY_PREFIX}{model}:{version}:{bucket}"


def span(now: float, window_s: int, bucket_s: int) -> Span:
    """Whole buckets: a window of 15 minutes in 1-minute buckets reads 16 of them, the current one
    partly filled, and says so in `since`."""
    last = int(now // bucket_s) * bucket_s
    first = int((now - window_s) // bucket_s) * bucket_s
    return Span(first, now, list(range(first, last + 1, bucket_s)))


class Buckets:
    def __init__(self, client: aioredis.Redis, bucket_s: int, retention_s: int) -> None:
        self._redis = client
        self.bucket_s = bucket_s
        self.retention_s = retention_s

    async def add(self, taken: Sequence[Taken], now: float) -> None:
        """Every version's counts into the current bucket, in one transaction."""
        bucket = int(now // self.bucket_s) * self.bucket_s
        expires_at = bucket + self.bucket_s + self.retention_s
        async with self._redis.pipeline(transaction=True) as pipe:
            for one in taken:
                key = bucket_key(one.model, one.version, bucket)
                for field, count in zip(one.fields, one.counts, strict=True):
                    if count:
                        pipe.hincrby(key, field, count)
                pipe.expireat(key, expires_at)
            await pipe.execute()

    async def read(self, model: str, version: str, layout: Layout, window: Span) -> list[int]:
        """The sum of the window's buckets, laid out like the counters (fields it does not know skipped)."""
        position = {field.encode(): i for i, field in enumerate(layout.fields)}
        totals = [0] * len(layout)
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in window.buckets:
                pipe.hgetall(bucket_key(model, version, bucket))
            hashes = await pipe.execute()
        for found in hashes:
            for field, count in found.items():
                i = position.get(field)
                if i is not None:
                    totals[i] += int(count)
        return totals
