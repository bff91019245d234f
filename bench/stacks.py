"""The stacks the benchmark measures: the native stack of `make start`, configured per measurement."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from stack.keys import demo_keys
from stack.native import NativeStack, StackOptions
from stack.procs import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
UNLIMITED = 10_000_000  # the gateway's per-key rate limit would otherwise be what is measured


@dataclass(frozen=True)
class Config:
    """One stack: how many replicas, micro-batching on or off, ONNX allowed or joblib forced, the
    prediction cache on or off."""

    replicas: int = 2
    batching: bool = True
    onnx: bool = True
    cache: bool = True

    def env(self) -> dict[str, str]:
        return {
            "BACKEND_MICROBATCH_ENABLED": str(self.batching).lower(),
            "BACKEND_ONNX_ENABLED": str(self.onnx).lower(),
            "BACKEND_CACHE_ENABLED": str(self.cache).lower(),
        }

    @property
    def label(self) -> str:
        replicas = f"{self.replicas} replica{'s' if self.replicas > 1 else ''}"
        onnx, cache = "" if self.onnx else ", ONNX off", "" if self.cache else ", cache off"
        return f"{replicas}, batching {'on' if self.batching else 'off'}{onnx}{cache}"


@contextmanager
def running(
    config: Config, store_dir: Path, code: Path | None = None, env: dict[str, str] | None = None
) -> Iterator[NativeStack]:
    """A stack for `config`, with `env` for its replicas besides; its replicas and gateway templates from
    another checkout at `code`."""
    replica_env = config.env() | (env or {}) | ({"PYTHONPATH": str(code / "backend")} if code else {})
    templates: dict[str, Any] = {"gateway_templates": code / "nginx"} if code else {}
    if code is not None and not (code / "backend" / "mlstack" / "server" / "launch.py").exists():
        templates["replica_command"] = legacy_command(code)  # a checkout from before `mlstack serve`
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-") as run_dir:
        options = StackOptions(
            run_dir=Path(run_dir),
            store_dir=store_dir,
            gateway_port=free_port(),
            replicas=config.replicas,
            keys=demo_keys(),
            with_ui=False,
            rate_per_s=UNLIMITED,
            burst=UNLIMITED,
            replica_env=replica_env,
            **templates,
        )
        with NativeStack(options) as stack:
            yield stack


def legacy_command(code: Path) -> Callable[[int], list[str]]:
    """How replicas were started before `mlstack serve` (commits before the replica was reshaped)."""
    flat = (code / "backend" / "mlstack" / "http_protocol.py").exists()
    protocol = "mlstack.http_protocol" if flat else "mlstack.server.http_protocol"

    def command(port: int) -> list[str]:
        uvicorn = [sys.executable, "-m", "uvicorn", "--factory", "mlstack.main:create_app"]
        listen = ["--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", "75", "--no-access-log"]
        fast = ["--loop", "uvloop", "--http", f"{protocol}:HttpToolsProtocol"]
        return [*uvicorn, *listen, *fast, "--timeout-graceful-shutdown", "10"]

    return command


def get_json(stack: NativeStack, path: str) -> Any:
    request = urllib.request.Request(stack.gateway_url + path, headers={"X-API-Key": stack.key("predict")})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def cache_rows(stack: NativeStack) -> Counter[str]:
    """Rows each replica looked up in the cache so far, by result (hit, miss, bypass), and the computed
    rows it left out of the cache (unwritten), summed."""
    total: Counter[str] = Counter()
    for replica in stack.replicas:
        request = urllib.request.Request(
            f"http://127.0.0.1:{replica.port}/metrics", headers={"X-Gateway-Token": stack.token}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name == "mlstack_cache_rows":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        total[sample.labels["result"]] += int(sample.value)
            if family.name == "mlstack_cache_unwritten_rows":
                total["unwritten"] += sum(int(s.value) for s in family.samples if s.name.endswith("_total"))
    return total


def bypassed(before: Counter[str], after: Counter[str]) -> float | None:
    """The share of rows that went without the cache between two readings (None: no rows)."""
    change = after - before
    rows = change["hit"] + change["miss"] + change["bypass"]
    return change["bypass"] / rows if rows else None


def unwritten(before: Counter[str], after: Counter[str]) -> float | None:
    """The share of missed rows, computed, that were left out of the cache (None: no misses)."""
    change = after - before
    return change["unwritten"] / change["miss"] if change["miss"] else None


def engine(manifest: dict[str, Any]) -> str:
    """The runtime that serves, as the model's route says (joblib when it does not say)."""
    for key in ("engine", "runtime_engine", "serving_runtime"):
        if isinstance(manifest.get(key), str):
            return str(manifest[key])
    runtime = manifest.get("runtime")
    if isinstance(runtime, dict) and isinstance(runtime.get("engine"), str):
        return str(runtime["engine"])
    return "joblib"


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds spent so far by the stack's processes, by role, and by this process's finished children
    (the load generator, once wrk has exited)."""

    by_role: dict[str, float]
    load_generator: float


def cpu_reading(stack: NativeStack) -> CpuReading:
    spent = os.times()
    return CpuReading(cpu_by_role(stack), spent.children_user + spent.children_system)


def cpu_per_request(before: CpuReading, after: CpuReading, requests: int) -> dict[str, float]:
    """CPU µs per request of each kind of process between two readings, the load generator's as "wrk"."""
    spent = {role: after.by_role[role] - before.by_role.get(role, 0.0) for role in after.by_role}
    spent["wrk"] = after.load_generator - before.load_generator
    return {role: seconds / max(requests, 1) * 1e6 for role, seconds in spent.items()}


def cpu_by_role(stack: NativeStack) -> dict[str, float]:
    """CPU seconds so far of the stack's processes by role; nginx's workers counted with the gateway."""
    spent: dict[str, float] = {}
    for process in stack.processes:
        pids = [process.pid] + (children(process.pid) if process.role == "gateway" else [])
        spent[process.role] = spent.get(process.role, 0.0) + sum(map(cpu_seconds, pids))
    return spent


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime and stime


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in found.read_text().split()] if found.exists() else []
