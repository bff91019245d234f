"""In-process predict time, joblib vs ONNX, on one model version: no HTTP, no cache, no batcher.

    .venv/bin/python scripts/bench_inprocess.py             # churn in model_store, trained if absent
    .venv/bin/python scripts/bench_inprocess.py --model fraud --rows 1 100 1000

`measure(store_dir, model, row_counts)` returns the figures for another script (the benchmark) to use.
Native thread pools are pinned to one thread, as in a replica.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from mlstack.cli import main as cli
from mlstack.serving.runtime import OnnxRuntime, Runtime, SklearnRuntime
from mlstack.serving.validation import Rows, Validator
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import ModelStore


def sample_rows(manifest: Manifest, count: int, seed: int = 0) -> Rows:
    """Valid rows spread over each feature's training range and categories (about 5% nulls)."""
    rng = np.random.default_rng(seed)
    instances = []
    for _ in range(count):
        row: dict[str, Any] = {}
        for f in manifest.inputs:
            if f.nullable and rng.random() < 0.05:
                row[f.name] = None
            elif f.type == "string":
                row[f.name] = str(rng.choice(f.categories or [f.typical]))
            elif f.type == "boolean":
                row[f.name] = bool(rng.integers(0, 2))
            elif f.type == "integer":
                row[f.name] = int(rng.integers(int(f.minimum or 0), int(f.maximum or 1) + 1))
            else:
                row[f.name] = float(rng.uniform(f.minimum or 0.0, f.maximum or 1.0))
        instances.append(row)
    return Validator(manifest, max_rows=max(count, 1), max_string_length=1 << 16).rows(instances)


def runtimes(store: ModelStore, model: str) -> dict[str, Runtime]:
    version = store.current(model) or store.versions(model)[-1]
    manifest, pipeline = store.load(model, version)
    found: dict[str, Runtime] = {"joblib": SklearnRuntime(manifest, pipeline)}
    if manifest.onnx_artifact is not None:
        found["onnx"] = OnnxRuntime(manifest, store.read_artifact(model, version, manifest.onnx_artifact))
    return found


def time_call(runtime: Runtime, rows: Rows, budget_s: float = 1.0) -> float:
    """Median milliseconds of one predict call, over as many calls as fit in the budget (at least 20)."""
    runtime.predict(rows)  # warm up
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 20 or time.perf_counter() < deadline:
        start = time.perf_counter()
        runtime.predict(rows)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(store_dir: Path, model: str, row_counts: list[int]) -> dict[str, dict[int, float]]:
    """{engine: {rows: median ms per call}} for each runtime the version has."""
    store = ModelStore(store_dir)
    found = runtimes(store, model)
    batches = {n: sample_rows(found["joblib"].manifest, n) for n in row_counts}
    with threadpool_limits(limits=1):
        return {engine: {n: time_call(rt, batches[n]) for n in row_counts} for engine, rt in found.items()}


def _store_with(model: str, store_dir: Path | None) -> Path:
    if store_dir is not None and model in ModelStore(store_dir).models():
        return store_dir
    if model not in ("churn", "fraud", "maintenance"):
        raise SystemExit(f"{model} not found in {store_dir}")
    root = Path(tempfile.mkdtemp(prefix="bench-store-"))
    if cli(["train", "--demo", model, "--store-dir", str(root)]) != 0:
        raise SystemExit("training failed")
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-dir", type=Path, default=Path("model_store"))
    parser.add_argument("--model", default="churn")
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    args = parser.parse_args()
    store_dir = _store_with(args.model, args.store_dir)
    figures = measure(store_dir, args.model, args.rows)
    manifest = ModelStore(store_dir).manifest(args.model, ModelStore(store_dir).current(args.model) or "1")
    out = [f"{args.model} version {manifest.version} ({manifest.training.estimator}), median ms per call\n"]
    out.append("| rows | " + " | ".join(figures) + (" | joblib / onnx |\n" if "onnx" in figures else " |\n"))
    for n in args.rows:
        cells = [f"{figures[engine][n]:.3f}" for engine in figures]
        ratio = f" | {figures['joblib'][n] / figures['onnx'][n]:.1f}×" if "onnx" in figures else ""
        out.append(f"| {n} | " + " | ".join(cells) + ratio + " |\n")
    sys.stdout.write("".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
