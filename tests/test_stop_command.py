"""`python -m stack down` when the start command is gone: it stops what was left, and only that."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stack import pids, runstate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def orphan() -> Iterator[subprocess.Popen[bytes]]:
    """A process left running by a start command that was killed (its own session, like the stack's)."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def record(run_dir: Path, process: subprocess.Popen[bytes], started_at: float) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()  # a supervisor pid that no longer runs
    entry = {"role": "replica", "name": "replica-1", "pid": process.pid, "port": 1, "log": "replica-1.log"}
    state = {
        "gateway_url": "http://127.0.0.1:1",
        "supervisor": {"pid": dead.pid, "started_at": runstate.timestamp(started_at)},
        "processes": [{**entry, "state": "running", "started_at": runstate.timestamp(started_at)}],
    }
    run_dir.mkdir()
    (run_dir / runstate.FILE_NAME).write_text(json.dumps(state))


def stop_command(run_dir: Path) -> str:
    env = {**os.environ, "STACK_RUN_DIR": str(run_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "stack", "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    return done.stdout


def test_stop_stops_what_a_dead_start_command_left(tmp_path: Path, orphan: subprocess.Popen[bytes]) -> None:
    began = pids.started_at(orphan.pid)
    assert began is not None
    record(tmp_path / "run", orphan, began)

    output = stop_command(tmp_path / "run")

    assert orphan.wait(timeout=15) == -15  # SIGTERM, by its recorded pid
    assert "stack stopped" in output
    assert not (tmp_path / "run" / runstate.FILE_NAME).exists()


def test_stop_leaves_alone_a_recorded_pid_that_now_belongs_to_another_process(
    tmp_path: Path, orphan: subprocess.Popen[bytes]
) -> None:
    began = pids.started_at(orphan.pid)
    assert began is not None
    record(tmp_path / "run", orphan, began - 3600)  # the file's process started an hour before this one

    stop_command(tmp_path / "run")

    assert orphan.poll() is None
    assert not (tmp_path / "run" / runstate.FILE_NAME).exists()
