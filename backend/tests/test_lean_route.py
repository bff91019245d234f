"""LeanRoute: cheap endpoints are called directly, everything else by FastAPI, with the same errors."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, FastAPI, Path, Request, Response
from fastapi.routing import APIRoute, APIRouter
from fastapi.testclient import TestClient

from mlstack import errors
from mlstack.api.lean_route import LeanRoute, _plan
from mlstack.errors import BadInput
from mlstack.main import create_app
from mlstack.settings import Settings


async def get_name(request: Request) -> str:
    return str(request.app.state.name)


NameDep = Annotated[str, Depends(get_name)]
router = APIRouter(route_class=LeanRoute)


@router.get("/lean/{item}")
async def lean(item: str, request: Request, name: NameDep) -> Response:
    if item == "bad":
        raise BadInput("item", "must not be bad")
    return Response(f"{name}:{item}:{request.method}")


@router.get("/validated/{item}")
async def validated(item: Annotated[str, Path(pattern="^[a-z]+$")], q: int = 0) -> Response:
    return Response(f"{item}:{q}")


@router.get("/pattern/{item}")
async def pattern(item: Annotated[str, Path(pattern="^[a-z]+$")]) -> Response:
    return Response(item)


def client() -> TestClient:
    app = FastAPI()
    app.state.name = "replica"
    errors.install(app)
    app.router.routes.extend(router.routes)
    return TestClient(app)


def test_a_cheap_endpoint_gets_its_path_request_and_dependencies_without_fastapi_solving_them() -> None:
    plans = {route.path: _plan(route.dependant, route.endpoint) for route in router.routes}  # type: ignore[attr-defined]  # every route of this router is an APIRoute
    with client() as http:
        answer = http.get("/lean/pen")
        bad = http.get("/lean/bad")

    assert plans["/lean/{item}"] is not None
    assert plans["/validated/{item}"] is None
    assert plans["/pattern/{item}"] is None
    assert answer.text == "replica:pen:GET"
    assert bad.status_code == 422
    assert "item" in bad.json()["error"]


def test_an_endpoint_with_query_or_validated_parameters_is_left_to_fastapi() -> None:
    with client() as http:
        good = http.get("/validated/pen?q=3")
        refused = http.get("/validated/pen?q=three")
        unmatched = http.get("/pattern/PEN")

    assert good.text == "pen:3"
    assert (refused.status_code, unmatched.status_code) == (422, 422)


def test_every_prediction_route_of_the_replica_is_lean() -> None:
    """Fails loudly when a FastAPI upgrade changes the internals LeanRoute reads (the routes would then
    silently fall back to FastAPI's slower handler)."""
    routes = [r for r in create_app(Settings(redis_url=None)).routes if isinstance(r, APIRoute)]
    predicting = [r for r in routes if r.path.endswith((":predict", "/infer"))]

    assert len(predicting) == 4
    assert all(getattr(r, "lean", False) for r in predicting), [r.path for r in predicting]
