"""Locust users for the stack, all through the gateway: `make loadtest` (headless, loadtests/locust.conf).

OneRow (cache misses: every row new), Batch (LOADTEST_BATCH_ROWS rows), CacheHit (a few rows repeated),
V2Infer (the Open Inference Protocol), Mixed (a client with think time); recommend.py has the
recommender's user. Pick some by name:
`locust --config loadtests/locust.conf OneRow CacheHit`. Rows follow the model's manifest schema, fetched
once per process. Thresholds (thresholds.py) decide the exit code; shapes.py adds a step load.
"""

from __future__ import annotations

import itertools
import json
import logging
import urllib.request
from typing import Any

from locust import FastHttpUser, between, constant, constant_throughput, events, task
from locust.env import Environment

import thresholds
from payloads import RowMaker, v1_body, v2_body
from settings import LoadtestSettings

SETTINGS = LoadtestSettings()
MODEL = SETTINGS.model
PREDICT = f"/v1/models/{MODEL}:predict"
INFER = f"/v2/models/{MODEL}/infer"
SCHEMA: list[dict[str, Any]] = []  # the manifest's inputs, filled once when Locust starts
log = logging.getLogger("loadtests")
thresholds.install(SETTINGS)


@events.init.add_listener
def _fetch_schema(environment: Environment, **_: object) -> None:
    host, key = environment.host or SETTINGS.gateway_url(), SETTINGS.predict_key()
    if not host or not key:
        raise SystemExit(
            "loadtests: no gateway or no key. Start the stack (`make start`) or set LOADTEST_HOST and "
            "LOADTEST_API_KEY."
        )
    request = urllib.request.Request(f"{host}/v1/models/{MODEL}", headers={"X-API-Key": key})
    with urllib.request.urlopen(request, timeout=10) as response:
        SCHEMA[:] = json.load(response)["inputs"]


def pace() -> Any:
    """Closed loop, back to back, unless LOADTEST_RATE_PER_USER asks for a steady rate per user."""
    return constant_throughput(SETTINGS.rate_per_user) if SETTINGS.rate_per_user else constant(0)


class ModelUser(FastHttpUser):
    abstract = True
    host = SETTINGS.gateway_url()
    default_headers = {"X-API-Key": SETTINGS.predict_key() or ""}

    def on_start(self) -> None:
        self.rows = RowMaker(SCHEMA)

    def predict(self, rows: list[dict[str, Any]], label: str) -> None:
        self.client.post(PREDICT, json=v1_body(rows), name=f"{PREDICT} ({label})")

    def infer(self, rows: list[dict[str, Any]]) -> None:
        self.client.post(INFER, json=v2_body(SCHEMA, rows), name=INFER)


class OneRow(ModelUser):
    """One new row per request: every prediction is a cache miss and reaches the model."""

    wait_time = pace()

    @task
    def one_row(self) -> None:
        self.predict([self.rows.row()], "1 row")


class Batch(ModelUser):
    """LOADTEST_BATCH_ROWS new rows per request."""

    wait_time = pace()

    @task
    def batch(self) -> None:
        self.predict(self.rows.rows(SETTINGS.batch_rows), f"{SETTINGS.batch_rows} rows")


class CacheHit(ModelUser):
    """The same few rows again and again: after the first round every answer comes from the cache."""

    wait_time = pace()

    def on_start(self) -> None:
        self.repeat = itertools.cycle(RowMaker(SCHEMA, seed=1).rows(SETTINGS.hit_pool_rows))

    @task
    def repeated_row(self) -> None:
        self.predict([next(self.repeat)], "1 row, repeated")


class V2Infer(ModelUser):
    """One new row per request through the Open Inference Protocol's infer."""

    wait_time = pace()

    @task
    def infer_one(self) -> None:
        self.infer([self.rows.row()])


class Mixed(ModelUser):
    """A client application: looks at the model now and then, mostly single predictions, some batches."""

    weight = 3
    wait_time = between(SETTINGS.think_min_s, SETTINGS.think_max_s)

    def on_start(self) -> None:
        super().on_start()
        self.repeat = itertools.cycle(RowMaker(SCHEMA, seed=2).rows(SETTINGS.hit_pool_rows))

    @task(6)
    def one_row(self) -> None:
        self.predict([self.rows.row()], "1 row")

    @task(3)
    def repeated_row(self) -> None:
        self.predict([next(self.repeat)], "1 row, repeated")

    @task(1)
    def small_batch(self) -> None:
        self.predict(self.rows.rows(10), "10 rows")

    @task(1)
    def infer_one(self) -> None:
        self.infer([self.rows.row()])

    @task(1)
    def manifest(self) -> None:
        self.client.get(f"/v1/models/{MODEL}", name="/v1/models/{m}")
