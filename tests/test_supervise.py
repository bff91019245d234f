"""The restart policy on real short-lived processes: doubling delays, start limit, reset, stops on purpose."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from stack.procs import Process
from stack.supervise import RestartPolicy, Supervisor, describe_exit
from waiting import wait_until


def python(tmp_path: Path, code: str) -> Process:
    return Process("worker", "worker-1", [sys.executable, "-c", code], tmp_path / "worker.log")


@contextmanager
def supervising(
    policy: RestartPolicy, process: Process, tmp_path: Path
) -> Iterator[tuple[Supervisor, list[float]]]:
    """A supervisor watching `process`; the list gets the start time of every run of it."""
    starts: list[float] = []

    def changed() -> None:
        if not starts or starts[-1] != process.started_monotonic:
            starts.append(process.started_monotonic)

    supervisor = Supervisor(policy, tmp_path / "supervisor.log", changed, interval_s=0.02)
    supervisor.begin()
    try:
        supervisor.watch(process)
        yield supervisor, starts
    finally:
        supervisor.close()
        process.stop()


def reported_delays(supervisor: Supervisor) -> list[float]:
    return [float(d) for d in re.findall(r"restarting in ([0-9.]+)s", supervisor.events_log.read_text())]


def test_a_process_that_keeps_exiting_waits_longer_each_time_then_is_left_down(tmp_path: Path) -> None:
    process = python(tmp_path, "print('cannot start: port taken'); raise SystemExit(3)")
    policy = RestartPolicy(delay_s=0.2, max_delay_s=0.5, limit=5, window_s=30)
    with supervising(policy, process, tmp_path) as (supervisor, starts):
        wait_until(lambda: supervisor.status(process)["state"] == "failed", 20, "failed")
        status = supervisor.status(process)
        delays = reported_delays(supervisor)

    assert delays == [0.2, 0.4, 0.5, 0.5]  # doubling, capped at max_delay_s
    assert all(b - a >= d for a, b, d in zip(starts[:-1], starts[1:], delays, strict=True))
    assert status["restarts"] == 4
    assert status["reason"].startswith("exited 5 times within 30s, last: exit code 3")
    assert "cannot start: port taken" in supervisor.events_log.read_text()  # the log's last lines
    assert process.has_exited()


def test_a_process_that_stayed_up_a_window_starts_its_backoff_afresh(tmp_path: Path) -> None:
    process = python(tmp_path, "import time; time.sleep(0.4); raise SystemExit(1)")
    policy = RestartPolicy(delay_s=0.1, max_delay_s=10, limit=3, window_s=0.3)
    with supervising(policy, process, tmp_path) as (supervisor, _):
        wait_until(lambda: supervisor.status(process)["restarts"] >= 4, 20, "four restarts")
        status = supervisor.status(process)
        delays = reported_delays(supervisor)

    assert delays[:4] == [0.1] * 4
    assert status["state"] in ("running", "restarting")
    assert status["last_exit"] == "exit code 1"


def test_a_process_stopped_on_purpose_stays_down_until_started(tmp_path: Path) -> None:
    process = python(tmp_path, "import time; time.sleep(60)")
    with supervising(RestartPolicy(delay_s=0.05), process, tmp_path) as (supervisor, starts):
        process.stop()
        wait_until(lambda: supervisor.status(process)["state"] == "stopped", 5, "stopped")
        down = (process.has_exited(), len(starts))
        supervisor.start(process)
        status = supervisor.status(process)

    assert down == (True, 1)
    assert (status["state"], status["restarts"]) == ("running", 0)
    assert len(starts) == 2


@pytest.mark.parametrize(
    ("code", "words"), [(-9, "signal SIGKILL"), (2, "exit code 2"), (-100, "signal 100")]
)
def test_an_exit_is_described_in_words(code: int, words: str) -> None:
    assert describe_exit(code) == words
