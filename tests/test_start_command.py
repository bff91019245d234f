"""The README's path: `python -m stack up` on an empty store, a prediction with curl, a replica that
crashes and comes back, `make status`, and a clean stop with `make stop`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stack.procs import free_port
from waiting import wait_for, wait_until

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.stack, pytest.mark.slow]


def wait_for_file(path: Path, process: subprocess.Popen[str], timeout_s: float) -> dict[str, Any]:
    def written() -> bool:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        return path.exists()

    wait_until(written, timeout_s, f"{path} written")
    state: dict[str, Any] = json.loads(path.read_text())
    return state


def test_start_command_trains_serves_heals_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(port),
        "BACKEND_STORE_DIR": str(tmp_path / "model_store"),
        "STACK_RUN_DIR": str(tmp_path / ".run"),
        "STACK_UI_PORT": str(free_port()),
        "BACKEND_REPLICAS": "2",
    }
    command = [sys.executable, "-m", "stack", "up"]
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        state = wait_for_file(tmp_path / ".run" / "stack.json", process, timeout_s=180)
        key = next(k["key"] for k in state["credentials"]["keys"] if k["scope"] == "predict")
        schema = curl(f"{state['gateway_url']}/v1/models/churn", key)
        row = {f["name"]: f["typical"] for f in json.loads(schema)["inputs"]}
        answer = json.loads(
            curl(f"{state['gateway_url']}/v1/models/churn:predict", key, {"instances": [row]})
        )
        crashed = next(p for p in state["processes"] if p["role"] == "replica")
        os.kill(crashed["pid"], signal.SIGKILL)
        healed = wait_for_restart(tmp_path / ".run" / "stack.json", crashed["name"], process, timeout_s=30)
        status = stack_command("status", env, tmp_path)
        stopped = stack_command("down", env, tmp_path)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=60)

    assert answer["predictions"][0] in (0, 1)
    assert sorted(p.name for p in (tmp_path / "model_store").iterdir()) == [
        "churn",
        "fraud",
        "maintenance",
        "recommend",
    ]
    assert process.returncode == 0, output
    assert "mlstack is up" in output
    assert {p["role"] for p in state["processes"]} >= {"redis", "redis-data", "replica", "gateway"}
    assert healed["pid"] != crashed["pid"]
    assert (healed["port"], healed["restarts"], healed["state"]) == (crashed["port"], 1, "running")
    assert f"{crashed['name']} (replica) exited (signal SIGKILL)" in output
    assert re.search(rf"{crashed['name']}\s.*running\s+up \d+m\d\ds\s+restarts 1", status)
    assert "stack stopped" in stopped
    assert "stack stopped" in output  # the start command stopped its own processes, on request
    assert not (tmp_path / ".run" / "stack.json").exists()
    assert all(not Path(f"/proc/{p['pid']}").exists() for p in [*state["processes"], healed])


def wait_for_restart(
    path: Path, name: str, process: subprocess.Popen[str], timeout_s: float
) -> dict[str, Any]:
    """The process's entry in the run-state file once supervision has started it again."""

    def entry() -> dict[str, Any]:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        found: dict[str, Any] = next(
            p for p in json.loads(path.read_text())["processes"] if p["name"] == name
        )
        return found

    return wait_for(
        entry, lambda e: e.get("restarts") == 1 and e["state"] == "running", timeout_s, f"{name} restarted"
    )


def stack_command(command: str, env: dict[str, str], cwd: Path) -> str:
    """`python -m stack status|down`, as `make status|stop` run them, from where the stack was started."""
    done = subprocess.run(
        [sys.executable, "-m", "stack", command],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=90,
    )
    return done.stdout + done.stderr


def curl(url: str, key: str, body: dict | None = None) -> str:  # type: ignore[type-arg]  # any JSON body
    command = ["curl", "-sS", "--fail-with-body", "-H", f"X-API-Key: {key}", url]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=30).stdout
