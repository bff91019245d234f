"""A lean asyncio Redis client for the prediction cache's hot path: one connection, every command pipelined.

redis-py's asyncio client costs the replica about 80 µs of CPU per round trip (a pool checkout, a retry
wrapper, a timeout context, stream reads in a task); this one about 35, most of it the two system calls.
Commands issued in one turn of the event loop leave in one write; replies are matched to their commands
in order as they arrive, in the protocol's callback, with no task per read. hiredis packs and parses.

Failures are the builtin ones the cache already handles: ConnectionError (OSError) when the connection
is lost or cannot be made, TimeoutError when a reply is late, ReplyError for an error reply.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.connection import SSLConnection, parse_url
from redis.exceptions import ResponseError

Command = Sequence[Any]
REPLIES_OFF = hiredis.pack_command(("CLIENT", "REPLY", "OFF"))
REPLIES_ON = hiredis.pack_command(("CLIENT", "REPLY", "ON"))


class ReplyError(ResponseError):
    """Redis answered a command with an error (hiredis hands it over as a value, not raised)."""


class _Waiting:
    """A command, or several sent together, waiting for its replies."""

    __slots__ = ("future", "left", "replies")

    def __init__(self, future: asyncio.Future[Any], count: int) -> None:
        self.future, self.left = future, count
        self.replies: list[Any] | None = [] if count > 1 else None


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self._reader = hiredis.Reader(replyError=ReplyError)
        self._waiting: deque[_Waiting] = deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.open = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.open = True

    def send(self, packed: list[bytes], replies: int) -> asyncio.Future[Any]:
        """Queues packed commands for the end of this loop turn; the future gets their reply (a list of
        them when several). Only while open."""
        future = asyncio.get_running_loop().create_future()
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing += packed
        self._waiting.append(_Waiting(future, replies))
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self.open and self._transport is not None:
            self._transport.write(b"".join(outgoing))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        while (reply := self._reader.gets()) is not False:
            if not waiting:  # a reply to nothing: the stream is out of step, start afresh
                self.close(ConnectionError("Redis sent a reply to no command"))
                return
            first = waiting[0]
            if first.replies is not None:
                first.replies.append(reply)
            first.left -= 1
            if first.left:
                continue
            waiting.popleft()
            if first.future.done():  # timed out, or its caller went away: the reply is dropped
                continue
            result = first.replies if first.replies is not None else reply
            if isinstance(result, ReplyError):
                first.future.set_exception(result)
            else:
                first.future.set_result(result)

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        lost = ConnectionError(f"connection to Redis lost: {exc or 'closed by Redis'}")
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(lost)
        self._outgoing.clear()

    def close(self, exc: Exception | None = None) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.close()
        self.connection_lost(exc)


class RedisPipe:
    """One pipelined connection to the Redis at `url`, opened on first use and again after a loss."""

    def __init__(self, url: str, timeout_s: float, connect_timeout_s: float | None = None) -> None:
        self._params = parse_url(url)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s or timeout_s
        self._connection: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    async def call(self, *args: Any, timeout_s: float | None = None) -> Any:
        """One command's reply. Retried once on a new connection when the old one turns out dead (after
        Redis restarted, its first use fails): every command the cache sends is idempotent."""
        return await self._retried([hiredis.pack_command(args)], 1, timeout_s)

    async def call_many(self, commands: Sequence[Command], timeout_s: float | None = None) -> list[Any]:
        """Several commands in one write; their replies in order (error replies among them as values)."""
        packed = [hiredis.pack_command(tuple(command)) for command in commands]
        return await self._retried(packed, len(packed), timeout_s) if packed else []  # type: ignore[no-any-return]

    async def send_quietly(self, packed: bytes, timeout_s: float | None = None) -> None:
        """Commands packed together (e.g. by pack_set_ex) whose replies Redis does not even write: done
        when Redis has run them all. Their errors go unseen; fit for writes that may fail harmlessly."""
        await self._retried([REPLIES_OFF, packed, REPLIES_ON], 1, timeout_s)

    async def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _retried(self, packed: list[bytes], replies: int, timeout_s: float | None) -> Any:
        connection = self._connection
        fresh = connection is None or not connection.open
        if fresh:
            connection = await self._connect()
        try:
            return await self._sent(connection, packed, replies, timeout_s)  # type: ignore[arg-type]
        except ConnectionError:
            if fresh:
                raise
        return await self._sent(await self._connect(), packed, replies, timeout_s)

    async def _sent(
        self, connection: _Connection, packed: list[bytes], replies: int, timeout_s: float | None
    ) -> Any:
        future = connection.send(packed, replies)
        timer = asyncio.get_running_loop().call_later(timeout_s or self._timeout_s, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()

    async def _connect(self) -> _Connection:
        """A new connection, shared by every caller that needs one meanwhile."""
        if self._connection is not None and self._connection.open:
            return self._connection
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._connecting)

    async def _open(self) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                connection = await _dial(self._params)
                await self._hello(connection, self._params)
        except TimeoutError:
            raise ConnectionError(f"no connection to Redis within {self._connect_timeout_s:g}s") from None
        self._connection = connection
        return connection

    @staticmethod
    async def _hello(connection: _Connection, params: dict[str, Any]) -> None:
        """AUTH and SELECT, when the URL asks for them."""
        commands: list[tuple[Any, ...]] = []
        if params.get("password") is not None:
            user = (params["username"],) if params.get("username") else ()
            commands.append(("AUTH", *user, params["password"]))
        if params.get("db"):
            commands.append(("SELECT", params["db"]))
        for command in commands:
            try:
                await connection.send([hiredis.pack_command(command)], 1)
            except ReplyError as exc:
                connection.close()
                raise ConnectionError(f"Redis refused {command[0]}: {exc}") from None


def pack_set_ex(items: Sequence[tuple[str, bytes]], ttl_s: int) -> bytes:
    """`SET key value EX ttl` for each pair, packed here: hiredis.pack_command costs three times as much
    per command, a third of a 100-row batch's cache work."""
    tail = b"\r\n$2\r\nEX\r\n$%d\r\n%d\r\n" % (len(str(ttl_s)), ttl_s)
    set_ = b"*5\r\n$3\r\nSET\r\n$%d\r\n%b\r\n$%d\r\n%b%b"
    return b"".join([set_ % (len(k := key.encode()), k, len(value), value, tail) for key, value in items])


async def _dial(params: dict[str, Any]) -> _Connection:
    """A socket to Redis as its URL says: unix://path, redis://host:port or rediss:// (TLS)."""
    loop = asyncio.get_running_loop()
    if "path" in params:
        _, connection = await loop.create_unix_connection(_Connection, params["path"])
        return connection
    tls = ssl.create_default_context() if params.get("connection_class") is SSLConnection else None
    host, port = params.get("host", "localhost"), params.get("port", 6379)
    _, connection = await loop.create_connection(_Connection, host, port, ssl=tls)
    return connection


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError("Redis did not answer in time"))
