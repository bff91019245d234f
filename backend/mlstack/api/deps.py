"""Typed reads of what the lifespan put on app.state, for route handlers to declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mlstack.api.memory import AnswerMemory
from mlstack.recommend.erasure import CachedRecommendations
from mlstack.serving.registry import Registry
from mlstack.settings import Settings
from mlstack.users.store import UserStore


async def get_answers(request: Request) -> AnswerMemory:
    return request.app.state.answers  # type: ignore[no-any-return]


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_users(request: Request) -> UserStore:
    return request.app.state.users  # type: ignore[no-any-return]


async def get_recommendations(request: Request) -> CachedRecommendations:
    return request.app.state.recommendations  # type: ignore[no-any-return]


AnswersDep = Annotated[AnswerMemory, Depends(get_answers)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
UsersDep = Annotated[UserStore, Depends(get_users)]
RecommendationsDep = Annotated[CachedRecommendations, Depends(get_recommendations)]
