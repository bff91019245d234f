"""The report: every measured figure in one Markdown table, the issue's ratios, and two PNG plots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.plan import LOADS, MAIN, REFERENCE_CONNECTIONS, ROWS, Cell
from bench.stacks import Config
from bench.wrk import Figures


@dataclass(frozen=True)
class Result:
    cell: Cell
    figures: Figures
    engine: str
    bypassed: float | None = None
    """The share of predicted rows that went without the cache (Redis slow or down): None when unknown."""
    unwritten: float | None = None
    """The share of missed rows, computed, that were not written to the cache (Redis lagging behind)."""
    cpu_us: dict[str, float] | None = None
    """CPU µs per request of each kind of process (gateway, replica, redis, ..., wrk), from /proc."""

    @property
    def rows_per_s(self) -> float:
        return self.figures.rate * ROWS[self.cell.load]


def combined(rounds: list[Result]) -> Result:
    """One cell measured several times, as one: requests over seconds, errors summed, percentiles their
    mean, the bypassed share over every round that knew it."""
    first, figures = rounds[0], [r.figures for r in rounds]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    shares = [r.bypassed for r in rounds if r.bypassed is not None]
    left_out = [r.unwritten for r in rounds if r.unwritten is not None]
    together = Figures(
        requests=sum(f.requests for f in figures),
        seconds=sum(f.seconds for f in figures),
        errors=sum(f.errors for f in figures),
        p50_ms=mean([f.p50_ms for f in figures]),
        p95_ms=mean([f.p95_ms for f in figures]),
        p99_ms=mean([f.p99_ms for f in figures]),
    )
    return Result(
        first.cell,
        together,
        first.engine,
        mean(shares) if shares else None,
        mean(left_out) if left_out else None,
        _cpu_combined(rounds),
    )


def _cpu_combined(rounds: list[Result]) -> dict[str, float] | None:
    """CPU per request over every round: each round's weighted by its requests."""
    known = [r for r in rounds if r.cpu_us is not None]
    requests = sum(r.figures.requests for r in known)
    if not known or not requests:
        return None
    roles = {role for r in known for role in r.cpu_us or {}}
    return {
        role: sum((r.cpu_us or {}).get(role, 0.0) * r.figures.requests for r in known) / requests
        for role in roles
    }


def table(results: list[Result]) -> str:
    lines = [
        "| section | stack | runtime | load | connections | req/s | rows/s | p50 ms | p95 ms | p99 ms "
        "| errors | cache bypassed | misses not cached |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        f, c = r.figures, r.cell
        rows = f"{r.rows_per_s:,.0f}" if ROWS[c.load] else ""
        bypassed = "" if r.bypassed is None else f"{r.bypassed:.0%}"
        left_out = "" if r.unwritten is None else f"{r.unwritten:.0%}"
        lines.append(
            f"| {c.section} | {c.peer or c.config.label} | {r.engine} | {LOADS[c.load]} | {c.connections} | "
            f"{f.rate:,.0f} | {rows} | {f.p50_ms:.1f} | {f.p95_ms:.1f} | {f.p99_ms:.1f} | {f.errors} "
            f"| {bypassed} | {left_out} |"
        )
    return "\n".join(lines)


CPU_ROLES = {"gateway": "gateway", "replica": "replicas", "redis": "Redis", "redis-data": "Redis (users)"}
CPU_SECTIONS = ("load", "replicas")


def cpu_table(results: list[Result], cores: int) -> str:
    """Where the cores go, per request and in all, for the cells at the reference concurrency: the
    ceiling's cause, measured in the run that reports it."""
    measured = [
        r
        for r in results
        if r.cpu_us and not r.cell.peer and r.cell.section in CPU_SECTIONS
        if r.cell.connections == REFERENCE_CONNECTIONS
    ]
    if not measured:
        return ""
    names = " | ".join(CPU_ROLES.values())
    lines = [
        f"| CPU µs per request ({REFERENCE_CONNECTIONS} connections) | stack | load | req/s | {names} | wrk "
        f"| all | cores busy (of {cores}) |",
        "| --- | --- | --- | ---: |" + " ---: |" * (len(CPU_ROLES) + 3),
    ]
    for r in measured:
        cpu = r.cpu_us or {}
        spent = " | ".join(f"{cpu.get(role, 0.0):,.0f}" for role in CPU_ROLES)
        total = sum(cpu.values())
        lines.append(
            f"| {r.cell.section} | {r.cell.config.label} | {LOADS[r.cell.load]} | {r.figures.rate:,.0f} | "
            f"{spent} | {cpu.get('wrk', 0.0):,.0f} | {total:,.0f} | {total * r.figures.rate / 1e6:.2f} |"
        )
    return "\n\n".join(part for part in ("\n".join(lines), ceiling_verdict(measured, cores)) if part)


def ceiling_verdict(measured: list[Result], cores: int) -> str:
    """One sentence on where the ceiling route's throughput stops, from its row of the CPU table."""
    ceiling = next((r for r in measured if r.cell.load == "ceiling" and r.cell.section == "load"), None)
    if ceiling is None or not ceiling.cpu_us:
        return ""
    total = sum(ceiling.cpu_us.values())
    busy = total * ceiling.figures.rate / 1e6
    replicas = ceiling.cpu_us.get("replica", 0.0) / total if total else 0.0
    count = ceiling.cell.config.replicas
    per_replica = ceiling.cpu_us.get("replica", 0.0) * ceiling.figures.rate / 1e6 / count
    if busy >= 0.9 * cores:
        why = (
            f"the cores are full, so the ceiling is CPU: {total:,.0f} µs per request over all processes, "
            f"{replicas:.0%} of it in the replicas"
        )
    elif per_replica >= 0.9:  # a replica is one process with one event loop: it cannot use a second core
        which = "the one replica process keeps" if count == 1 else f"each of the {count} replicas keeps"
        why = (
            f"{which} its one core full ({per_replica:.2f}), so the replicas are the ceiling while "
            f"{cores - busy:.1f} cores stay idle"
        )
    else:
        why = f"{cores - busy:.1f} cores stay idle, so the ceiling is waiting (latency), not CPU"
    return f"At the ceiling route the processes keep {busy:.2f} of {cores} cores busy: {why}."


def inprocess_table(limits: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| in-process (one thread, no HTTP) | runtime | predict calls/s, 1 row | calls/s, 100 rows "
        "| rows/s, 100 rows |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for asked, x in limits.items():
        lines.append(
            f"| {asked} | {x['engine']} | {x['calls_per_s_1']:,.0f} | {x['calls_per_s_100']:,.0f} | "
            f"{x['rows_per_s_100']:,.0f} |"
        )
    return "\n".join(lines)


def reference(results: list[Result]) -> Config:
    """The configuration the load section measured (the main one, or the smoke run's)."""
    return next((r.cell.config for r in results if r.cell.section == "load"), MAIN)


class Lookup:
    """Find one measured cell by what it was; None when this run did not measure it."""

    def __init__(self, results: list[Result]) -> None:
        # a peer's cell carries the main config too (it is unused there): never mistake one for ours
        self._by: dict[tuple[str | None, Config, str, int], Result] = {}
        for r in results:
            if not r.cell.peer:
                key = (r.cell.config, r.cell.load, r.cell.connections)
                self._by.setdefault((None, *key), r)  # any section: the first measured (load comes first)
                self._by.setdefault((r.cell.section, *key), r)

    def __call__(
        self, load: str, config: Config, connections: int = REFERENCE_CONNECTIONS, section: str | None = None
    ) -> Result | None:
        return self._by.get((section, config, load, connections))


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(
    results: list[Result], limits: dict[str, dict[str, Any]], cores: int
) -> list[tuple[str, float | None, str]]:
    """(what, measured ratio, target) for each ratio the issue names, at 16 connections."""
    find, base = Lookup(results), reference(results)

    def get(load: str, config: Config = base, section: str | None = None) -> Result | None:
        return find(load, config, section=section)

    def scaled(replicas: int) -> float | None:
        """Misses with that many replicas, from the replicas section (its cells run one after another)."""
        config = Config(replicas, base.batching, base.onnx)
        return rate(get("miss1", config, "replicas") or get("miss1", config))

    rate: Callable[[Result | None], float | None] = lambda r: r.figures.rate if r else None  # noqa: E731
    p99: Callable[[Result | None], float | None] = lambda r: r.figures.p99_ms if r else None  # noqa: E731
    ceiling, miss, hit, batch = get("ceiling"), get("miss1"), get("hit1"), get("batch100")
    uncached_batch = get("batch100", Config(base.replicas, base.batching, base.onnx, cache=False))
    n = base.replicas
    joblib_on, joblib_off = Config(n, True, False), Config(n, False, False)
    served = limits.get("ONNX allowed", {})
    both_cores = served.get("rows_per_s_100", 0) * cores or None
    return [
        ("cache misses, 1 row: req/s ÷ ceiling route's", _ratio(rate(miss), rate(ceiling)), "≥ 0.50"),
        ("cache misses, 1 row: p99 ÷ ceiling route's p99", _ratio(p99(miss), p99(ceiling)), "≤ 4"),
        ("cache hits: req/s ÷ ceiling route's", _ratio(rate(hit), rate(ceiling)), "≥ 0.70"),
        ("cache hits: p99 ÷ ceiling route's p99", _ratio(p99(hit), p99(ceiling)), "≤ 3"),
        (
            f"batches of 100: rows/s ÷ in-process limit on {cores} cores",
            _ratio(batch.rows_per_s if batch else None, both_cores),
            "≥ 0.25",
        ),
        (
            "micro-batching on the joblib runtime: req/s on ÷ off (misses)",
            _ratio(rate(get("miss1", joblib_on)), rate(get("miss1", joblib_off))),
            "≥ 3",
        ),
        (
            "micro-batching, default runtime: req/s on ÷ off (misses)",
            _ratio(rate(miss), rate(get("miss1", Config(n, False, True)))),
            "(shown)",
        ),
        (
            "ONNX allowed ÷ joblib forced: req/s (misses)",
            _ratio(rate(miss), rate(get("miss1", joblib_on))),
            "(shown)",
        ),
        (
            "2 replicas ÷ 1: req/s (misses)",
            _ratio(scaled(2), scaled(1)),
            "≥ 1 (no loss)",
        ),
        (
            "4 replicas ÷ 2: req/s (misses)",
            _ratio(scaled(4), scaled(2)),
            "(shown)",
        ),
        ("recommendations ÷ 1-row misses: req/s", _ratio(rate(get("rec")), rate(miss)), "≥ 0.5"),
        ("recommendations ÷ 1-row misses: p99", _ratio(p99(get("rec")), p99(miss)), "≤ 2"),
        (
            "batches of 100, cache off ÷ on: rows/s (what caching each row costs)",
            _ratio(rate(uncached_batch), rate(batch)),
            "(shown)",
        ),
        *_peer_ratios(results, miss, batch, uncached_batch),
    ]


def _peer_ratios(
    results: list[Result], miss: Result | None, batch: Result | None, uncached_batch: Result | None
) -> list[tuple[str, float | None, str]]:
    peers = [r for r in results if r.cell.peer and r.cell.connections == REFERENCE_CONNECTIONS]
    best = max((r for r in peers if r.cell.load == "miss1"), key=lambda r: r.figures.rate, default=None)
    best_batch = max(
        (r for r in peers if r.cell.load == "batch100"), key=lambda r: r.rows_per_s, default=None
    )
    if best is None:
        return [("vs the best peer (BentoML, MLServer, LitServe)", None, "run with PEERS=1")]
    return [
        (
            f"cache misses, 1 row: req/s ÷ best peer's ({best.cell.peer})",
            _ratio(miss.figures.rate if miss else None, best.figures.rate),
            "≥ 5",
        ),
        (
            f"cache misses, 1 row: p99 ÷ that peer's p99 ({best.cell.peer})",
            _ratio(miss.figures.p99_ms if miss else None, best.figures.p99_ms),
            "< 0.33",
        ),
        (
            f"batches of 100: rows/s ÷ best peer's ({best_batch.cell.peer if best_batch else 'none'})",
            _ratio(batch.rows_per_s if batch else None, best_batch.rows_per_s if best_batch else None),
            "≥ 5",
        ),
        (
            "batches of 100, cache off (as the peers): rows/s ÷ best peer's",
            _ratio(
                uncached_batch.rows_per_s if uncached_batch else None,
                best_batch.rows_per_s if best_batch else None,
            ),
            "(shown)",
        ),
    ]


def ratio_table(rows: list[tuple[str, float | None, str]]) -> str:
    lines = ["| ratio (16 connections) | measured | target |", "| --- | ---: | --- |"]
    for what, value, target in rows:
        lines.append(f"| {what} | {'n/a' if value is None else f'{value:.2f}'} | {target} |")
    return "\n".join(lines)


def plots(results: list[Result], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    by_replicas: dict[str, dict[int, float]] = {}
    for r in results:
        c = r.cell
        same = (c.config.batching, c.config.onnx) == (MAIN.batching, MAIN.onnx)
        if same and c.connections == REFERENCE_CONNECTIONS and c.load in ("ceiling", "miss1", "hit1"):
            by_replicas.setdefault(c.load, {})[c.config.replicas] = r.figures.rate
    if by_replicas:
        fig, ax = plt.subplots(figsize=(6, 4))
        for load, points in by_replicas.items():
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], marker="o", label=LOADS[load])
        ax.set(xlabel="replicas", ylabel="requests/s", title="Throughput vs replicas (16 connections)")
        ax.set_xticks(sorted({x for p in by_replicas.values() for x in p}))
        ax.legend()
        written.append(_save(fig, out / "throughput_vs_replicas.png"))
    base = reference(results)
    main = [r for r in results if r.cell.config == base and r.cell.section == "load"]
    loads = [load for load in LOADS if any(r.cell.load == load for r in main)]
    if main:
        fig, axes = plt.subplots(1, len(loads), figsize=(4 * len(loads), 4), squeeze=False)
        for ax, load in zip(axes[0], loads, strict=True):
            cells = sorted((r for r in main if r.cell.load == load), key=lambda r: r.cell.connections)
            xs = [r.cell.connections for r in cells]
            for name in ("p50_ms", "p95_ms", "p99_ms"):
                ax.plot(xs, [getattr(r.figures, name) for r in cells], marker="o", label=name[:3])
            ax.set(xscale="log", xlabel="connections", ylabel="ms", title=LOADS[load])
            ax.set_xticks(xs, [str(x) for x in xs])
            ax.legend()
        fig.suptitle(f"Latency percentiles vs concurrency ({base.label})")
        written.append(_save(fig, out / "latency_vs_connections.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
