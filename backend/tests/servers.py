"""Real servers for tests: a uvicorn replica and redis-server on free loopback ports, stopped by PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from redis import Redis

from waiting import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_replica(store_dir: Path, log: Path, **settings: str) -> Iterator[str]:
    """`mlstack serve` with BACKEND_* settings, as the stack and the image run it; yields its base URL."""
    port = free_port()
    env = {**os.environ, "BACKEND_STORE_DIR": str(store_dir), "OMP_NUM_THREADS": "1"}
    env.update({f"BACKEND_{k.upper()}": v for k, v in settings.items()})
    command = [sys.executable, "-m", "mlstack", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: process.poll() is not None or _answers(f"{url}/v2/health/live"))
        if process.poll() is not None:
            raise RuntimeError(f"replica exited: {log.read_text()[-2000:]}")
        yield url
    finally:
        stop(process)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


class RedisServer:
    """redis-server on a loopback port, as the prediction cache; it can be stopped and started again."""

    def __init__(self, workdir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        login = f":{self.password}@" if self.password else ""
        return f"redis://{login}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            *(["--requirepass", self.password] if self.password else []),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_until(self._answers, 10)

    def keys(self, pattern: str = "mlstack:pred:*") -> int:
        """How many keys match: by default the prediction cache's rows."""
        with Redis.from_url(self.url) as client:
            return sum(1 for _ in client.scan_iter(match=pattern, count=1000))

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
                return reply.startswith(b"+PONG") or (self.password is not None and b"NOAUTH" in reply)
        except OSError:
            return False


@contextmanager
def redis_server(workdir: Path, password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(workdir, password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
