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
    answers: AnswerMemory = request.app.state.answers
    return answers


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_users(request: Request) -> UserStore:
    users: UserStore = request.app.state.users
    return users


async def get_recommendations(request: Request) -> CachedRecommendations:
    recommendations: CachedRecommendations = request.app.state.recommendations
    return recommendations


AnswersDep = Annotated[AnswerMemory, Depends(get_answers)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
UsersDep = Annotated[UserStore, Depends(get_users)]
RecommendationsDep = Annotated[CachedRecommendations, Depends(get_recommendations)]
