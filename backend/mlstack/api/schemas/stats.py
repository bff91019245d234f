"""The statistics route's answer: each live replica's figures over the last minute (telemetry/metrics.py)."""

from __future__ import annotations

from pydantic import BaseModel


class CacheCounts(BaseModel):
    hits: int
    misses: int
    bypasses: int


class Latency(BaseModel):
    p50: float
    p95: float
    p99: float


class Figures(BaseModel):
    requests: int
    per_s: float
    error_ratio: float
    latency_ms: Latency


class ReplicaStats(BaseModel):
    name: str
    updated_at: float
    uptime_s: float
    requests_total: int
    errors_total: int
    cache: CacheCounts
    window_s: float
    predictions: dict[str, Figures]
    """Per model and version."""


class Stats(BaseModel):
    replicas: list[ReplicaStats]
