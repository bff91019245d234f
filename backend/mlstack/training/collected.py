"""Interactions the stack's users sent, read from the data Redis, for the next model version to learn."""

from __future__ import annotations

import orjson
import pandas as pd
import redis

from mlstack.users.store import user_keys

EVENTS_KEYS = "mlstack:user:*:events"
COLUMNS = ["user_id", "item_id", "type", "value", "ts"]


def collected_events(url: str, items: set[str]) -> pd.DataFrame:
    """Every stored event of every user whose item is still in the catalogue (SCAN, one LRANGE per user)."""
    rows = []
    with redis.Redis.from_url(url, socket_timeout=10) as client:
        for key in client.scan_iter(match=EVENTS_KEYS, count=1000):
            user_id = key.decode().split(":")[2]
            if key.decode() != user_keys(user_id)[1]:
                continue  # a user id never holds ':'; anything else is not ours
            for raw in client.lrange(key, 0, -1):
                event = orjson.loads(raw)
                if event.get("item_id") in items:
                    rows.append([f"live-{user_id}", *(event.get(c) for c in COLUMNS[1:])])
    return pd.DataFrame(rows, columns=COLUMNS)
