"""One load cell: wrk with load.lua against one URL, its figures read from the JSON line done() prints."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).with_name("load.lua")


@dataclass(frozen=True)
class Figures:
    requests: int
    seconds: float
    errors: int
    """Failed connections, reads, writes and timeouts, plus every answer that was not 2xx/3xx."""
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench: wrk is missing; scripts/bootstrap.sh installs it (apt-get install wrk)")
    return found


def run(
    url: str,
    key: str,
    connections: int,
    duration_s: float,
    body: Path | None,
    base: int = 0,
    items: Path | None = None,
) -> Figures:
    """One wrk thread (the load generator shares the two cores with the stack), `connections` open.
    `items`: a file of catalogue item ids, one per line, drawn for every "__I__" of the body."""
    method = "POST" if body else "GET"
    command = [binary(), "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", "10s"]
    command += ["-s", str(LUA), url, "--", method, str(body or "-"), key, str(base), str(items or "-")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + 60, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(
            f"wrk (exit {done.returncode}) printed no figures:\n{(done.stdout + done.stderr)[-2000:]}"
        )
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(
        raw[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return Figures(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        errors=errors,
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )
