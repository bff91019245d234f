"""The Locust suite against the real stack: a short headless run passes, and a broken threshold fails it."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stack.native import NativeStack

ROOT = Path(__file__).resolve().parents[1]


def locust(stack: NativeStack, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "locust"), "--config", "loadtests/locust.conf"]
    command += ["--csv", str(out / "run"), "--html", str(out / "report.html"), *args]
    environment = {
        **os.environ,
        "LOADTEST_HOST": stack.gateway_url,
        "LOADTEST_API_KEY": stack.key("predict"),
        "LOADTEST_RUN_STATE": str(out / "absent.json"),
        "LOADTEST_RATE_PER_USER": "5",
        "LOADTEST_THINK_MIN_S": "0.1",
        "LOADTEST_THINK_MAX_S": "0.3",
        "LOADTEST_BATCH_ROWS": "20",
        **env,
    }
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False
    )


def stats(out: Path) -> dict[str, dict[str, str]]:
    with (out / "run_stats.csv").open() as fh:
        return {row["Name"]: row for row in csv.DictReader(fh)}


@pytest.mark.stack
def test_a_short_run_of_every_user_class_passes_with_no_failure(stack: NativeStack, tmp_path: Path) -> None:
    run = locust(stack, tmp_path, "--users", "6", "--spawn-rate", "6", "--run-time", "4s")

    rows = stats(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "thresholds met" in run.stderr
    assert int(rows["Aggregated"]["Request Count"]) > 20
    assert rows["Aggregated"]["Failure Count"] == "0"
    for name in ("(1 row)", "(1 row, repeated)", "(20 rows)"):
        assert int(rows[f"/v1/models/churn:predict {name}"]["Request Count"]) > 0
    assert int(rows["/v2/models/churn/infer"]["Request Count"]) > 0
    assert (tmp_path / "report.html").stat().st_size > 0


@pytest.mark.stack
def test_an_impossible_p99_threshold_fails_the_run(stack: NativeStack, tmp_path: Path) -> None:
    run = locust(stack, tmp_path, "--users", "1", "--run-time", "2s", "OneRow", LOADTEST_P99_MS="0.01")

    assert run.returncode == 3, run.stderr[-3000:]
    assert "threshold broken: p99" in run.stderr
    assert stats(tmp_path)["Aggregated"]["Failure Count"] == "0"


@pytest.mark.stack
def test_the_step_shape_adds_users_step_by_step(stack: NativeStack, tmp_path: Path) -> None:
    run = locust(
        stack,
        tmp_path,
        "-f",
        "loadtests/locustfile.py,loadtests/shapes.py",
        "OneRow",
        LOADTEST_STEP_USERS="2",
        LOADTEST_STEP_S="1",
        LOADTEST_STEPS="2",
    )

    assert run.returncode == 0, run.stderr[-3000:]
    assert "Shape test updating to 4 users" in run.stderr
    assert "Shape test completed" in run.stderr


def test_without_a_gateway_or_key_the_run_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADTEST_")}
    env["LOADTEST_RUN_STATE"] = str(tmp_path / "absent.json")
    command = [str(Path(sys.executable).parent / "locust"), "--config", str(ROOT / "loadtests/locust.conf")]
    command += ["-f", str(ROOT / "loadtests/locustfile.py")]
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert run.returncode != 0
    assert "LOADTEST_API_KEY" in run.stderr + run.stdout


def test_host_and_key_come_from_settings_then_gateway_keys_then_the_run_state(tmp_path: Path) -> None:
    from loadtests.settings import LoadtestSettings

    state = tmp_path / "stack.json"
    keys = [
        {"name": "demo-admin", "scope": "admin", "key": "a" * 20},
        {"name": "demo", "scope": "predict", "key": "p" * 20},
    ]
    state.write_text(json.dumps({"gateway_url": "http://127.0.0.1:9", "credentials": {"keys": keys}}))
    from_state = LoadtestSettings(_env_file=None, run_state=state)
    from_keys = LoadtestSettings(
        _env_file=None, run_state=state, keys="ops:admin:" + "o" * 20 + ",c:predict:" + "c" * 20
    )
    configured = LoadtestSettings(_env_file=None, run_state=state, host="http://gw:8080", api_key="k" * 20)

    assert (from_state.gateway_url(), from_state.predict_key()) == ("http://127.0.0.1:9", "p" * 20)
    assert from_keys.predict_key() == "c" * 20
    assert (configured.gateway_url(), configured.predict_key()) == ("http://gw:8080", "k" * 20)
