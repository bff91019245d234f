"""The replica's HTTP protocol: a response's head and body leave in one write, and nothing is held back."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from uvicorn.server import ServerState

from mlstack.server.http_protocol import HeadWithBody, HttpToolsProtocol, fast_path
from waiting import until

from .servers import running_replica


class RecordingTransport(asyncio.Transport):
    """What the protocol hands to the socket, write by write (the system calls are what is measured)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_head_and_body_leave_in_one_write() -> None:
    asyncio.run(_head_and_body_leave_in_one_write())


async def _head_and_body_leave_in_one_write() -> None:
    transport = RecordingTransport()
    writer = HeadWithBody(transport, asyncio.get_running_loop())

    writer.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert transport.writes == []  # the head waits for its body
    writer.write(b"body")
    writer.write(b"more")  # later chunks of a streamed body go straight through
    await asyncio.sleep(0)

    assert transport.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"more"]


def test_a_head_without_a_body_leaves_at_the_end_of_the_loop_turn() -> None:
    asyncio.run(_a_head_without_a_body_leaves_at_the_end_of_the_loop_turn())


async def _a_head_without_a_body_leaves_at_the_end_of_the_loop_turn() -> None:
    transport = RecordingTransport()
    writer = HeadWithBody(transport, asyncio.get_running_loop())

    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    await asyncio.sleep(0)

    assert transport.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]
    writer.write(b"next")
    assert transport.writes[-1] == b"next"


def test_close_sends_a_waiting_head_first() -> None:
    asyncio.run(_close_sends_a_waiting_head_first())


async def _close_sends_a_waiting_head_first() -> None:
    transport = RecordingTransport()
    writer = HeadWithBody(transport, asyncio.get_running_loop())

    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    writer.close()

    assert transport.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"]
    assert transport.closed
    assert writer.is_closing()


def test_the_real_server_answers_get_head_errors_and_keep_alive(replica_url: str) -> None:
    with httpx.Client(base_url=replica_url, timeout=5) as client:
        # HEAD: uvicorn writes no body, so the head must leave by itself (the route answers 405)
        answers = [client.get("/v2"), client.head("/v2/health/live"), client.get("/nowhere")]
        answers += [client.get("/v2/health/ready") for _ in range(20)]  # one connection, reused

    assert [a.status_code for a in answers[:3]] == [200, 405, 404]
    assert answers[0].json()["name"]
    assert answers[1].content == b""
    assert {a.status_code for a in answers[3:]} == {200}


def test_pipelined_requests_get_their_answers_in_order(replica_url: str) -> None:
    host, port = replica_url.removeprefix("http://").split(":")
    request = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
    closing = b"GET /v2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request * 3 + closing)
        received = b""
        while chunk := sock.recv(65536):  # the server closes after the last answer
            received += chunk

    assert received.count(b"HTTP/1.1 200 OK\r\n") == 4
    assert received.rstrip().endswith(b"}")  # the last answer, the server's metadata, arrived whole


def test_uvicorn_still_has_what_the_fast_path_relies_on() -> None:
    """Fails loudly when a uvicorn upgrade changes the internal the protocol leans on."""
    assert fast_path() is None


def test_uvicorns_own_protocol_sends_a_response_in_one_write() -> None:
    asyncio.run(_uvicorns_own_protocol_sends_a_response_in_one_write())


async def _uvicorns_own_protocol_sends_a_response_in_one_write() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    config = uvicorn.Config(app, http=HttpToolsProtocol, lifespan="off", access_log=False, log_config=None)
    config.load()
    protocol = HttpToolsProtocol(config, ServerState(), {})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await until(lambda: transport.writes, 5, "the response written")

    assert len(transport.writes) == 1, transport.writes  # the head waited for its body
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert transport.writes[0].endswith(b"\r\n\r\nok")


def test_a_started_replica_names_its_fast_paths_in_its_log(trained_store: Path, tmp_path: Path) -> None:
    log = tmp_path / "replica.log"
    with running_replica(trained_store, log):
        pass
    line = next(line for line in log.read_text().splitlines() if "fast paths:" in line)

    assert "one-write HTTP on" in line
    assert "lean routes" in line
