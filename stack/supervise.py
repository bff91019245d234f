"""Keeps the stack's processes up: one that exits without being asked to is started again, with backoff.

The policy is systemd's `Restart=on-failure` with an exponential `RestartSec` and a start limit: after an
exit, wait `delay_s`, doubling with each exit in a row up to `max_delay_s`; a process that stayed up
`window_s` starts again from `delay_s`; `limit` exits within `window_s` mark it failed, and it is left down
while the rest serve. A process stopped on purpose (`Process.stop`) stays down until started again.
Why this is our own code rather than supervisord or circus: docs/SUPERVISION.md.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stack import runstate
from stack.procs import Process

log = logging.getLogger("stack.supervise")


@dataclass(frozen=True)
class RestartPolicy:
    """The STACK_RESTART_* settings (stack/settings.py says what each means)."""

    delay_s: float = 0.5
    max_delay_s: float = 30.0
    limit: int = 5
    window_s: float = 60.0

    def delay(self, exits_in_a_row: int) -> float:
        """The wait before the next start: delay_s, doubled for each earlier exit in a row, capped."""
        return float(min(self.delay_s * 2 ** max(exits_in_a_row - 1, 0), self.max_delay_s))


@dataclass
class Watched:
    """One process and what supervision knows of it; `state` is what the run-state file says."""

    process: Process
    state: Literal["running", "restarting", "stopped", "failed"] = "running"
    """`restarting`: waiting its delay; `stopped`: on purpose; `failed`: supervision gave up on it."""
    restarts: int = 0
    in_a_row: int = 0
    exits: deque[float] = field(default_factory=deque)
    restart_at: float = 0.0
    last_exit: str | None = None
    reason: str | None = None

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "restarts": self.restarts}
        out["started_at"] = runstate.timestamp(self.process.started_at)
        if self.last_exit is not None:
            out["last_exit"] = self.last_exit
        if self.reason is not None:
            out["reason"] = self.reason
        return out


class ProcessFailed(RuntimeError):
    """A process kept exiting and supervision gave up on it."""


class Supervisor:
    """A thread that checks every watched process `interval_s` and restarts the ones that exited.

    `on_change` runs (under the supervisor's lock) after every start, exit and restart: the stack
    rewrites its run-state file there, so the file always names the live pids."""

    def __init__(
        self,
        policy: RestartPolicy,
        events_log: Path,
        on_change: Callable[[], None],
        interval_s: float = 0.1,
    ) -> None:
        self.policy = policy
        self.events_log = events_log
        self._on_change = on_change
        self._interval_s = interval_s
        self._watched: dict[str, Watched] = {}
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-supervisor", daemon=True)

    def begin(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Stop supervising (before the stack stops its processes, so none is started again)."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join()

    def watch(self, process: Process) -> None:
        """Start `process` and keep it up from now on."""
        with self._lock:
            self._watched[process.name] = Watched(process)
            process.start()
            self._on_change()

    def status(self, process: Process) -> dict[str, Any]:
        with self._lock:
            return self._watched[process.name].status()

    def stop(self, process: Process, timeout_s: float = 10.0) -> None:
        """Stop it on purpose: it stays down (state `stopped`) until `start`."""
        with self._lock:
            self._watched[process.name].state = "stopped"
            self._on_change()
        process.stop(timeout_s)

    def start(self, process: Process) -> None:
        """Start a process stopped on purpose (or failed) again; its exit history starts afresh."""
        with self._lock:
            watched = self._watched[process.name]
            if watched.state != "running" or process.has_exited():
                process.stop()  # reaps it and what is left of its group
                process.start()
            watched.state, watched.reason, watched.in_a_row = "running", None, 0
            watched.exits.clear()
            self._on_change()

    def wait_ready(self, process: Process, ready: Callable[[], bool], timeout_s: float) -> None:
        """Until `ready()` holds; ProcessFailed as soon as supervision gives up on the process."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            with self._lock:
                watched = self._watched[process.name]
                if watched.state == "failed":
                    raise ProcessFailed(f"{process.name}: {watched.reason}")
            time.sleep(0.05)
        raise TimeoutError(f"{process.name} not ready after {timeout_s:.0f}s")

    # -- the supervising thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._closing.wait(self._interval_s):
            with self._lock:
                for watched in self._watched.values():
                    if not self._closing.is_set():
                        self._tend(watched)

    def _tend(self, watched: Watched) -> None:
        process, now = watched.process, time.monotonic()
        if watched.state in ("running", "restarting") and process.stopping:
            if process.has_exited():  # stopped on purpose, by whoever holds the Process
                watched.state = "stopped"
                self._on_change()
        elif watched.state == "running" and process.has_exited():
            self._exited(watched, now)
        elif watched.state == "restarting" and now >= watched.restart_at:
            process.start()
            watched.restarts += 1
            watched.state = "running"
            self._report(logging.INFO, f"{_who(process)} started again: pid {process.pid}")
            self._on_change()

    def _exited(self, watched: Watched, now: float) -> None:
        process, policy = watched.process, self.policy
        up_s = process.uptime_s
        process.kill_group()  # before reaping: the group id is still the dead leader's own
        watched.last_exit = describe_exit(process.exit_code())
        watched.exits.append(now)
        while watched.exits and watched.exits[0] < now - policy.window_s:
            watched.exits.popleft()
        watched.in_a_row = 1 if up_s >= policy.window_s else watched.in_a_row + 1
        said = f"{_who(process)} exited ({watched.last_exit}) after {up_s:.1f}s up"
        tail = "\n".join(f"    | {line}" for line in process.last_lines())
        if len(watched.exits) >= policy.limit:
            watched.state = "failed"
            watched.reason = (
                f"exited {len(watched.exits)} times within {policy.window_s:g}s, last: {watched.last_exit}"
                f"; see {process.log}"
            )
            self._report(logging.ERROR, f"{said}; {watched.reason}; left down. Its log ends:\n{tail}")
        else:
            delay = policy.delay(watched.in_a_row)
            watched.state, watched.restart_at = "restarting", now + delay
            self._report(logging.WARNING, f"{said}; restarting in {delay:g}s. Its log ends:\n{tail}")
        self._on_change()

    def _report(self, level: int, message: str) -> None:
        log.log(level, message)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.events_log.parent.mkdir(parents=True, exist_ok=True)
        with self.events_log.open("a") as out:
            out.write(f"{stamp} {logging.getLevelName(level)} {message}\n")


def describe_exit(code: int) -> str:
    """Popen's return code in words: `exit code 1`, `signal SIGKILL`."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _who(process: Process) -> str:
    return process.name if process.name == process.role else f"{process.name} ({process.role})"
