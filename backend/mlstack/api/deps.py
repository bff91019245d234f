"""Typed reads of what the lifespan put on app.state, for route handlers to declare."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mlstack.serving.core import Inference
from mlstack.serving.registry import Registry
from mlstack.settings import Settings


async def get_inference(request: Request) -> Inference:
    return request.app.state.inference  # type: ignore[no-any-return]


async def get_registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


InferenceDep = Annotated[Inference, Depends(get_inference)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
