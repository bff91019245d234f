"""A FastAPI route that calls its endpoint directly when the endpoint only needs what is cheap to give.

FastAPI solves every endpoint's dependencies per request: on a cache hit that was a quarter of the replica's
time. An endpoint that takes only the request, string path parameters and request-only dependencies
(`Depends(get_inference)`: a read of app.state), and returns a Response, gets exactly those here, with
the same exception handling around it. Any other endpoint is served by FastAPI's own handler, unchanged,
and the OpenAPI document comes from the same signatures either way.

It reads FastAPI's `Dependant` (its parameter lists and names), an internal: if an upgrade changes it, the
prediction routes stop being lean and backend/tests/test_lean_route.py fails. Side by side without it, the
replica spent 190 µs of CPU per cache hit instead of 128, and hits, misses and the ceiling route ran at
0.77-0.83× (docs/perf-log.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple, TypeGuard

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

RequestDependency = tuple[str, Callable[[Request], Awaitable[Any]]]


class LeanRoute(APIRoute):
    lean = False
    """Served without FastAPI's per-request dependency solving (mlstack serve logs how many are)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        plan = _plan(self.dependant, self.endpoint)
        if plan is None:
            return super().get_route_handler()
        self.lean = True
        endpoint, path_names, request_name, dependencies = plan

        async def handle(request: Request) -> Response:
            given = request.path_params
            kwargs: dict[str, Any] = {name: given[name] for name in path_names}
            if request_name is not None:
                kwargs[request_name] = request
            for name, dependency in dependencies:
                kwargs[name] = await dependency(request)
            return await endpoint(**kwargs)

        return handle


class Plan(NamedTuple):
    endpoint: Callable[..., Awaitable[Response]]
    path_names: list[str]
    request_name: str | None
    dependencies: list[RequestDependency]


def _plan(dependant: Dependant, endpoint: Callable[..., Any]) -> Plan | None:
    """What the endpoint takes, if all of it is cheap to give; else None."""
    if not _only_request(dependant, allow_path=True) or not _responds(endpoint):
        return None
    dependencies: list[RequestDependency] = []
    for sub in dependant.dependencies:
        call = sub.call
        if (
            sub.name is None
            or call is None
            or sub.request_param_name is None
            or not _only_request(sub, allow_path=False)
            or not inspect.iscoroutinefunction(call)
        ):
            return None
        dependencies.append((sub.name, _given_request(call, sub.request_param_name)))
    path_names = [field.name for field in dependant.path_params]
    return Plan(endpoint, path_names, dependant.request_param_name, dependencies)


def _only_request(dependant: Dependant, allow_path: bool) -> bool:
    fields = (
        dependant.query_params + dependant.header_params + dependant.cookie_params + dependant.body_params
    )
    special = (
        dependant.websocket_param_name,
        dependant.http_connection_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if fields or any(special) or (dependant.path_params and not allow_path):
        return False
    for field in dependant.path_params:  # anything but a plain string would need FastAPI's validation
        if field.field_info.annotation not in (str, str | None) or field.field_info.metadata:
            return False
    return allow_path or not dependant.dependencies


def _given_request(call: Callable[..., Awaitable[Any]], name: str) -> Callable[[Request], Awaitable[Any]]:
    return lambda request: call(**{name: request})


def _responds(endpoint: Callable[..., Any]) -> TypeGuard[Callable[..., Awaitable[Response]]]:
    """A coroutine function declared to return a Response."""
    if not inspect.iscoroutinefunction(endpoint):
        return False
    returns = inspect.signature(endpoint, eval_str=True).return_annotation
    return inspect.isclass(returns) and issubclass(returns, Response)
