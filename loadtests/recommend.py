"""The recommender's Locust user, through the gateway: `make loadtest ARGS="-f loadtests/recommend.py"`.

Its own file: it needs the recommendation model and a key of scope `users` (LOADTEST_KEYS or the run-state
file), which a stack serving only the tabular models may not have. Thresholds decide the exit code.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from locust import FastHttpUser, constant, constant_throughput, task

import thresholds
from settings import LoadtestSettings

SETTINGS = LoadtestSettings()
CATALOGUE: list[str] = []  # the recommender's item ids, filled by the first user
thresholds.install(SETTINGS)


def pace() -> Any:
    """Closed loop, back to back, unless LOADTEST_RATE_PER_USER asks for a steady rate per user."""
    return constant_throughput(SETTINGS.rate_per_user) if SETTINGS.rate_per_user else constant(0)


class Recommend(FastHttpUser):
    """A listener: signs up liking a few items, then mostly asks for a top-10, sometimes plays one of it.
    Writes use the `users` key, reads the predict key; every write changes the next answer (no stale hit)."""

    host = SETTINGS.gateway_url()
    wait_time = pace()

    def on_start(self) -> None:
        self.reader = {"X-API-Key": SETTINGS.predict_key() or ""}
        self.writer = {"X-API-Key": SETTINGS.key_of_scope("users") or ""}
        if not CATALOGUE:
            manifest = self.client.get(f"/v1/models/{SETTINGS.recommender}", headers=self.reader).json()
            CATALOGUE[:] = [item["item_id"] for item in manifest["recommender"]["items"]]
        self.user_id = f"load-{uuid.uuid4().hex[:12]}"
        likes = [{"item_id": item, "type": "like"} for item in random.sample(CATALOGUE, 3)]
        body = {"user_id": self.user_id, "events": likes}
        self.client.post("/v1/users", json=body, headers=self.writer, name="/v1/users")

    def on_stop(self) -> None:
        self.client.delete(f"/v1/users/{self.user_id}", headers=self.writer, name="/v1/users/{id}")

    @task(5)
    def recommend(self) -> None:
        body = {"instances": [{"user_id": self.user_id, "k": 10}]}
        path = f"/v1/models/{SETTINGS.recommender}:predict"
        with self.client.post(path, json=body, headers=self.reader, name=path, catch_response=True) as r:
            if r.status_code == 200:
                self.last = r.json()["predictions"][0]

    @task(1)
    def play(self) -> None:
        item = random.choice(getattr(self, "last", None) or CATALOGUE)
        events = {"events": [{"event_id": uuid.uuid4().hex, "item_id": item, "type": "play", "value": 1.0}]}
        self.client.post(
            f"/v1/users/{self.user_id}/events", json=events, headers=self.writer, name="/v1/users/{id}/events"
        )
