"""Starting extra stacks and talking to them, for the whole-stack tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from stack.keys import demo_keys, demo_login
from stack.native import NativeStack, StackOptions
from stack.procs import free_port


@contextmanager
def running_stack(run_dir: Path, store_dir: Path, **options: Any) -> Iterator[NativeStack]:
    settings = StackOptions(
        run_dir=run_dir,
        store_dir=store_dir,
        gateway_port=free_port(),
        keys=demo_keys(),
        ui_login=demo_login(),
        ui_port=free_port(),
        **options,
    )
    with NativeStack(settings) as stack:
        yield stack


def predict(
    stack: NativeStack, rows: list[dict[str, Any]], key: str | None = None, **kwargs: Any
) -> httpx.Response:
    """One prediction through the gateway on a new connection (no keep-alive: faults hit fresh requests)."""
    headers = {"X-API-Key": key or stack.key("predict"), **kwargs.pop("headers", {})}
    return httpx.post(
        f"{stack.gateway_url}/v1/models/churn:predict",
        json={"instances": rows},
        headers=headers,
        timeout=20,
        **kwargs,
    )
