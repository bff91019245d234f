"""User-data bodies and answers. The handlers read bodies themselves (users/payloads.py, where every
error names its field); these models document the same rules. The catalogue's items and genres are
data of the served recommender, not of the document: an unknown one is a 422."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from mlstack.users.payloads import EVENT_ID, MAX_PROFILE_BYTES, MAX_TS, VALUE_RANGE
from mlstack.users.store import USER_ID

UserId = Annotated[str, Field(pattern=USER_ID.pattern, examples=["ada-42"])]
EventId = Annotated[str, Field(pattern=EVENT_ID.pattern)]
Timestamp = Annotated[float, Field(ge=0, lt=MAX_TS, description="Seconds since 1970; now if left out")]


def _share(kind: str) -> Any:
    low, high = VALUE_RANGE[kind]
    return Field(default=None, ge=low, le=high, description=f"{low:g} to {high:g}; {high:g} if left out")


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: EventId | None = None
    """The client's id: an event sent again with it is not counted twice. Made up if left out."""
    item_id: str
    """An item of the recommender's catalogue."""
    ts: Timestamp | None = None


class PlayEvent(_Event):
    type: Literal["play"]
    value: float | None = _share("play")
    """The share of the film watched."""


class LikeEvent(_Event):
    type: Literal["like"]
    value: float | None = _share("like")


class SkipEvent(_Event):
    type: Literal["skip"]
    value: float | None = _share("skip")


class RatingEvent(_Event):
    type: Literal["rating"]
    value: float = Field(ge=VALUE_RANGE["rating"][0], le=VALUE_RANGE["rating"][1])
    """Stars."""


Event = Annotated[PlayEvent | LikeEvent | SkipEvent | RatingEvent, Field(discriminator="type")]

Events = Annotated[
    list[Event], Field(json_schema_extra={"x-max-items-setting": "users_max_events_per_request"})
]
"""At most BACKEND_USERS_MAX_EVENTS_PER_REQUEST events (the document says the replica's figure)."""


class Profile(BaseModel):
    """Any JSON object of at most MAX_PROFILE_BYTES bytes; `genres` lists preferred catalogue genres."""

    model_config = ConfigDict(
        extra="allow", json_schema_extra={"description": f"At most {MAX_PROFILE_BYTES} bytes"}
    )

    genres: list[str] = []


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId | SkipJsonSchema[None] = None
    """Made up (32 hex digits) if left out (null is no id: a 422)."""
    profile: Profile = Profile()
    events: Events = []


class ProfileChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: Profile = Profile()


class NewEvents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: Events


class StoredEvent(BaseModel):
    event_id: EventId
    item_id: str
    type: Literal["play", "like", "skip", "rating"]
    value: float
    ts: float


class User(BaseModel):
    user_id: UserId
    profile: dict[str, Any]
    event_count: int = Field(ge=0)
    latest_events: list[StoredEvent]
    """Newest first."""
    version: int = Field(ge=1)
    """Goes up with every write: cached recommendations are keyed by it."""
    created_at: float


class EventsAdded(BaseModel):
    user_id: UserId
    added: int = Field(ge=0)
    duplicates: int = Field(ge=0)
    """Events whose event_id the user's history had already: not counted again."""
