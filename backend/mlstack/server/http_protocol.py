"""uvicorn's httptools protocol, with a response's status line and headers sent in the same write as its body.

uvicorn writes the head when the app sends `http.response.start` and the body when it sends
`http.response.body`: two system calls per response, and two TCP segments that nginx reads in two wakeups.
For a prediction of a few hundred bytes that is a good part of the replica's and the gateway's work. Here
the head waits for the body of the same response; it leaves on its own at the end of the event loop's
turn when no body follows in that turn (HEAD, 204, a body streamed later), so nothing is ever held back.

It leans on one internal of uvicorn's: the request's cycle writes to `cycle.transport`, created in
`on_headers_complete`. `fast_path()` checks that at start (`mlstack serve` logs what it found), and
backend/tests/test_http_protocol.py drives uvicorn's own protocol object to prove the single write.
Side by side (docs/perf-log.md) the ceiling route went from 12,500 to 16,900 req/s with it.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from uvicorn.protocols.http import httptools_impl


class HeadWithBody:
    """The transport a request's cycle writes to: its first write waits for the second, or for the end of
    the loop's turn, whichever comes first; every later write goes straight through."""

    __slots__ = ("_transport", "_loop", "_head", "_passing")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._passing = False

    def write(self, data: bytes) -> None:
        if self._passing:
            self._transport.write(data)
        elif self._head is None:
            self._head = data
            self._loop.call_soon(self.flush)
        else:
            head, self._head, self._passing = self._head, None, True
            self._transport.write(head + data)

    def flush(self) -> None:
        self._passing = True
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


def fast_path() -> str | None:
    """None when uvicorn still has what this protocol relies on, else what changed."""
    cycle = getattr(httptools_impl, "RequestResponseCycle", None)
    if cycle is None or "transport" not in inspect.signature(cycle.__init__).parameters:
        return "uvicorn's RequestResponseCycle no longer takes a transport"
    if "on_headers_complete" not in vars(httptools_impl.HttpToolsProtocol):
        return "uvicorn's HttpToolsProtocol no longer has on_headers_complete"
    return None


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # the cycle's task is created but has not run yet: nothing has been written through it
        if cycle is not None and cycle.transport is self.transport:
            wrapped = HeadWithBody(self.transport, self.loop)
            cycle.transport = wrapped  # type: ignore[assignment]  # a Transport by delegation, not a subclass
