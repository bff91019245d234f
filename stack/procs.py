"""Processes of the stack: start each in its own session with a log file, wait until healthy, stop by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Native thread pools get one core per replica: several replicas share two cores.
PINNED_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass
class Process:
    """One started process and where its output goes."""

    role: str
    name: str
    command: list[str]
    log: Path
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    """Wall-clock time of the last start (for uptime as operators read it)."""
    started_monotonic: float = 0.0
    """The same moment on the monotonic clock (for the restart policy)."""
    stopping: bool = False
    """Asked to stop (`stop()`): supervision leaves it down until it is started again."""

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at, self.started_monotonic = time.time(), time.monotonic()
        self.stopping = False
        env = {**os.environ, **PINNED_THREADS, **self.env}
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,  # Ctrl-C in the terminal reaches the launcher, not each child
            )

    def signal(self, signum: int) -> None:
        if not self.has_exited():
            os.kill(self.pid, signum)

    def has_exited(self) -> bool:
        """Whether it has exited, without reaping it: until it is reaped its pid, which is also its
        group's id (own session), cannot be reused, so `kill_group` still reaches only its own."""
        if self.popen is None or self.popen.returncode is not None:
            return True
        try:
            found = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped meanwhile (Popen.poll in another thread)
            return True
        return found is not None

    def kill_group(self) -> None:
        """SIGKILL whatever is left of its process group: nginx workers outlive a SIGKILLed master and
        keep the listening socket (a new master could not bind), redis may leave a rewrite child."""
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.popen.pid, signal.SIGKILL)

    def exit_code(self) -> int:
        """Reap it (after it has exited) and return Popen's return code: negative for a signal."""
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.wait()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (graceful: uvicorn drains, nginx finishes requests), then SIGKILL to its whole group
        after the timeout, or to what is left of the group once it has exited."""
        self.stopping = True
        if self.popen is None:
            return
        if not self.has_exited():
            os.kill(self.popen.pid, signal.SIGTERM)  # not Popen.send_signal: it would reap it first
            deadline = time.monotonic() + timeout_s
            while not self.has_exited() and time.monotonic() < deadline:
                time.sleep(0.02)
        self.kill_group()
        self.popen.wait()

    def tail(self, chars: int = 2000) -> str:
        try:
            with self.log.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - chars))
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def last_lines(self, count: int = 8) -> list[str]:
        return self.tail(4000).splitlines()[-count:]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str, timeout_s: float, process: Process | None = None) -> None:
    """Poll `check` until it holds; fail early with the log's tail if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if process is not None and process.popen is not None and not process.running:
            raise RuntimeError(f"{process.name} exited while starting:\n{process.tail()}")
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f}s")


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _redis_command(port: int, workdir: Path, *options: str) -> list[str]:
    """redis-server on loopback only, no RDB snapshots, files in `workdir`, plus the role's options."""
    base = ["--port", str(port), "--bind", "127.0.0.1", "--protected-mode", "yes", "--save", ""]
    return ["redis-server", *base, *options, "--dir", str(workdir)]


def redis_cache_command(port: int, workdir: Path) -> list[str]:
    """The prediction cache: memory only, bounded, evicting least recently used keys."""
    return _redis_command(
        port, workdir, "--appendonly", "no", "--maxmemory", "256mb", "--maxmemory-policy", "allkeys-lru"
    )


def redis_data_command(port: int, workdir: Path) -> list[str]:
    """User data: every write appended to a file and fsynced before it is acknowledged; never evicted
    (a full store refuses writes instead of dropping users' data)."""
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    return _redis_command(port, workdir, *durable, "--maxmemory", "512mb", "--maxmemory-policy", "noeviction")


def stop_all(processes: Sequence[Process]) -> None:
    for process in reversed(processes):
        with contextlib.suppress(ProcessLookupError):
            process.stop()
