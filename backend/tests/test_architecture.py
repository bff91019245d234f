"""The replica's shape, held by tests: a V1 prediction goes edge → core → cache, batcher, runtime → core →
edge, entering each layer once; the core and what it uses never import the edges; one function holds the
cache flow for every runtime."""

from __future__ import annotations

import ast
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from mlstack.main import create_app
from mlstack.settings import Settings

from .conftest import example_row
from .servers import RedisServer

PACKAGE = Path(__file__).resolve().parents[1] / "mlstack"
BELOW_THE_EDGES = ("serving", "cache", "store", "users", "recommend", "explain", "drift", "profile")
PATH_LAYERS = (
    "mlstack.api.lean_route",  # the route class
    "mlstack.api.v1",  # the route
    "mlstack.api.memory",  # answers remembered per body
    "mlstack.api.v1_codec",  # bytes in, bytes out
    "mlstack.serving.core",  # the core
)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_and_what_it_uses_never_import_the_edges_nor_training() -> None:
    offenders = []
    for folder in BELOW_THE_EDGES:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for name in imported_modules(path):
                if name.startswith("mlstack.api") or (
                    folder == "serving" and name.startswith("mlstack.training")
                ):
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")

    assert offenders == []


def test_one_function_holds_the_cache_flow() -> None:
    """Every lookup and write of the prediction cache, whatever the runtime (tables, recommenders,
    explanations), is in Predictor._through_cache."""
    places = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get_many", "put_many")
                    and ast.unparse(node.func.value) == "self.cache"
                ):
                    places.append((str(path.relative_to(PACKAGE)), function.name, node.func.attr))

    assert sorted(set(places)) == [
        ("serving/core.py", "_through_cache", "get_many"),
        ("serving/core.py", "_through_cache", "put_many"),
    ]


async def _post(app: Any, path: str, body: bytes) -> list[dict[str, Any]]:
    """One request straight into the ASGI app, on this thread's event loop (so the profiler sees it all)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    messages: list[dict[str, Any]] = []
    bodies = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app(scope, receive, send)
    return messages


def _traced_prediction(settings: Settings, row: dict[str, Any]) -> tuple[int, str, list[tuple[str, str]]]:
    """A 1-row V1 prediction (after a first one that loads the model), with every call from one module
    into another module of mlstack: (caller, callee). A coroutine resumed after an await is not entered
    again, so each frame counts once."""

    async def scenario() -> tuple[int, str, list[tuple[str, str]]]:
        app = create_app(settings)
        startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        started: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        lifespan = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, started.put)
        )
        assert (await started.get())["type"] == "lifespan.startup.complete"
        path = "/v1/models/churn:predict"
        await _post(app, path, json.dumps({"instances": [row]}).encode())
        frames: dict[int, FrameType] = {}  # kept alive so that no id is reused during the trace
        entered: list[tuple[str, str]] = []

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            if event != "call" or id(frame) in frames:
                return
            frames[id(frame)] = frame
            callee = frame.f_globals.get("__name__", "")
            caller = frame.f_back.f_globals.get("__name__", "") if frame.f_back else ""
            if callee.startswith("mlstack.") and callee != caller:
                entered.append((caller, callee))

        body = json.dumps({"instances": [{**row, "monthly_charges": row["monthly_charges"] + 0.5}]}).encode()
        sys.setprofile(profile)
        try:
            messages = await _post(app, path, body)
        finally:
            sys.setprofile(None)
        await startup.put({"type": "lifespan.shutdown"})
        await lifespan
        head = messages[0]
        cache = dict(head["headers"]).get(b"x-cache", b"").decode()
        return head["status"], cache, entered

    return asyncio.run(scenario())


def test_a_v1_prediction_enters_each_layer_once_and_the_core_never_calls_an_edge(
    store_dir: Path, redis: RedisServer
) -> None:
    manifest = json.loads((store_dir / "churn" / "1" / "manifest.json").read_text())
    settings = Settings(store_dir=store_dir, redis_url=redis.url)

    status, cache, entered = _traced_prediction(settings, example_row(manifest))

    entries = Counter(callee for _, callee in entered)
    below = tuple(f"mlstack.{folder}" for folder in BELOW_THE_EDGES)
    assert (status, cache) == (200, "MISS")
    assert {layer: entries[layer] for layer in PATH_LAYERS} == dict.fromkeys(PATH_LAYERS, 1)
    assert entries["mlstack.cache.predictions"] >= 1  # the lookup
    assert entries["mlstack.serving.runtime"] >= 1  # the model
    assert [(a, b) for a, b in entered if a.startswith(below) and b.startswith("mlstack.api")] == []
