"""User data for recommendations: create, read, update the profile, add events, clean, erase.

Writes need scope `users` or `admin` (the gateway decides); every body is checked against the catalogue
of the recommender model (BACKEND_RECOMMENDER_MODEL) before anything is stored.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from mlstack.api.body import documented_body, json_object, json_response
from mlstack.api.deps import RecommendationsDep, RegistryDep, SettingsDep, UsersDep
from mlstack.api.lean_route import LeanRoute
from mlstack.api.schemas.errors import error_responses
from mlstack.api.schemas.users import EventsAdded, NewEvents, NewUser, ProfileChange, User
from mlstack.errors import Conflict, ModelNotReady, NotFound, UserDataUnavailable
from mlstack.recommend.runtime import RecommenderRuntime
from mlstack.users import payloads as user_input
from mlstack.users.store import UserStore


async def catalogue(registry: RegistryDep, settings: SettingsDep) -> RecommenderRuntime:
    """The served recommender, whose items and genres bodies are checked against."""
    try:
        loaded = await registry.get(settings.recommender_model)
    except NotFound:
        raise ModelNotReady(f"no recommender model '{settings.recommender_model}' in the store") from None
    if not isinstance(loaded.runtime, RecommenderRuntime):
        raise ModelNotReady(f"model '{settings.recommender_model}' is not a recommender")
    return loaded.runtime


CatalogueDep = Annotated[RecommenderRuntime, Depends(catalogue)]
LOCATION = {"description": "The new user's path", "required": True, "schema": {"type": "string"}}


async def create_user(
    request: Request, users: UsersDep, items: CatalogueDep, settings: SettingsDep
) -> Response:
    """Create a user: `{"user_id": ..., "profile": {...}, "events": [...]}`; the id is made if absent."""
    body = await json_object(request)
    user_input.top_level(body, {"user_id", "profile", "events"})
    user_id = user_input.user_id(body["user_id"]) if "user_id" in body else uuid.uuid4().hex
    profile = user_input.profile(body.get("profile", {}), items.genres)
    events = user_input.events(body.get("events", []), items.items, settings.users_max_events_per_request)
    if not await users.create(user_id, profile, events, now=round(time.time(), 6)):
        raise Conflict(f"user '{user_id}' exists already")
    user = await _user(users, user_id)
    return json_response(user, status_code=201, headers={"Location": f"/v1/users/{user_id}"})


async def get_user(user_id: str, users: UsersDep) -> Response:
    """Profile, event count and the latest events (newest first)."""
    return json_response(await _user(users, user_input.user_id(user_id)))


async def replace_profile(user_id: str, request: Request, users: UsersDep, items: CatalogueDep) -> Response:
    """Replace the profile: `{"profile": {"genres": [...], ...}}`; the history stays."""
    body = await json_object(request)
    user_input.top_level(body, {"profile"})
    profile = user_input.profile(body.get("profile", {}), items.genres)
    if not await users.set_profile(user_input.user_id(user_id), profile):
        raise _unknown(user_id)
    return json_response(await _user(users, user_id))


async def add_events(
    user_id: str, request: Request, users: UsersDep, items: CatalogueDep, settings: SettingsDep
) -> Response:
    """Append events; an event_id seen before is not counted again, so a retried request is harmless."""
    body = await json_object(request)
    user_input.top_level(body, {"events"})
    events = user_input.events(body.get("events"), items.items, settings.users_max_events_per_request)
    added = await users.add_events(user_input.user_id(user_id), events)
    if added is None:
        raise _unknown(user_id)
    return json_response({"user_id": user_id, "added": added, "duplicates": len(events) - added})


async def clear_history(user_id: str, users: UsersDep) -> Response:
    """Clean the interaction history; the profile stays."""
    if not await users.clear_history(user_input.user_id(user_id)):
        raise _unknown(user_id)
    return Response(status_code=204)


async def erase_user(user_id: str, users: UsersDep, recommendations: RecommendationsDep) -> Response:
    """Erase the user: profile, history, event ids, and every cached recommendation of theirs."""
    existed = await users.erase(user_input.user_id(user_id))
    if not await recommendations.forget(user_id):
        raise UserDataUnavailable(
            "user data erased; the cache did not answer, so retry to remove cached items"
        )
    if not existed:
        raise _unknown(user_id)
    return Response(status_code=204)


async def _user(users: UserStore, user_id: str) -> dict[str, Any]:
    user = await users.get(user_id)
    if user is None:
        raise _unknown(user_id)
    return user


def _unknown(user_id: str) -> NotFound:
    return NotFound(f"user '{user_id[:64]}' not found")


def router() -> APIRouter:
    """The routes of this module, built when an app is (the path types are registered then)."""
    router = APIRouter(tags=["users"], route_class=LeanRoute)
    user = "/v1/users/{user_id}"
    read = error_responses(404, 422, 503)
    write = error_responses(400, 404, 413, 415, 422, 503)
    created = {201: {"headers": {"Location": LOCATION}}, **error_responses(400, 409, 413, 415, 422, 503)}
    router.post(
        "/v1/users",
        status_code=201,
        response_model=User,
        responses=created,
        openapi_extra=documented_body(NewUser),
    )(create_user)
    router.get(user, response_model=User, responses=read)(get_user)
    router.put(user, response_model=User, responses=write, openapi_extra=documented_body(ProfileChange))(
        replace_profile
    )
    router.post(
        f"{user}/events",
        response_model=EventsAdded,
        responses=write,
        openapi_extra=documented_body(NewEvents),
    )(add_events)
    router.delete(f"{user}/history", status_code=204, responses=read)(clear_history)
    router.delete(user, status_code=204, responses=read)(erase_user)
    return router
