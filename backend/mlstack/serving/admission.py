"""Load shedding: a replica bounds the work it takes on, and refuses the rest with 503 and Retry-After.

Two bounds, counted on the event loop (one thread, so plain integers):
- data-plane requests (predictions, user data) in flight, from the edge (api/middleware.py) to their
  answer (InFlight);
- rows handed to the micro-batcher and not yet predicted (RowBudget, held by serving/batching.py).

Past capacity, queueing adds latency and no throughput, so a request beyond `max_in_flight` gets a short
wait for a place, newest first, and is otherwise refused. The newest-first order and the two times follow
the "adaptive LIFO" and CoDel queues of Facebook's "Fail at scale" (ACM Queue, 2015): under overload the
newest waiter is the one likeliest to be answered in time, and a waiter older than `max_wait_s` would only
delay the others, so it is not served at all. A waiting room that stays occupied is sustained overload,
not a burst: the bound then tightens to OVERLOADED_WAIT_S, as CoDel's does. Such a waiter gets its 503
after REFUSE_AFTER_S rather than at once: clients that retry without waiting (load generators, naive retry
loops) would otherwise come back within a millisecond, and refusing them in a tight loop costs the replica
a quarter of a prediction each time, until refusing is most of what it does (at 256 connections, 723
answered requests/s against 1,635 with the wait; docs/PERFORMANCE.md).
A request that finds the waiting room full is refused at once.

Health checks, metadata, metrics and admin calls are never counted nor shed, so orchestrators and
operators still see and steer an overloaded replica. The count is the replica's own, not uvicorn's
--limit-concurrency: that one counts open connections too, and the gateway keeps up to 128 idle keep-alive
connections per worker to each replica, so it would refuse everything.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque

from mlstack.errors import Overloaded

OVERLOAD_AFTER_S = 0.1
"""A waiting room that has not been empty for this long means sustained overload, not a burst (CoDel's
interval)."""
OVERLOADED_WAIT_S = 0.005
"""Under sustained overload, the longest a waiter may have waited and still get a place ("Fail at
scale": 5 ms). Measured on 2 cores (docs/PERFORMANCE.md): with 20 ms throughout, the answered p99 at 256
connections was 6.9× the one at 16; with 5 ms throughout, 64 connections (normal load) lost requests."""
REFUSE_AFTER_S = 0.5
"""How long a waiter that will not be served waits for its 503: a client retrying at once comes back at
most twice a second, and one with a 2 s budget keeps most of it."""


class InFlight:
    """At most `limit` requests admitted; past it up to `waiting_limit` wait, the newest first, and a place
    goes only to a waiter that has waited at most `max_wait_s` (a burst), or `overloaded_wait_s` when the
    waiting room has not been empty for `overload_after_s` (sustained overload: CoDel's two regimes)."""

    def __init__(
        self,
        limit: int,
        waiting_limit: int,
        max_wait_s: float,
        refuse_after_s: float = REFUSE_AFTER_S,
        overloaded_wait_s: float = OVERLOADED_WAIT_S,
        overload_after_s: float = OVERLOAD_AFTER_S,
    ) -> None:
        self.limit = limit
        self.waiting_limit = waiting_limit
        self.max_wait_s = max_wait_s
        self.refuse_after_s = refuse_after_s
        self.overloaded_wait_s = min(overloaded_wait_s, max_wait_s)
        self.overload_after_s = overload_after_s
        self.count = 0
        self._waiting: deque[tuple[float, asyncio.Future[bool]]] = deque()
        self._queued_since = 0.0  # when the waiting room last went from empty to not

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def enter(self) -> bool:
        """True: admitted (call leave() once answered). False: refused."""
        return self.try_enter() or await self.wait()

    def try_enter(self) -> bool:
        """Admitted at once: the common case, without a coroutine (a few µs per request on a 1-row miss)."""
        if self.count < self.limit:
            self.count += 1
            return True
        return False

    async def wait(self) -> bool:
        """Past the limit: a place in the waiting room, if there is one, and then a place or a refusal."""
        if len(self._waiting) >= self.waiting_limit:
            return False
        loop = asyncio.get_running_loop()
        place: asyncio.Future[bool] = loop.create_future()
        now = loop.time()
        if not self._waiting:
            self._queued_since = now
        self._waiting.append((now, place))
        timer = loop.call_later(self.refuse_after_s, self._refuse_oldest)
        try:
            return await place
        finally:
            timer.cancel()

    def leave(self) -> None:
        """The place passes to the newest waiter if it is fresh enough to be served; else it frees up for
        the next request to arrive, and the stale waiters wait for their refusal. Fresh enough: at most
        max_wait_s old, or overloaded_wait_s once the room has not been empty for overload_after_s."""
        waiting = self._waiting
        while waiting and waiting[-1][1].done():  # cancelled while waiting
            waiting.pop()
        if waiting:
            now = asyncio.get_running_loop().time()
            overloaded = now - self._queued_since > self.overload_after_s
            if now - waiting[-1][0] <= (self.overloaded_wait_s if overloaded else self.max_wait_s):
                waiting.pop()[1].set_result(True)
                return
        self.count -= 1

    def _refuse_oldest(self) -> None:
        """Every waiter waits alike, so the one whose time is up is the oldest still waiting."""
        while self._waiting:
            _, place = self._waiting.popleft()
            if not place.done():
                place.set_result(False)
                return


class RowBudget:
    """Rows waiting for or in a prediction, at most `limit`; a request of any size gets in when none wait,
    so a request the batch limit allows is never refused for its size alone. Past it: 503 at once."""

    __slots__ = ("limit", "rows")

    def __init__(self, limit: int = sys.maxsize) -> None:
        self.limit = limit
        self.rows = 0

    def take(self, rows: int) -> None:
        """Hold `rows` (give them back once predicted), or raise Overloaded. Two calls, not a context
        manager: a generator-based one cost a microsecond per request."""
        if self.rows and self.rows + rows > self.limit:
            raise Overloaded(f"replica at capacity: {self.rows} rows wait for a prediction")
        self.rows += rows

    def give(self, rows: int) -> None:
        self.rows -= rows
