"""Micro-batching with a real fitted pipeline: fewer calls, each request its own rows, no delay alone."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from mlstack.serving.batching import Batcher
from mlstack.serving.runtime import Prediction, SklearnRuntime
from mlstack.serving.validation import Rows, Validator
from mlstack.store.model_store import ModelStore

from .test_api_v1 import varied_rows


@pytest.fixture(scope="module")
def runtime_and_rows(trained_store: Path) -> tuple[SklearnRuntime, list[Rows]]:
    manifest, pipeline = ModelStore(trained_store).load("churn", "1")
    validator = Validator(manifest, max_rows=1000, max_string_length=256)
    rows = [validator.rows([row]) for row in varied_rows(manifest.model_dump(), 40)]
    return SklearnRuntime(manifest, pipeline), rows


async def predict_all(batcher: Batcher, runtime: SklearnRuntime, rows: list[Rows]) -> list[Prediction]:
    async def one(r: Rows) -> Prediction:
        with batcher.on_the_way():
            await asyncio.sleep(0)  # like a cache lookup: every request is on its way before any arrives
            return await batcher.predict(runtime, r)

    return await asyncio.gather(*(one(r) for r in rows))


def test_concurrent_requests_share_calls_and_get_their_own_rows(
    runtime_and_rows: tuple[SklearnRuntime, list[Rows]],
) -> None:
    runtime, rows = runtime_and_rows
    calls: list[tuple[int, int]] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(
            executor, max_rows=256, max_wait_s=0.005, on_batch=lambda n, r: calls.append((n, r))
        )
        answers = asyncio.run(predict_all(batcher, runtime, rows))

    alone = [runtime.predict(r) for r in rows]
    assert len(calls) < len(rows) / 4
    assert sum(n for n, _ in calls) == len(rows)
    assert [a.labels for a in answers] == [b.labels for b in alone]
    assert np.allclose(
        [a.probabilities for a in answers], [b.probabilities for b in alone], rtol=0, atol=1e-12
    )


def test_a_lone_request_does_not_wait_for_company(
    runtime_and_rows: tuple[SklearnRuntime, list[Rows]],
) -> None:
    runtime, rows = runtime_and_rows
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(executor, max_rows=256, max_wait_s=1.0)
        started = time.perf_counter()
        asyncio.run(predict_all(batcher, runtime, rows[:1]))

    assert time.perf_counter() - started < 0.5  # far below the 1 s it would wait if it expected company


def test_switched_off_every_request_is_its_own_call(
    runtime_and_rows: tuple[SklearnRuntime, list[Rows]],
) -> None:
    runtime, rows = runtime_and_rows
    calls: list[int] = []
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(executor, 256, 0.005, enabled=False, on_batch=lambda n, r: calls.append(n))
        answers = asyncio.run(predict_all(batcher, runtime, rows[:10]))

    assert calls == []  # the batcher is bypassed
    assert len(answers) == 10
