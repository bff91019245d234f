"""A replica's background loops: started with the replica, cancelled and awaited when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any


async def every(period_s: float, work: Callable[[], Awaitable[None]], log: logging.Logger, what: str) -> None:
    """`work` every `period_s` while the replica runs. A round that fails is logged and the loop goes on:
    a background task that died would stop its work for good, silently."""
    while True:
        await asyncio.sleep(period_s)
        try:
            await work()
        except Exception:
            log.exception("%s failed", what)


@asynccontextmanager
async def running(*loops: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Each loop as a task for the block's length; on the way out every task is cancelled and awaited."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
