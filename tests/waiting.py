"""Waiting for a condition, with a deadline: tests never sleep a guessed time and then assert.

The machine running the tests may be loaded, so deadlines are generous; a condition that holds ends the
wait at once, so they cost nothing when things go well.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 30.0
POLL_S = 0.02


def wait_until(
    check: Callable[[], object],
    timeout_s: float = DEADLINE_S,
    what: str = "condition",
    every_s: float = POLL_S,
) -> float:
    """Poll `check` until it returns something true; returns the monotonic time it first did.
    TimeoutError, naming `what`, at the deadline."""
    wait_for(check, bool, timeout_s, what, every_s)
    return time.monotonic()


def wait_for(
    produce: Callable[[], T],
    holds: Callable[[T], bool],
    timeout_s: float = DEADLINE_S,
    what: str = "value",
    every_s: float = POLL_S,
) -> T:
    """Call `produce` until its value `holds`, and return that value; TimeoutError, with the last value
    seen, at the deadline."""
    value = poll(produce, holds, timeout_s, every_s)
    if not holds(value):
        raise TimeoutError(f"{what} not met within {timeout_s:g}s; last: {value!r}"[:2000])
    return value


def poll(
    produce: Callable[[], T],
    holds: Callable[[T], bool],
    timeout_s: float = DEADLINE_S,
    every_s: float = POLL_S,
) -> T:
    """Call `produce` until its value `holds`, and return that value, or the last one at the deadline: for
    a test whose own assertion on it then says best what is missing."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = produce()
        if holds(value) or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


async def until(check: Callable[[], object], timeout_s: float = DEADLINE_S, what: str = "condition") -> None:
    """wait_until inside an event loop, which goes on running meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout_s:g}s")
        await asyncio.sleep(POLL_S)
