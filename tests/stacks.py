"""Starting extra stacks and talking to them, for the whole-stack tests."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from stack import runstate
from stack.keys import demo_keys, demo_login
from stack.native import NativeStack, StackOptions
from stack.procs import free_port
from waiting import wait_until


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


@contextmanager
def steady_stream(
    send: Callable[[int], httpx.Response], clients: int = 4, max_s: float = 15.0
) -> Iterator[Counter[Any]]:
    """`clients` threads send requests back to back until the block ends (at most `max_s`); the counter
    holds each outcome: a status code, or the name of the exception for a request that got no answer."""
    outcomes: Counter[Any] = Counter()
    stop = threading.Event()
    deadline = time.monotonic() + max_s

    def run(client: int) -> None:
        i = client
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                outcomes[send(i).status_code] += 1
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
            i += clients

    workers = [threading.Thread(target=run, args=(c,), daemon=True) for c in range(clients)]
    for worker in workers:
        worker.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)


def across_a_replica_kill(
    stack: NativeStack, send: Callable[[int], httpx.Response], before: int, after: int
) -> Counter[Any]:
    """What a steady stream of `send` (4 clients) got: `before` answers, then the first replica SIGKILLed,
    then `after` more answers; the replica is started again before this returns."""
    with steady_stream(send, clients=4, max_s=60.0) as outcomes:
        wait_until(lambda: outcomes.total() >= before, what="a stream under way")
        victim = stack.kill_replica(0, signal.SIGKILL)
        killed_at = outcomes.total()
        wait_until(lambda: outcomes.total() >= killed_at + after, what=f"{after} answers after the kill")
    stack.restart(victim)
    return outcomes


def gateway_entries(stack: NativeStack) -> list[dict[str, Any]]:
    """The gateway's JSON access log, one dict per request."""
    lines = (stack.logs / "gateway-access.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def gateway_entries_of(
    stack: NativeStack, prefix: str, count: int, timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """The log lines of requests whose id starts with prefix, once there are `count` of them (nginx
    buffers its access log and writes it at least every second), or what there is at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [e for e in gateway_entries(stack) if e["request_id"].startswith(prefix)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def gateway_entry(stack: NativeStack, request_id: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """The log line of one request; nginx writes its buffered log at least every second, so wait."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [e for e in gateway_entries(stack) if e["request_id"] == request_id]
        if found or time.monotonic() > deadline:
            assert found, f"no access-log line for {request_id}"
            return found[0]
        time.sleep(0.05)


def recorded(stack: NativeStack, name: str) -> dict[str, Any]:
    """One process's entry in the stack's run-state file, as an operator or a client reads it."""
    state = runstate.read(stack.options.run_dir)
    assert state is not None, "no run-state file"
    return next(p for p in state["processes"] if p["name"] == name)
