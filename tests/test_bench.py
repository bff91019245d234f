"""The benchmark command end to end, kept tiny: one 1-replica stack, two 1 s wrk cells, the report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.stack
def test_a_smoke_run_prints_a_table_with_figures_and_writes_plots(store_dir: Path, tmp_path: Path) -> None:
    run = bench("--smoke", "--store-dir", str(store_dir), "--out", str(tmp_path))

    assert run.returncode == 0, run.stderr[-3000:]
    for load in ("GET /v2 \\(no model work\\)", "1 row, cache miss"):
        line = (
            rf"\| {load} \| 16 \| [0-9][0-9,]* \|[^\n]*\| 0 \| (0%)? \| (0%)? \|\n"  # no errors, all cached
        )
        assert re.search(line, run.stdout), run.stdout
    assert re.search(r"\| cache misses, 1 row: req/s ÷ ceiling route's \| [0-9]+\.[0-9]{2} \|", run.stdout)
    cells = json.loads((tmp_path / "results.json").read_text())["cells"]
    assert [(c["section"], c["load"]) for c in cells] == [
        ("load", "ceiling"),
        ("load", "miss1"),
        ("replicas", "miss1"),
        ("replicas", "miss1"),
    ]
    assert all(c["requests"] > 0 and c["errors"] == 0 for c in cells)
    assert [c["cache_bypassed"] for c in cells] == [None, 0.0, 0.0, 0.0]  # misses looked up
    assert [c["cache_unwritten"] for c in cells] == [None, 0.0, 0.0, 0.0]  # and written
    assert re.search(r"\| 2 replicas ÷ 1: req/s \(misses\) \| [0-9]+\.[0-9]{2} \|", run.stdout)
    cores = os.cpu_count() or 1
    for c in cells:  # where the cores went, by kind of process, within what the machine has
        cpu = c["cpu_us_per_request"]
        assert min(cpu["gateway"], cpu["replica"], cpu["wrk"]) > 0, c
        assert sum(cpu.values()) * c["rate"] / 1e6 <= cores * 1.1, c
    ceiling, miss = cells[0]["cpu_us_per_request"], cells[1]["cpu_us_per_request"]
    assert miss["redis"] > ceiling["redis"]  # a miss is looked up and written; the ceiling is neither
    assert re.search(r"\| load \| 1 replica, batching on \| 1 row, cache miss \| [0-9,]+ \|", run.stdout)
    assert re.search(r"At the ceiling route the processes keep [0-9.]+ of [0-9]+ cores busy", run.stdout)
    order = re.findall(r"bench: (\d) replicas?, batching on, miss1 at 16", run.stderr)
    assert order[-4:] == ["1", "2", "2", "1"]  # in turns, the second round in reverse
    loads = re.findall(r"bench: 1 replica, batching on, (\w+) at 16", run.stderr)
    assert loads[:4] == ["ceiling", "miss1", "miss1", "ceiling"]  # the ratios' cells in turns as well
    assert (tmp_path / "latency_vs_connections.png").stat().st_size > 0
    assert (tmp_path / "report.md").read_text().strip() in run.stdout
    overload = json.loads((tmp_path / "results.json").read_text())["overload"]
    assert [(c["connections"], c["idle"]) for c in overload] == [(16, 0), (256, 0), (16, 100)]
    assert all(c["statuses"]["200"] > 0 and c["connection_errors"] == 0 for c in overload), overload
    assert (overload[2]["idle_held"], overload[2]["idle_alive"]) == (100, 100)  # held open beside the load
    assert re.search(r"\| 256 connections \|  \| [0-9,]+ \| [0-9.,]+ \| [0-9.,]+ \| [0-9.]+% \|", run.stdout)
    assert re.search(r"At 256 connections the answered requests' p99 is [0-9.]+× the one at 16", run.stdout)


def test_peers_get_the_same_rows_in_their_own_protocol() -> None:
    from bench import peerbench

    inputs = [
        {"name": "x", "type": "number", "typical": 1.5},
        {"name": "plan", "type": "string", "typical": "basic"},
    ]
    litserve, mlserver = (next(p for p in peerbench.PEERS if p.name == n) for n in ("LitServe", "MLServer"))
    v1 = json.loads(peerbench.body(litserve, inputs, 2))
    v2 = json.loads(peerbench.body(mlserver, inputs, 2))

    assert v1 == {"instances": [{"x": "__N__", "plan": "basic"}] * 2}
    assert v2["parameters"] == {"content_type": "pd"}
    assert [(i["name"], i["datatype"], i["shape"], i["data"]) for i in v2["inputs"]] == [
        ("x", "FP64", [2], ["__N__", "__N__"]),
        ("plan", "BYTES", [2], ["basic", "basic"]),
    ]


def test_ratios_compare_our_cells_never_a_peers() -> None:
    from bench import plan, report
    from bench.wrk import Figures

    def result(load: str, rate: float, peer: str = "") -> report.Result:
        figures = Figures(requests=int(rate), seconds=1.0, errors=0, p50_ms=1, p95_ms=2, p99_ms=4)
        return report.Result(plan.Cell("peers" if peer else "load", plan.MAIN, load, 16, peer), figures, "x")

    results = [result("ceiling", 8000), result("miss1", 4000), result("miss1", 400, peer="BentoML")]
    found = {what: value for what, value, _ in report.ratios(results, {}, cores=2)}

    assert found["cache misses, 1 row: req/s ÷ ceiling route's"] == 0.5
    assert found["cache misses, 1 row: req/s ÷ best peer's (BentoML)"] == 10.0


def test_the_scaling_ratio_compares_the_replicas_sections_own_cells() -> None:
    from bench import plan, report
    from bench.stacks import Config
    from bench.wrk import Figures

    def result(section: str, replicas: int, rate: float) -> report.Result:
        figures = Figures(requests=int(rate), seconds=1.0, errors=0, p50_ms=1, p95_ms=2, p99_ms=4)
        return report.Result(plan.Cell(section, Config(replicas=replicas), "miss1", 16), figures, "x")

    results = [result("load", 2, 3000), result("replicas", 1, 3200), result("replicas", 2, 3600)]
    found = {what: value for what, value, _ in report.ratios(results, {}, cores=2)}
    stacks = [(config.replicas, {c.section for c in cells}) for config, cells in plan.by_stack(plan.full())]

    assert found["2 replicas ÷ 1: req/s (misses)"] == 3600 / 3200
    assert found["cache misses, 1 row: req/s ÷ ceiling route's"] is None  # no ceiling cell here
    assert stacks[0] == (2, {"load"})
    assert [n for n, sections in stacks if sections == {"replicas"}] == [1, 2, 4]


def test_rounds_of_one_cell_combine_into_its_overall_rate() -> None:
    from bench import plan, report
    from bench.wrk import Figures

    cell = plan.Cell("replicas", plan.MAIN, "miss1", 16)
    rounds = [
        report.Result(cell, Figures(100, 1.0, 0, 1.0, 2.0, 4.0), "onnx", 0.0, cpu_us={"replica": 100.0}),
        report.Result(cell, Figures(300, 1.0, 2, 3.0, 4.0, 8.0), "onnx", 0.5, cpu_us={"replica": 200.0}),
    ]

    together = report.combined(rounds)

    assert together.figures.rate == 200
    assert (together.figures.errors, together.figures.p99_ms, together.bypassed) == (2, 6.0, 0.25)
    assert together.cpu_us == {"replica": 175.0}  # per request over both rounds, not the rounds' mean


def test_the_report_says_whether_the_ceiling_is_cpu_a_replica_or_waiting() -> None:
    from bench import plan, report
    from bench.stacks import Config
    from bench.wrk import Figures

    def ceiling(rate: float, replicas: int = 2) -> list[report.Result]:
        cell = plan.Cell("load", Config(replicas), "ceiling", plan.REFERENCE_CONNECTIONS)
        cpu_us = {"gateway": 30.0, "replica": 75.0, "wrk": 15.0}
        return [report.Result(cell, Figures(int(rate), 1.0, 0, 1.0, 2.0, 3.0), "onnx", cpu_us=cpu_us)]

    full = report.cpu_table(ceiling(16_000), cores=2)
    one_replica = report.cpu_table(ceiling(13_000, replicas=1), cores=2)
    idle = report.cpu_table(ceiling(4_000), cores=2)

    assert "| 16,000 | 30 | 75 | 0 | 0 | 15 | 120 | 1.92 |" in full
    assert "keep 1.92 of 2 cores busy: the cores are full, so the ceiling is CPU" in full
    assert "62% of it in the replicas" in full
    assert "the one replica process keeps its one core full (0.97)" in one_replica
    assert "1.5 cores stay idle, so the ceiling is waiting" in idle


@pytest.mark.stack
def test_two_versions_side_by_side_report_throughput_cache_and_cpu(store_dir: Path) -> None:
    """A from a git revision (a worktree), B the working tree with its cache off: the table tells them
    apart."""
    run = subprocess.run(
        [sys.executable, "-m", "bench.compare", "--base", "HEAD", "--cells", "ceiling,miss1", "--rounds", "1"]
        + ["--seconds", "1", "--env-b", "BACKEND_CACHE_ENABLED=false", "--store-dir", str(store_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert run.returncode == 0, run.stderr[-3000:]
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line for line in run.stdout.splitlines()}
    miss_a, miss_b = rows[("miss1", "A")].split("|"), rows[("miss1", "B")].split("|")
    assert [miss_a[5].strip(), miss_b[5].strip()] == ["0%", "100%"]  # bypassed: B runs without the cache
    assert [miss_a[7].strip(), miss_b[7].strip()] == ["1.0", "0.0"]  # SET per request
    assert {"gateway", "redis", "replica", "wrk"} <= set(re.findall(r"[a-z]+", miss_a[8]))  # CPU by process
    assert re.search(r"\| ceiling \| B ÷ A \| [0-9]+\.[0-9]{3} \|", run.stdout)
    worktrees = subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True)
    assert "mlstack-compare-" not in worktrees.stdout  # removed afterwards
