"""The gateway's connection capacity: what the open-files limit and somaxconn allow, rendered and said."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from stack.capacity import WANTED_BACKLOG, capacity

ROOT = Path(__file__).resolve().parents[1]


def with_open_files(limit: int) -> None:
    """For a child process: a lower open-files limit (lowering needs no privilege), like a container's."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


def python(code: str, open_files: int, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        preexec_fn=lambda: with_open_files(open_files),
    )


def test_workers_hold_what_the_open_files_limit_allows_and_the_shortfall_is_said() -> None:
    code = "import json; from stack.capacity import capacity; print(json.dumps(capacity(16384).__dict__))"
    found = json.loads(python(code, open_files=4096).stdout)

    assert (found["rlimit_nofile"], found["worker_connections"]) == (4096, 4096 - 64)
    [warning] = [w for w in found["warnings"] if "open-files" in w]
    assert "hard limit is 4,096" in warning
    assert "at most 4,032 connections" in warning
    assert "GATEWAY_WORKER_CONNECTIONS" in warning


def test_within_the_limit_every_asked_connection_is_granted() -> None:
    found = capacity(1000)

    assert (found.worker_connections, found.rlimit_nofile) == (1000, 1064)
    assert not [w for w in found.warnings if "open-files" in w]


@pytest.mark.parametrize(("somaxconn", "backlog", "warned"), [("128\n", 128, True), ("4096\n", 4096, False)])
def test_the_listen_backlog_stays_within_somaxconn(
    tmp_path: Path, somaxconn: str, backlog: int, warned: bool
) -> None:
    (tmp_path / "somaxconn").write_text(somaxconn)

    found = capacity(1000, tmp_path / "somaxconn")

    assert found.backlog == backlog
    assert any("somaxconn" in w for w in found.warnings) == warned
    assert capacity(1000, tmp_path / "absent").backlog == WANTED_BACKLOG  # not Linux: nothing to cap it


@pytest.mark.stack
def test_a_native_stack_under_a_low_limit_warns_at_start_and_renders_what_it_may(
    store_dir: Path, tmp_path: Path
) -> None:
    code = f"""
import pathlib, sys, httpx
sys.path.insert(0, "tests")
from stacks import running_stack
run_dir, store_dir = pathlib.Path({str(tmp_path)!r}), pathlib.Path({str(store_dir)!r})
with running_stack(run_dir, store_dir, replicas=1, with_ui=False) as s:
    print(httpx.get(s.gateway_url + "/healthz").status_code)
    print((s.options.run_dir / "nginx" / "nginx.conf").read_text())
"""
    started = python(code, open_files=2048, timeout_s=120)

    assert started.returncode == 0, started.stderr[-3000:]
    assert started.stdout.startswith("200\n")
    assert "worker_rlimit_nofile 2048;" in started.stdout
    assert "worker_connections 1984;" in started.stdout
    assert "warning: the open-files hard limit is 2,048" in started.stderr


def test_the_gateway_image_renders_the_same_capacity_and_says_its_shortfall() -> None:
    """The image's entrypoint (stack/compose_gateway.py) prints the warning before nginx starts."""
    code = """
import os
os.environ.update(GATEWAY_TOKEN="t", GATEWAY_RESOLVER="127.0.0.11")
from stack import compose_gateway
config = compose_gateway.config_from_environment()
compose_gateway.announce(config)
"""
    said = python(code, open_files=4096)

    assert said.returncode == 0, said.stderr
    assert "gateway: warning: the open-files hard limit is 4,096" in said.stdout
