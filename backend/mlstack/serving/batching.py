"""Adaptive micro-batching: concurrent requests for one model version share one pipeline call.

A scikit-learn pipeline costs about as much for 100 rows as for one (the ColumnTransformer's per-call
overhead dominates), so gathering rows is the cheapest speed-up there is. One worker per version takes
the oldest waiting request, waits at most `max_wait_s` after it arrived for company (no wait at all when
requests piled up during the previous call), predicts up to `max_rows` rows in one call, and hands
each request its own rows back.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from mlstack.serving.admission import RowBudget
from mlstack.serving.runtime import Prediction, Runtime
from mlstack.serving.validation import Rows


@dataclass
class _Waiting:
    rows: Rows
    future: asyncio.Future[Prediction]
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class _Queue:
    runtime: Runtime
    items: deque[_Waiting] = field(default_factory=deque)
    rows: int = 0
    worker: asyncio.Task[None] | None = None
    more: asyncio.Future[None] | None = None
    """Set while the worker waits for company: the next request to join wakes it."""


class OnTheWay:
    """`with batcher.on_the_way():` counts a request as coming. A class, not @contextmanager: a generator
    per request cost a microsecond on every 1-row prediction."""

    __slots__ = ("_batcher",)

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    def __enter__(self) -> None:
        self._batcher.coming += 1

    def __exit__(self, *exc: object) -> None:
        self._batcher.coming -= 1


class Batcher:
    """Gathers rows per loaded version; `max_wait_s=0` still merges whatever is already waiting."""

    def __init__(
        self,
        executor: Executor,
        max_rows: int,
        max_wait_s: float,
        enabled: bool = True,
        on_batch: Callable[[int, int], None] = lambda rows, requests: None,
        row_budget: RowBudget | None = None,
    ) -> None:
        self._executor = executor
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._enabled = enabled
        self._queues: dict[int, _Queue] = {}
        self._on_batch = on_batch
        self.row_budget = row_budget or RowBudget()
        self.coming = 0  # requests past validation that have not reached the batcher yet (cache lookup)
        self._on_the_way = OnTheWay(self)

    def on_the_way(self) -> OnTheWay:
        """Marks a request that may soon ask for a prediction: only then is waiting for company worth it."""
        return self._on_the_way

    async def predict(self, runtime: Runtime, rows: Rows) -> Prediction:
        """Call from inside `on_the_way()`: this request stops counting as coming once it is queued.
        Raises Overloaded, before queueing anything, when the row budget has no room for these rows."""
        self.row_budget.take(len(rows))
        self.coming -= 1
        try:
            return await self._predict(runtime, rows)
        finally:
            self.coming += 1
            self.row_budget.give(len(rows))

    async def _predict(self, runtime: Runtime, rows: Rows) -> Prediction:
        loop = asyncio.get_running_loop()
        if not self._enabled or len(rows) >= self._max_rows:
            return await self._call(runtime, rows)
        queue = self._queues.setdefault(id(runtime), _Queue(runtime))
        waiting = _Waiting(rows, loop.create_future())
        queue.items.append(waiting)
        queue.rows += len(rows)
        if queue.more is not None and not queue.more.done():
            queue.more.set_result(None)
        if queue.worker is None or queue.worker.done():
            queue.worker = asyncio.create_task(self._work(queue))
        return await waiting.future

    async def _work(self, queue: _Queue) -> None:
        while queue.items:
            await self._gather(queue)
            batch = self._take(queue)
            merged = Rows(batch[0].rows.features, [v for w in batch for v in w.rows.values])
            try:
                prediction = await self._call(queue.runtime, merged)
            except Exception as exc:  # the batch's requests share the failure; the worker lives on
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(exc)
                continue
            self._on_batch(len(merged), len(batch))
            _hand_out(batch, prediction)
        self._queues.pop(id(queue.runtime), None)

    async def _call(self, runtime: Runtime, rows: Rows) -> Prediction:
        if len(rows) <= runtime.inline_rows:
            return runtime.predict(rows)
        return await asyncio.get_running_loop().run_in_executor(self._executor, runtime.predict, rows)

    async def _gather(self, queue: _Queue) -> None:
        """While others are on their way, wait until the oldest request has waited max_wait_s or the batch
        is full. A lone client is never delayed; under load requests pile up during each call anyway."""
        deadline = queue.items[0].arrived + self._max_wait_s
        loop = asyncio.get_running_loop()
        while self.coming > 0 and queue.rows < self._max_rows and (left := deadline - time.monotonic()) > 0:
            # a future and a timer, not asyncio.wait_for: that wraps the wait in a task of its own, each time
            queue.more = more = loop.create_future()
            timer = loop.call_later(left, _wake, more)
            try:
                await more
            finally:
                timer.cancel()
                queue.more = None

    def _take(self, queue: _Queue) -> list[_Waiting]:
        batch: list[_Waiting] = []
        rows = 0
        while queue.items and (not batch or rows + len(queue.items[0].rows) <= self._max_rows):
            waiting = queue.items.popleft()
            batch.append(waiting)
            rows += len(waiting.rows)
        queue.rows -= rows
        return batch


def _wake(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_result(None)


def _hand_out(batch: list[_Waiting], prediction: Prediction) -> None:
    start = 0
    for waiting in batch:
        end = start + len(waiting.rows)
        if not waiting.future.done():  # the client may have gone away
            waiting.future.set_result(prediction.rows(start, end))
        start = end
