"""The benchmark's overload section: 1-row cache misses far past what the replicas take, and idle keep-alive
clients held open beside a load. Every answer is counted by status, so the figures are the answered
requests' (2xx) and the shed ones' (503) apart; connection errors and timeouts are counted on their own.

Targets (the issue's): at 256 connections the answered p99 within 5× the one at 16, the answered
throughput at least 90% of it; no connection error at any level.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import wrk
from stack.native import NativeStack

ROOT = Path(__file__).resolve().parents[1]
REFERENCE, CROWD = 16, 256
DRAIN_S = 1.5
"""Pause between cells: a replica refuses its last waiters within half a second after a load stops
(mlstack.serving.admission.REFUSE_AFTER_S); the next cell must not start with the last one's requests held."""
IDLE_OPEN_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...] = (REFERENCE, CROWD, 1024)
    idle: int = 10_000
    """Idle keep-alive connections held open beside a 16-connection load (0: no such cell)."""
    seconds: float = 5.0
    rounds: int = 2


QUICK = Plan(idle=1_000, seconds=1.0, rounds=1)
SMOKE = Plan(levels=(REFERENCE, CROWD), idle=100, seconds=1.0, rounds=1)


@dataclass(frozen=True)
class Cell:
    connections: int
    idle: int = 0


@dataclass(frozen=True)
class Result:
    cell: Cell
    figures: wrk.Figures
    idle_held: int = 0
    idle_alive: int = 0
    """Idle connections still answered on after the load: the gateway kept them open."""


def measure(stack: NativeStack, url: str, body: Path, plan: Plan) -> list[Result]:
    """Each cell once per round, every other round in reverse; a round's figures combined per cell."""
    cells = [Cell(n) for n in plan.levels] + ([Cell(REFERENCE, plan.idle)] if plan.idle else [])
    found: dict[Cell, list[Result]] = {}
    for round_ in range(plan.rounds):
        for i, cell in enumerate(cells if round_ % 2 == 0 else cells[::-1]):
            base = 500_000_000 + (round_ * len(cells) + i) * 10_000_000  # rows of their own: misses
            found.setdefault(cell, []).append(one(stack, url, body, cell, plan.seconds, base))
            time.sleep(DRAIN_S)
    return [combined(results) for results in found.values()]


def one(stack: NativeStack, url: str, body: Path, cell: Cell, seconds: float, base: int) -> Result:
    """One cell; `url` the prediction route the body is for."""
    key = stack.key("predict")
    if not cell.idle:
        figures = wrk.run(url, key, cell.connections, seconds, body, base, statuses=True)
        print(
            f"bench: overload, {cell.connections} connections: {figures.answered_rate:,.0f} answered/s",
            file=sys.stderr,
        )
        return Result(cell, figures)
    holder = subprocess.Popen(
        [sys.executable, "-m", "bench.idle", f"{stack.gateway_url}/healthz", str(cell.idle)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        held = _count(holder, "held")
        figures = wrk.run(url, key, cell.connections, seconds, body, base, statuses=True)
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        alive = _count(holder, "alive")
    finally:
        holder.kill()
        holder.wait()
    print(
        f"bench: overload, {held:,} idle held beside {cell.connections}: {alive:,} alive after",
        file=sys.stderr,
    )
    return Result(cell, figures, held, alive)


def _count(holder: subprocess.Popen[str], word: str) -> int:
    """The number the idle holder prints after `word` (it prints "held N", later "alive N")."""
    assert holder.stdout is not None
    deadline = time.monotonic() + IDLE_OPEN_TIMEOUT_S
    while time.monotonic() < deadline:
        line = holder.stdout.readline()
        if not line:
            break
        if line.startswith(word + " "):
            return int(line.split()[1])
    raise RuntimeError(f"bench.idle printed no '{word}' line (exit {holder.poll()})")


def combined(rounds: list[Result]) -> Result:
    """Rounds of one cell as one: counts summed, percentiles their mean, the worst maximum."""
    figures = [r.figures for r in rounds]
    statuses: dict[int, int] = {}
    for f in figures:
        for status, n in (f.statuses or {}).items():
            statuses[status] = statuses.get(status, 0) + n

    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return sum(known) / len(known) if known else None

    together = wrk.Figures(
        requests=sum(f.requests for f in figures),
        seconds=sum(f.seconds for f in figures),
        errors=sum(f.errors for f in figures),
        p50_ms=mean([f.p50_ms for f in figures]) or 0.0,
        p95_ms=mean([f.p95_ms for f in figures]) or 0.0,
        p99_ms=mean([f.p99_ms for f in figures]) or 0.0,
        max_ms=max(f.max_ms for f in figures),
        connection_errors=sum(f.connection_errors for f in figures),
        timeouts=sum(f.timeouts for f in figures),
        statuses=statuses,
        answered_p50_ms=mean([f.answered_p50_ms for f in figures]),
        answered_p99_ms=mean([f.answered_p99_ms for f in figures]),
        shed_p50_ms=mean([f.shed_p50_ms for f in figures]),
        shed_max_ms=max((f.shed_max_ms for f in figures if f.shed_max_ms is not None), default=None),
        unannounced_503=sum(f.unannounced_503 for f in figures),
    )
    return Result(
        rounds[0].cell, together, min(r.idle_held for r in rounds), min(r.idle_alive for r in rounds)
    )


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def table(results: list[Result]) -> str:
    if not results:
        return ""
    lines = [
        "| overload: 1-row misses | idle keep-alive held (alive after) | answered req/s | answered p50 ms "
        "| answered p99 ms | shed (503) | 503 median ms | other statuses | connection errors | timeouts "
        "| max ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        f = r.figures
        answered_or_shed = f.answered + f.shed
        others = f.requests - answered_or_shed
        idle = f"{r.idle_held:,} ({r.idle_alive:,})" if r.cell.idle else ""
        shed = f"{f.shed / f.requests:.1%}" if f.requests else ""
        lines.append(
            f"| {r.cell.connections} connections | {idle} | {f.answered_rate:,.0f} "
            f"| {_ms(f.answered_p50_ms)} | {_ms(f.answered_p99_ms)} | {shed} | {_ms(f.shed_p50_ms)} "
            f"| {others} | {f.connection_errors} | {f.timeouts} | {f.max_ms:,.0f} |"
        )
    return "\n".join(lines + ["", verdict(results)]).strip()


def verdict(results: list[Result]) -> str:
    """The two targets at 256 connections against the reference at 16, in one sentence each."""
    by_level = {r.cell.connections: r.figures for r in results if not r.cell.idle}
    reference, crowd = by_level.get(REFERENCE), by_level.get(CROWD)
    if reference is None or crowd is None or not reference.answered_p99_ms or not reference.answered_rate:
        return ""
    latency = (crowd.answered_p99_ms or 0.0) / reference.answered_p99_ms
    throughput = crowd.answered_rate / reference.answered_rate
    return (
        f"At {CROWD} connections the answered requests' p99 is {latency:.2f}× the one at {REFERENCE} "
        f"(target ≤ 5) and their throughput {throughput:.0%} of it (target ≥ 90%)."
    )


def raw(results: list[Result]) -> list[dict[str, Any]]:
    return [
        {
            **asdict(r.cell),
            **asdict(r.figures),
            "answered_rate": r.figures.answered_rate,
            "idle_held": r.idle_held,
            "idle_alive": r.idle_alive,
        }
        for r in results
    ]
