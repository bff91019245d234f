"""The in-process limit: the served runtime's predict on one thread, no HTTP, no cache, no validation.

Run as `python -m bench.inprocess STORE_DIR MODEL ONNX SECONDS` in a child with the replicas' pinned
thread pools; it prints one JSON object: calls/s and rows/s for 1 and 100 rows, and the engine.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from mlstack.serving.registry import Registry
from mlstack.serving.requests import Records
from mlstack.serving.runtimes import RuntimeFactory
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore
from mlstack.telemetry.metrics import Metrics


def rate(call: Any, seconds: float) -> float:
    call()  # first call outside the clock (lazy initialisation)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        call()
        count += 1
    return count / elapsed


async def measure(store_dir: Path, model: str, onnx: bool, seconds: float) -> dict[str, Any]:
    flags = {"onnx_enabled": onnx} if "onnx_enabled" in Settings.model_fields else {}
    settings = Settings(store_dir=store_dir, redis_url=None, **flags)
    store = ModelStore(store_dir)
    registry = Registry(store, RuntimeFactory(settings, store), Metrics("bench"))
    loaded = await registry.get(model)
    typical = {f.name: f.typical for f in loaded.manifest.inputs}
    one, hundred = (loaded.validator.validate(Records([typical] * n)) for n in (1, 100))
    runtime = loaded.runtime
    calls_1 = rate(lambda: runtime.predict(one), seconds)
    calls_100 = rate(lambda: runtime.predict(hundred), seconds)
    return {
        "engine": getattr(runtime, "engine", "joblib"),
        "calls_per_s_1": calls_1,
        "calls_per_s_100": calls_100,
        "rows_per_s_100": calls_100 * 100,
    }


def main() -> None:
    store_dir, model, onnx, seconds = sys.argv[1:5]
    result = asyncio.run(measure(Path(store_dir), model, onnx == "true", float(seconds)))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
