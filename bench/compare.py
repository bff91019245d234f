"""Two versions of the stack side by side: is a change faster, and what does each process spend on it?

`python -m bench.compare --base REV` starts two native stacks at once: A runs REV's replicas and gateway
templates (from a git worktree), B the working tree's. wrk then takes their cells in turns, the order
reversed every round, so that a shared machine drifting over minutes weighs on both alike. Each cell
reports req/s, p99, the shares of rows that bypassed the cache or were left out of it, Redis SETs per
request, and the CPU time each kind of process spent per request (from /proc, the load generator's
included): the figures behind each "measured side by side" of the README. Without --base both stacks run
the working tree, told apart by --env-a/--env-b (e.g. BACKEND_MICROBATCH_MAX_WAIT_MS=0).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

import redis

from bench import bodies, wrk
from bench.stacks import (
    Config,
    bypassed,
    cache_rows,
    cpu_per_request,
    cpu_reading,
    get_json,
    running,
    unwritten,
)
from stack.native import NativeStack

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Measured:
    rates: list[float] = field(default_factory=list)
    p99s: list[float] = field(default_factory=list)
    bypassed: list[float] = field(default_factory=list)
    unwritten: list[float] = field(default_factory=list)
    sets: list[float] = field(default_factory=list)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--base", help="git revision for stack A (default: the working tree as well)")
    parser.add_argument("--cells", default="ceiling,miss1,hit1,batch100", help="loads, comma-separated")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per cell and round")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--env-a", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--env-b", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--store-dir", type=Path, default=ROOT / "model_store")
    parser.add_argument("--model", default="churn")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    loads = args.cells.split(",")
    with ExitStack() as stacks:
        code = stacks.enter_context(worktree(args.base)) if args.base else None
        config = Config(args.replicas, batching=True, onnx=True)
        a = stacks.enter_context(running(config, args.store_dir, code, settings(args.env_a)))
        b = stacks.enter_context(running(config, args.store_dir, env=settings(args.env_b)))
        files = bodies.write(Path(stacks.enter_context(tempfile.TemporaryDirectory())), inputs(b, args.model))
        for stack in (a, b):  # warm: first connections, first calls of each code path
            url = f"{stack.gateway_url}/v1/models/{args.model}:predict"
            wrk.run(url, stack.key("predict"), args.connections, 1.0, files["miss1"], base=900_000_000)
        measured: dict[tuple[str, str], Measured] = {}
        offset = 0
        for round_ in range(args.rounds):
            for name, stack in (("A", a), ("B", b)) if round_ % 2 == 0 else (("B", b), ("A", a)):
                for load in loads:
                    offset += 10_000_000  # misses stay misses
                    cell = measured.setdefault((name, load), Measured())
                    measure(stack, args.model, load, files, args.connections, args.seconds, offset, cell)
        print(report(measured, loads, args))
    return 0


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="mlstack-compare-") as folder:
        path = Path(folder) / "base"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "--detach", "-q", str(path), revision], check=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)


def settings(pairs: list[str]) -> dict[str, str]:
    """NAME=VALUE arguments as the replicas' extra environment."""
    return dict(pair.split("=", 1) for pair in pairs)


def inputs(stack: NativeStack, model: str) -> list[dict[str, object]]:
    return list(get_json(stack, f"/v1/models/{model}")["inputs"])


def measure(
    stack: NativeStack,
    model: str,
    load: str,
    files: dict[str, Path],
    connections: int,
    seconds: float,
    offset: int,
    into: Measured,
) -> None:
    url = f"{stack.gateway_url}/v2" if load == "ceiling" else f"{stack.gateway_url}/v1/models/{model}:predict"
    store = redis.Redis(port=stack.redis_port)
    rows, sets, cpu = cache_rows(stack), set_calls(store), cpu_reading(stack)
    figures = wrk.run(url, stack.key("predict"), connections, seconds, files.get(load), base=offset)
    time.sleep(0.2)  # the last answers' cache writes land
    after_rows, after_sets, after_cpu = cache_rows(stack), set_calls(store), cpu_reading(stack)
    requests = max(figures.requests, 1)
    into.rates.append(figures.rate)
    into.p99s.append(figures.p99_ms)
    into.bypassed.append(bypassed(rows, after_rows) or 0.0)
    into.unwritten.append(unwritten(rows, after_rows) or 0.0)
    into.sets.append((after_sets - sets) / requests)
    for role, us in cpu_per_request(cpu, after_cpu, requests).items():
        into.cpu_us.setdefault(role, []).append(us)


def set_calls(store: redis.Redis) -> int:
    return int(store.info("commandstats").get("cmdstat_set", {}).get("calls", 0))


def report(measured: dict[tuple[str, str], Measured], loads: list[str], args: argparse.Namespace) -> str:
    a_is = f"`{args.base}`" if args.base else "the working tree"
    lines = [
        f"A: {a_is} {' '.join(args.env_a)}; B: the working tree {' '.join(args.env_b)}; {args.replicas} "
        f"replicas, {args.connections} connections, {args.rounds} rounds of {args.seconds:g} s per cell",
        "",
        "| load | stack | req/s (each round) | p99 ms | bypassed | not cached | SET/req | CPU µs per req |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for load in loads:
        for name in ("A", "B"):
            m = measured[(name, load)]
            rounds = ", ".join(f"{rate:,.0f}" for rate in m.rates)
            cpu = ", ".join(
                f"{role} {mean(us):.0f}" for role, us in sorted(m.cpu_us.items()) if mean(us) >= 0.5
            )
            lines.append(
                f"| {load} | {name} | {mean(m.rates):,.0f} ({rounds}) | {mean(m.p99s):.1f} | "
                f"{mean(m.bypassed):.0%} | {mean(m.unwritten):.0%} | {mean(m.sets):.1f} | {cpu} |"
            )
        ratio = mean(measured[("B", load)].rates) / mean(measured[("A", load)].rates)
        lines.append(f"| {load} | B ÷ A | {ratio:.3f} | | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
