"""`make bench`: the benchmark and scaling report in one run, on native stacks it starts on free ports.

Each stack configuration (replicas, micro-batching, runtime) starts once, beside the others of its section;
wrk then loads their cells (request shape × connections) through the gateway, in two rounds, the second in
reverse order. Prints one Markdown report and writes it, the raw figures and two plots to --out. Figures
from a shared machine are indicative; ratios come from one run. With --peers (make bench PEERS=1),
BentoML, MLServer and LitServe get the same load (bench/peerbench.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import bodies, overload, plan, report, wrk
from bench.stacks import (
    Config,
    bypassed,
    cache_rows,
    cpu_per_request,
    cpu_reading,
    engine,
    get_json,
    running,
    unwritten,
)
from stack.native import NativeStack
from stack.procs import PINNED_THREADS

ROOT = Path(__file__).resolve().parents[1]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1 s per cell, 16 connections only")
    parser.add_argument("--smoke", action="store_true", help="one 1-replica stack, two 1 s cells (tests)")
    parser.add_argument("--peers", action="store_true", help="also measure BentoML, MLServer and LitServe")
    parser.add_argument("--overload-only", action="store_true", help="only the overload section")
    parser.add_argument("--duration-s", type=float, help="seconds per cell (default 5; quick and smoke 1)")
    parser.add_argument("--store-dir", type=Path, help="model store (default BACKEND_STORE_DIR, model_store)")
    parser.add_argument("--model", default="churn")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wrk.binary()
    store_dir = (args.store_dir or default_store()).resolve()
    cells = plan.smoke() if args.smoke else plan.full((16,)) if args.quick else plan.full()
    cells = [] if args.overload_only else cells
    ensure_model(store_dir, args.model, recommender=any(cell.load == "rec" for cell in cells))
    duration = args.duration_s or (1.0 if args.quick or args.smoke else 5.0)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    machine = describe_machine()
    limits = (
        {}
        if args.overload_only
        else inprocess(store_dir, args.model, 0.5 if args.smoke else min(duration, 3.0))
    )
    warmup_s = 0.0 if args.smoke else 1.0
    results = measure(cells, store_dir, args.model, duration, args.out, warmup_s)
    overloaded = overloaded_stack(args, store_dir, warmup_s)
    if args.peers:
        results += peers(store_dir, args.model, duration, args.out)
    text = render(results, limits, machine, duration, time.time() - started, overloaded)
    print(text)
    (args.out / "report.md").write_text(text + "\n")
    figures = {**raw(results, limits, machine), "overload": overload.raw(overloaded)}
    (args.out / "results.json").write_text(json.dumps(figures, indent=2) + "\n")
    for path in report.plots(results, args.out) if results else []:
        print(f"plot: {path}")
    return 0


def default_store() -> Path:
    from mlstack.settings import Settings

    return Settings().store_dir


def ensure_model(store_dir: Path, model: str, recommender: bool) -> None:
    """The demo models `make start` trains, when the store has none."""
    demos = (["churn"] if model == "churn" else []) + (["recommend"] if recommender else [])
    for demo in demos:
        command = [sys.executable, "-m", "mlstack.cli", "train", "--demo", demo, "--if-empty"]
        subprocess.run([*command, "--store-dir", str(store_dir)], check=True)


def inprocess(store_dir: Path, model: str, seconds: float) -> dict[str, dict[str, Any]]:
    limits = {}
    for asked, onnx in (("ONNX allowed", "true"), ("joblib forced", "false")):
        command = [sys.executable, "-m", "bench.inprocess", str(store_dir), model, onnx, str(seconds)]
        env = {**os.environ, **PINNED_THREADS}
        out = subprocess.run(command, capture_output=True, text=True, check=True, env=env, cwd=ROOT)
        limits[asked] = json.loads(out.stdout.splitlines()[-1])
    return limits


def measure(
    cells: list[plan.Cell], store_dir: Path, model: str, duration: float, out: Path, warmup_s: float
) -> list[report.Result]:
    """Section by section: the section's stacks side by side, their cells in rounds (Loader.interleaved)."""
    load = Loader(store_dir, model, duration, out, warmup_s)
    results: list[report.Result] = []
    for _, groups in itertools.groupby(plan.by_stack(cells), key=lambda group: group[1][0].section):
        results += load.interleaved(list(groups), plan.ROUNDS)
    return results


@dataclass
class Target:
    """A running stack, ready for load: its bodies, its key and the runtime that serves."""

    stack: NativeStack
    config: Config
    files: dict[str, Path]
    key: str
    served: str


class Loader:
    """Runs cells against stacks it starts; every cell varies its rows in a range of its own."""

    def __init__(self, store_dir: Path, model: str, duration: float, out: Path, warmup_s: float) -> None:
        self.store_dir, self.model, self.duration = store_dir, model, duration
        self.out, self.warmup_s = out, warmup_s
        self._offset = 0

    @contextmanager
    def started(self, config: Config) -> Iterator[Target]:
        onnx = "allowed" if config.onnx else "off"
        print(f"bench: starting a stack with {config.label}, ONNX {onnx}", file=sys.stderr)
        with running(config, self.store_dir) as stack:
            manifest = get_json(stack, f"/v1/models/{self.model}")
            files = bodies.write(self.out / "bodies", manifest["inputs"])
            target = Target(stack, config, files, stack.key("predict"), engine(manifest))
            if self.warmup_s:
                url = self._predict_url(target)
                wrk.run(url, target.key, 16, self.warmup_s, files["miss1"], base=900_000_000)
            yield target

    def _predict_url(self, target: Target) -> str:
        return f"{target.stack.gateway_url}/v1/models/{self.model}:predict"

    def cell(self, target: Target, cell: plan.Cell) -> report.Result:
        self._offset += 10_000_000  # misses stay misses
        stack = target.stack
        url = f"{stack.gateway_url}/v2" if cell.load == "ceiling" else self._predict_url(target)
        body = None if cell.load == "ceiling" else target.files.get(cell.load)
        items = None
        if cell.load == "rec":
            url = f"{stack.gateway_url}/v1/models/recommend:predict"
            catalogue = get_json(stack, "/v1/models/recommend")["recommender"]["items"]
            body, items = bodies.write_recommendation(self.out / "bodies", [i["item_id"] for i in catalogue])
        before, cpu = cache_rows(stack), cpu_reading(stack)
        connections, seconds = cell.connections, self.duration
        figures = wrk.run(url, target.key, connections, seconds, body, base=self._offset, items=items)
        spent = cpu_per_request(cpu, cpu_reading(stack), figures.requests)
        print(
            f"bench: {target.config.label}, {cell.load} at {cell.connections}: {figures.rate:,.0f} req/s",
            file=sys.stderr,
        )
        after = cache_rows(stack)
        found = bypassed(before, after), unwritten(before, after)
        return report.Result(cell, figures, target.served, *found, cpu_us=spent)

    def interleaved(self, stacks: list[tuple[Config, list[plan.Cell]]], rounds: int) -> list[report.Result]:
        """All the stacks at once, their cells in rounds, in order then in reverse (1 2 4 4 2 1 ..., and
        each stack's cells likewise): a machine that drifts over minutes weighs on every cell alike. Each
        cell's figures are the rounds' together (requests over seconds; percentiles their mean)."""
        with ExitStack() as running_stacks:
            targets = [(running_stacks.enter_context(self.started(c)), group) for c, group in stacks]
            measured: dict[plan.Cell, list[report.Result]] = {}
            for round_ in range(rounds):
                forward = round_ % 2 == 0
                for target, group in targets if forward else targets[::-1]:
                    for cell in group if forward else group[::-1]:
                        measured.setdefault(cell, []).append(self.cell(target, cell))
        return [report.combined(found) for found in measured.values()]


def overloaded_stack(args: argparse.Namespace, store_dir: Path, warmup_s: float) -> list[overload.Result]:
    """The overload section, on a stack of its own (the smoke run's one replica, else the main one)."""
    config = Config(replicas=1) if args.smoke else plan.MAIN
    chosen = overload.SMOKE if args.smoke else overload.QUICK if args.quick else overload.Plan()
    if args.duration_s:
        chosen = dataclasses.replace(chosen, seconds=args.duration_s)
    loader = Loader(store_dir, args.model, chosen.seconds, args.out, warmup_s)
    with loader.started(config) as target:
        url = f"{target.stack.gateway_url}/v1/models/{args.model}:predict"
        return overload.measure(target.stack, url, target.files["miss1"], chosen)


def peers(store_dir: Path, model: str, duration: float, out: Path) -> list[report.Result]:
    from bench import peerbench
    from mlstack.store.model_store import ModelStore

    store = ModelStore(store_dir)
    version = store.current(model)
    manifest = store.manifest(model, version)
    inputs = [f.model_dump() for f in manifest.inputs]
    artifact = store_dir / model / version / manifest.artifact.file
    found = peerbench.measure(artifact, inputs, plan.PEER_CELLS, duration, out, dict(PINNED_THREADS))
    return [
        report.Result(plan.Cell("peers", plan.MAIN, load, c, peer=name), figures, "joblib")
        for name, load, c, figures in found
    ]


def describe_machine() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as fh:
        cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    version = subprocess.run([wrk.binary(), "-v"], capture_output=True, text=True).stdout.split()[:2]
    load = os.getloadavg()[0]
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return (
        f"{os.cpu_count()} × {cpu}, {system}, {' '.join(version)}; "
        f"load average {load:.1f} at the start (the machine may be shared)"
    )


def render(
    results: list[report.Result],
    limits: dict[str, dict[str, Any]],
    machine: str,
    duration: float,
    took: float,
    overloaded: list[overload.Result] | None = None,
) -> str:
    cores = os.cpu_count() or 1
    parts = [
        "## Benchmark",
        f"Machine: {machine}. wrk, one thread, {duration:g} s per cell, through the gateway; "
        f"took {took:.0f} s.",
    ]
    if results:
        parts += [
            report.table(results),
            report.cpu_table(results, cores),
            report.inprocess_table(limits),
            report.ratio_table(report.ratios(results, limits, cores)),
        ]
    parts += [overload.table(overloaded or [])]
    return "\n\n".join(part for part in parts if part)


def raw(results: list[report.Result], limits: dict[str, dict[str, Any]], machine: str) -> dict[str, Any]:
    return {
        "machine": machine,
        "inprocess": limits,
        "cells": [
            {
                **asdict(r.cell),
                "engine": r.engine,
                **asdict(r.figures),
                "rate": r.figures.rate,
                "rows_per_s": r.rows_per_s,
                "cache_bypassed": r.bypassed,
                "cache_unwritten": r.unwritten,
                "cpu_us_per_request": r.cpu_us,
            }
            for r in results
        ],
    }


if __name__ == "__main__":
    raise SystemExit(main())
