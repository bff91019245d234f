"""This replica's Prometheus metrics (its own registry) and the rolling figures behind its stats snapshot."""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from mlstack.drift.schema import DriftReport

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WINDOW_S = 60.0
RECENT_MAX = 2048
"""Requests kept for the snapshot: the last minute or the last RECENT_MAX, whichever is shorter. The
snapshot runs on the event loop every second; over a full minute at thousands of requests per second it
took 100 ms and more, every second (seen as a p99 of 130 ms in the benchmark)."""


class Metrics:
    """Counters for /metrics, plus a window of recent requests for percentiles in the stats snapshot."""

    def __init__(self, replica: str) -> None:
        self.replica = replica
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mlstack_requests", "HTTP requests answered", ["route", "model", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mlstack_request_seconds",
            "Time to answer a request",
            ["route", "model"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.cache_rows = Counter(
            "mlstack_cache_rows", "Rows looked up in the prediction cache", ["result"], registry=self.registry
        )
        self.cache_unwritten_rows = Counter(
            "mlstack_cache_unwritten_rows",
            "Computed rows left out of the cache: Redis lagged too far behind, or the connection was lost",
            registry=self.registry,
        )
        self.near_cache_rows = Counter(
            "mlstack_near_cache_rows",
            "Cache hits answered from this replica's memory, without Redis (part of the hits)",
            registry=self.registry,
        )
        self.predicted_rows = Counter(
            "mlstack_predicted_rows", "Rows computed by a model", ["model", "version"], registry=self.registry
        )
        self.batch_rows = Histogram(
            "mlstack_batch_rows",
            "Rows per pipeline call after micro-batching",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000),
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "mlstack_batch_requests",
            "Requests served by one pipeline call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "mlstack_model_loaded",
            "1 when the version is loaded and serving by default",
            ["model", "version"],
            registry=self.registry,
        )
        self.drift = DriftGauges(self.registry)
        self._recent: deque[tuple[float, float, int, str]] = deque(maxlen=RECENT_MAX)
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        """The labelled counter and histogram per (route, model, status): labels() locks and builds a key
        on every call, a tenth of a cheap request's time."""
        self._cache_series = {result: self.cache_rows.labels(result) for result in ("hit", "miss", "bypass")}
        self._predicted_series: dict[tuple[str, str], Any] = {}
        self._cache = Tally[str]()
        self._totals = Tally[str]()
        self.started_at = time.time()

    def observe(self, route: str, model: str, status: int, seconds: float, version: str) -> None:
        series = self._series.get((route, model, status))
        if series is None:
            series = self.requests.labels(route, model, str(status)), self.latency.labels(route, model)
            self._series[(route, model, status)] = series
        series[0].inc()
        series[1].observe(seconds)
        self._totals["requests"] += 1
        self._totals["errors"] += status >= 500
        if version:
            self._recent.append((time.monotonic(), seconds, status, f"{model}:{version}"))

    def count_batch(self, rows: int, requests: int) -> None:
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)

    def count_cache(self, hits: int, misses: int, bypassed: int) -> None:
        for result, rows in (("hit", hits), ("miss", misses), ("bypass", bypassed)):
            if rows:
                self._cache_series[result].inc(rows)
                self._cache[result] += rows

    def count_predicted(self, model: str, version: str, rows: int) -> None:
        series = self._predicted_series.get((model, version))
        if series is None:
            series = self._predicted_series[(model, version)] = self.predicted_rows.labels(model, version)
        series.inc(rows)

    def show_drift(self, reports: list[DriftReport]) -> None:
        self.drift.show(reports)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """This replica's figures over the last minute, as the stats route and the UI show them."""
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - WINDOW_S:
            self._recent.popleft()
        window = now - self._recent[0][0] if self._recent else WINDOW_S
        return {
            "name": self.replica,
            "updated_at": time.time(),
            "uptime_s": round(time.time() - self.started_at, 1),
            "requests_total": self._totals["requests"],
            "errors_total": self._totals["errors"],
            "cache": {
                "hits": self._cache["hit"],
                "misses": self._cache["miss"],
                "bypasses": self._cache["bypass"],
            },
            "window_s": round(max(window, 1.0), 1),
            "predictions": _by_version(list(self._recent), max(window, 1.0)),
        }


def _by_version(recent: list[tuple[float, float, int, str]], window_s: float) -> dict[str, Any]:
    grouped: dict[str, list[tuple[float, int]]] = {}
    for _, seconds, status, key in recent:
        grouped.setdefault(key, []).append((seconds, status))
    return {key: _figures(items, window_s) for key, items in grouped.items()}


def _figures(items: list[tuple[float, int]], window_s: float) -> dict[str, Any]:
    latencies_ms = np.array([seconds for seconds, _ in items]) * 1000
    p50, p95, p99 = np.percentile(latencies_ms, [50, 95, 99]).round(2).tolist()
    errors = sum(status >= 500 for _, status in items)
    return {
        "requests": len(items),
        "per_s": round(len(items) / window_s, 2),
        "error_ratio": round(errors / len(items), 4),
        "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
    }


class DriftGauges:
    """Each model's current version over the default drift window (BACKEND_DRIFT_WINDOW_S), all replicas'
    rows merged: what GET /v1/models/{m}/drift answers, recomputed every BACKEND_DRIFT_GAUGES_S."""

    def __init__(self, registry: CollectorRegistry) -> None:
        version = ["model", "version"]
        feature = [*version, "feature"]
        self.rows = Gauge("mlstack_drift_rows", "Rows served in the drift window", version, registry=registry)
        self.refused_share = Gauge(
            "mlstack_drift_refused_share",
            "Share of the window's rows refused by validation (422)",
            version,
            registry=registry,
        )
        self.enough_rows = Gauge(
            "mlstack_drift_enough_rows",
            "1 when the window has enough rows for flags to mean anything",
            version,
            registry=registry,
        )
        self.drifted_share = Gauge(
            "mlstack_drift_drifted_share",
            "Share of the features flagged as drifted",
            version,
            registry=registry,
        )
        self.flagged = Gauge(
            "mlstack_drift_flagged", "1 when the feature is flagged as drifted", feature, registry=registry
        )
        self.score = Gauge(
            "mlstack_drift_score",
            "Per feature: js (Jensen-Shannon distance, base 2), psi, wasserstein (in training std), and the "
            "live missing_share, out_of_range_share, unseen_share and refused_share",
            [*feature, "measure"],
            registry=registry,
        )

    def show(self, reports: list[DriftReport]) -> None:
        """Replace every drift series (a version no longer current drops out), on the event loop at once."""
        for gauge in (
            self.rows,
            self.refused_share,
            self.enough_rows,
            self.drifted_share,
            self.flagged,
            self.score,
        ):
            gauge.clear()
        for report in reports:
            version = (report.model, report.version)
            self.rows.labels(*version).set(report.rows)
            self.refused_share.labels(*version).set(report.refused_share or 0.0)
            self.enough_rows.labels(*version).set(report.status != "insufficient_data")
            self.drifted_share.labels(*version).set(report.drifted_share)
            for feature in report.features:
                self.flagged.labels(*version, feature.name).set(feature.flagged)
                measures = {
                    "js": feature.js,
                    "psi": feature.psi,
                    "wasserstein": feature.wasserstein,
                    "missing_share": feature.missing_share,
                    "out_of_range_share": feature.out_of_range_share,
                    "unseen_share": feature.unseen_share,
                    "refused_share": feature.refused_share,
                }
                for measure, value in measures.items():
                    if value is not None:
                        self.score.labels(*version, feature.name, measure).set(value)
