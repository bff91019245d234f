"""The in-process cost of an explanation, per model: the loaded version's explainer on one thread, no HTTP.

Run as `OMP_NUM_THREADS=1 python -m bench.explain_cost STORE_DIR [MODEL ...]` (the replicas' pinned thread
pools). For each model it prints the method, the first call (the tree method imports shap then), and the
median wall and CPU milliseconds of 1-row and 100-row explanations beside a 1-row joblib prediction.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlstack.explain.loading import explainer_for
from mlstack.explain.preparation import rows_of
from mlstack.frames import prepare_frame
from mlstack.serving.runtime import SklearnRuntime
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore
from mlstack.training.datasets import demo_dataset

DEMO_OF = {"rul": "maintenance"}
REPEATS = 41


def timed(call: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, float]:
    """Median wall and CPU milliseconds of `call`."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return 1000 * statistics.median(walls), 1000 * statistics.median(cpus)


def measure(store: ModelStore, model: str) -> str:
    version = store.current(model) or "1"
    manifest, pipeline = store.load(model, version)
    permutations = Settings().explain_permutations
    explainer = explainer_for(
        manifest, pipeline, lambda a: store.read_artifact(model, version, a), permutations
    )
    features = list(manifest.inputs)
    frame = prepare_frame(demo_dataset(DEMO_OF.get(model, model), rows=200, seed=99).frame, features)
    rows = rows_of(frame, features)
    one, hundred = rows.subset([0]), rows.subset(list(range(100)))
    start = time.perf_counter()
    explainer.explain(one)
    first = 1000 * (time.perf_counter() - start)
    singles = iter(range(10**6))
    one_wall, one_cpu = timed(lambda: explainer.explain(rows.subset([next(singles) % 200])))
    batch_wall, batch_cpu = timed(lambda: explainer.explain(hundred), repeats=9)
    predict_wall, _ = timed(lambda: SklearnRuntime(manifest, pipeline).predict(one))
    return (
        f"{model:<12} {explainer.method_name or '-':<22} first {first:7.1f} ms | 1 row {one_wall:6.2f} ms "
        f"(cpu {one_cpu:6.2f}) | 100 rows {batch_wall:7.1f} ms (cpu {batch_cpu:7.1f}) | joblib predict "
        f"1 row {predict_wall:5.2f} ms"
    )


def main(argv: list[str]) -> int:
    store = ModelStore(Path(argv[0]))
    for model in argv[1:] or store.models():
        print(measure(store, model))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
