"""User-data bodies checked against the recommender's catalogue; every error names the field."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import Collection
from typing import Any

import orjson

from mlstack.errors import BadInput, MalformedRequest, TooManyRows
from mlstack.recommend.model import EVENT_TYPES
from mlstack.users.store import USER_ID

EVENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
EVENT_FIELDS = frozenset({"event_id", "item_id", "type", "value", "ts"})
MAX_PROFILE_BYTES = 4096
VALUE_RANGE = {"play": (0.0, 1.0), "rating": (1.0, 5.0), "like": (0.0, 1.0), "skip": (0.0, 1.0)}
"""play: share watched; rating: stars; like and skip: 1 (the value may be left out)."""
MAX_TS = 1e11
"""Event times are seconds since 1970, below this (the year 5138)."""


def user_id(value: Any, where: str = "user_id") -> str:
    if type(value) is not str or not USER_ID.match(value):
        raise BadInput(
            where, f"must be 1-64 characters of letters, digits, '_', '.' or '-' ({USER_ID.pattern})"
        )
    return value


def profile(value: Any, genres: Collection[str], where: str = "profile") -> dict[str, Any]:
    """Any small JSON object; `genres`, if given, lists preferred genres of the catalogue."""
    if not isinstance(value, dict):
        raise BadInput(where, "must be an object")
    if len(orjson.dumps(value)) > MAX_PROFILE_BYTES:
        raise BadInput(where, f"larger than {MAX_PROFILE_BYTES} bytes")
    liked = value.get("genres", [])
    if not isinstance(liked, list):
        raise BadInput(f"{where}.genres", "must be a list of genres")
    for i, genre in enumerate(liked):
        if type(genre) is not str or genre not in genres:  # a list or an object is no genre (nor hashable)
            raise BadInput(
                f"{where}.genres[{i}]", f"unknown genre {str(genre)[:40]!r}; known: {sorted(genres)}"
            )
    return value


def events(value: Any, items: Collection[str], limit: int, where: str = "events") -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise BadInput(where, "must be a list of events")
    if len(value) > limit:
        raise TooManyRows(f"{where}: {len(value)} events, more than the limit of {limit}")
    return [_event(event, items, f"{where}[{i}]") for i, event in enumerate(value)]


def _event(event: Any, items: Collection[str], where: str) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise BadInput(where, "must be an object")
    unknown = sorted(set(event) - EVENT_FIELDS)
    if unknown:
        raise BadInput(f"{where}.{str(unknown[0])[:64]}", "unknown field")
    item = event.get("item_id")
    if type(item) is not str:
        raise BadInput(f"{where}.item_id", "required, a string")
    if item not in items:
        raise BadInput(f"{where}.item_id", f"unknown item {item[:64]!r}")
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        raise BadInput(f"{where}.type", f"must be one of {list(EVENT_TYPES)}")
    return {
        "event_id": _event_id(event.get("event_id"), where),
        "item_id": item,
        "type": kind,
        "value": _value(event.get("value"), kind, where),
        "ts": _ts(event.get("ts"), where),
    }


def _event_id(value: Any, where: str) -> str:
    if value is None:
        return uuid.uuid4().hex  # without an id of the client's, a retry cannot be recognised
    if type(value) is not str or not EVENT_ID.match(value):
        raise BadInput(f"{where}.event_id", f"must match {EVENT_ID.pattern}")
    return value


def _value(value: Any, kind: str, where: str) -> float:
    low, high = VALUE_RANGE[kind]
    if value is None:
        if kind == "rating":
            raise BadInput(f"{where}.value", "a rating needs a value from 1 to 5")
        return high
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
        raise BadInput(f"{where}.value", f"must be a number from {low:g} to {high:g} for {kind}")
    return float(value)


def _ts(value: Any, where: str) -> float:
    if value is None:
        return round(time.time(), 3)
    if type(value) not in (int, float) or not 0 <= value < MAX_TS:
        raise BadInput(f"{where}.ts", "must be seconds since 1970 (a number)")
    return float(value)


def top_level(body: dict[str, Any], allowed: Collection[str]) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise MalformedRequest(
            f"{extra[0][:64]}: unknown top-level field (allowed: {', '.join(sorted(allowed))})"
        )
