"""`python -m bench.explain_load`: 1-row `:explain` through the gateway for each demo model, at 1 and 16
connections, beside a 1-row `:predict` of the same model at 16 for scale.

One native stack in the benchmark's main configuration (2 replicas, micro-batching on, ONNX allowed) over a
store holding the demo models, trained first where missing: churn, fraud, maintenance and recommend as
`make start` trains them, and rul (maintenance's regression target, the one gradient-boosted model, so
the tree method is measured too). Every request's row differs (its number feature counts up; a visitor's
three liked items are drawn at random), so every explanation is computed, not read from the cache. Cells
run in two rounds, the second in reverse order, after a warm-up of each model (the tree method imports
shap at its first explanation). Prints a Markdown table and writes it and the raw figures to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import bodies, plan, wrk
from bench.stacks import cpu_per_request, cpu_reading, engine, get_json, running
from stack.native import NativeStack

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "churn": ["--demo", "churn"],
    "fraud": ["--demo", "fraud", "--search", "fast"],
    "maintenance": ["--demo", "maintenance", "--search", "fast"],
    "rul": ["--demo", "maintenance", "--target", "remaining_useful_life_days", "--model", "rul"],
    "recommend": ["--demo", "recommend"],
}
CONNECTIONS = (1, 16)
ROUNDS = 2


@dataclass(frozen=True)
class Cell:
    model: str
    verb: str
    connections: int


@dataclass(frozen=True)
class Target:
    """A model as the stack serves it: its method, its runtime, and one-row request bodies."""

    model: str
    method: str
    served: str
    body: Path
    items: Path | None = None
    """For a recommender: the catalogue the visitor's liked items are drawn from."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_load", description=__doc__)
    parser.add_argument(
        "--duration-s", type=int, default=5, help="whole seconds per cell and round (wrk takes no fractions)"
    )
    parser.add_argument("--store-dir", type=Path, help="model store (default BACKEND_STORE_DIR, model_store)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "bench-explain")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    wrk.binary()
    store_dir = (args.store_dir or default_store()).resolve()
    for model in args.models:
        train_if_missing(store_dir, model)
    args.out.mkdir(parents=True, exist_ok=True)
    with running(plan.MAIN, store_dir) as stack:
        targets = {model: target(stack, model, args.out) for model in args.models}
        for t in targets.values():  # the first explanation of each replica builds its explainer
            wrk.run(
                url(stack, t.model, "explain"), stack.key("predict"), 4, 1.0, t.body, 800_000_000, t.items
            )
        figures = measure(stack, targets, args.duration_s)
    text = table(targets, figures, args.duration_s)
    print(text)
    (args.out / "report.md").write_text(text + "\n")
    raw = [
        {**asdict(cell), **asdict(m.figures), "rate": m.figures.rate, "replica_cpu_us": m.replica_cpu_us}
        for cell, m in figures.items()
    ]
    (args.out / "results.json").write_text(json.dumps(raw, indent=2) + "\n")
    return 0


def default_store() -> Path:
    from mlstack.settings import Settings

    return Settings().store_dir


def train_if_missing(store_dir: Path, model: str) -> None:
    command = [sys.executable, "-m", "mlstack.cli", "train", *MODELS[model], "--if-empty"]
    subprocess.run([*command, "--store-dir", str(store_dir)], check=True, cwd=ROOT)


def target(stack: NativeStack, model: str, out: Path) -> Target:
    manifest = get_json(stack, f"/v1/models/{model}")
    method = (manifest.get("explanation") or {}).get("method") or "none"
    folder = out / "bodies" / model
    folder.mkdir(parents=True, exist_ok=True)
    if manifest["task"] == "recommendation":
        catalogue = [item["item_id"] for item in manifest["recommender"]["items"]]
        body, items = bodies.write_recommendation(folder, catalogue)
        return Target(model, method, engine(manifest), body, items)
    return Target(model, method, engine(manifest), bodies.write(folder, manifest["inputs"])["miss1"])


def url(stack: NativeStack, model: str, verb: str) -> str:
    return f"{stack.gateway_url}/v1/models/{model}:{verb}"


def measure(stack: NativeStack, targets: dict[str, Target], seconds: float) -> dict[Cell, Measured]:
    cells = [Cell(m, "explain", c) for m in targets for c in CONNECTIONS]
    cells += [Cell(m, "predict", plan.REFERENCE_CONNECTIONS) for m in targets]
    rounds: dict[Cell, list[Measured]] = {}
    base = 0
    for round_ in range(ROUNDS):
        for cell in cells if round_ % 2 == 0 else cells[::-1]:
            base += 10_000_000  # every row a miss, in every round
            t = targets[cell.model]
            before = cpu_reading(stack)
            found = wrk.run(
                url(stack, cell.model, cell.verb),
                stack.key("predict"),
                cell.connections,
                seconds,
                t.body,
                base,
                t.items,
            )
            print(
                f"bench: {cell.model} {cell.verb} at {cell.connections}: {found.rate:,.0f} req/s",
                file=sys.stderr,
            )
            spent = cpu_per_request(before, cpu_reading(stack), found.requests)["replica"]
            rounds.setdefault(cell, []).append(Measured(found, spent))
    return {cell: combined(found) for cell, found in rounds.items()}


@dataclass(frozen=True)
class Measured:
    figures: wrk.Figures
    replica_cpu_us: float
    """The replicas' CPU time per request: on a shared machine, steadier than the wall-clock figures."""


def combined(rounds: list[Measured]) -> Measured:
    """Requests over seconds; errors summed; percentiles the rounds' mean; CPU per request over all."""
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    figures = [r.figures for r in rounds]
    requests = sum(f.requests for f in figures)
    together = wrk.Figures(
        requests=requests,
        seconds=sum(f.seconds for f in figures),
        errors=sum(f.errors for f in figures),
        p50_ms=mean([f.p50_ms for f in figures]),
        p95_ms=mean([f.p95_ms for f in figures]),
        p99_ms=mean([f.p99_ms for f in figures]),
    )
    cpu = sum(r.replica_cpu_us * r.figures.requests for r in rounds) / max(requests, 1)
    return Measured(together, cpu)


def table(targets: dict[str, Target], measured: dict[Cell, Measured], seconds: float) -> str:
    lines = [
        f"1-row requests through the gateway, {plan.MAIN.label}; wrk, one thread, {ROUNDS} rounds of "
        f"{seconds:g} s per cell; every row a cache miss; load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| model | method | predictions by | request | connections | req/s | p50 ms | p99 ms | errors "
        "| replica CPU ms per request |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cell, m in sorted(measured.items(), key=lambda item: _order(item[0], targets)):
        t, f = targets[cell.model], m.figures
        lines.append(
            f"| {cell.model} | {t.method} | {t.served} | {cell.verb} | {cell.connections} | {f.rate:,.0f} | "
            f"{f.p50_ms:.1f} | {f.p99_ms:.1f} | {f.errors} | {m.replica_cpu_us / 1000:.2f} |"
        )
    return "\n".join(lines)


def _order(cell: Cell, targets: dict[str, Target]) -> tuple[Any, ...]:
    return list(targets).index(cell.model), cell.verb != "explain", cell.connections


if __name__ == "__main__":
    raise SystemExit(main())
