"""One load cell: wrk with load.lua against one URL, its figures read from the JSON line done() prints."""

from __future__ import annotations

import json
import resource
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
    max_ms: float = 0.0
    connection_errors: int = 0
    """Connections that failed to open, were reset or broke while reading or writing."""
    timeouts: int = 0
    """Requests unanswered within the run's --timeout."""
    statuses: dict[int, int] | None = None
    """Answers by status code, when counted (run(..., statuses=True))."""
    answered_p50_ms: float | None = None
    """Median latency of the 2xx answers, when counted."""
    answered_p99_ms: float | None = None
    """p99 of the 2xx answers, when counted."""
    shed_p50_ms: float | None = None
    """Median latency of the 503 answers, when counted."""
    shed_max_ms: float | None = None
    unannounced_503: int = 0
    """503 answers without a Retry-After header."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def answered(self) -> int:
        return sum(n for status, n in (self.statuses or {}).items() if status < 300)

    @property
    def answered_rate(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0

    @property
    def shed(self) -> int:
        return (self.statuses or {}).get(503, 0)


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
    statuses: bool = False,
    timeout_s: float = 10.0,
) -> Figures:
    """One wrk thread (the load generator shares the two cores with the stack), `connections` open.
    `items`: a file of catalogue item ids, one per line, drawn for every "__I__" of the body.
    `statuses`: count the answers by status (costs wrk a Lua call per answer)."""
    method = "POST" if body else "GET"
    open_files_up_to_the_hard_limit()
    command = [binary(), "-t1", f"-c{connections}", f"-d{duration_s:g}s", "--timeout", f"{timeout_s:g}s"]
    command += ["-s", str(LUA), url, "--", method, str(body or "-"), key, str(base), str(items or "-")]
    command += ["statuses"] if statuses else []
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
        max_ms=raw["max_us"] / 1000,
        connection_errors=sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors")),
        timeouts=raw["timeouts"],
        statuses={int(status): n for status, n in raw["statuses"].items()} if statuses else None,
        answered_p50_ms=_ms(raw["answered_p50_us"]),
        answered_p99_ms=_ms(raw["answered_p99_us"]),
        shed_p50_ms=_ms(raw["shed_p50_us"]),
        shed_max_ms=_ms(raw["shed_max_us"]),
        unannounced_503=raw["unannounced_503"],
    )


def open_files_up_to_the_hard_limit() -> None:
    """wrk opens a socket per connection and never raises its own limit: 1,024 connections need more than
    a soft limit of 1,024 (a common default). wrk inherits this process's limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _ms(us: int) -> float | None:
    """A latency load.lua counted, or None (-1) when it had no answer of that kind."""
    return us / 1000 if us >= 0 else None
