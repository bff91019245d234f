"""KServe V1 as a protocol edge: `{"instances": [...]}` in, `{"predictions": [...], ...}` out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from mlstack.api.answer import Answer, headers_of
from mlstack.api.body import parse_object
from mlstack.errors import MalformedRequest
from mlstack.serving.core import Predictor
from mlstack.serving.requests import PredictRequest, Records, Result


def decode(body: bytes) -> Records:
    parsed = parse_object(body)
    if "instances" not in parsed:
        raise MalformedRequest("instances: required")
    extra = sorted(set(parsed) - {"instances"})
    if extra:
        raise MalformedRequest(f"{extra[0][:64]}: unknown top-level field (only 'instances' is allowed)")
    return Records(parsed["instances"])


def payload(result: Result) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "model_name": result.model,
        "model_version": result.version,
        "predictions": result.labels,
    }
    if result.probabilities is not None and result.classes is not None:
        names = [str(c) for c in result.classes]
        answer["probabilities"] = [dict(zip(names, row, strict=True)) for row in result.probabilities]
    answer.update(result.extra or {})
    return answer


Verb = Callable[[Predictor, PredictRequest], Awaitable[Result]]


class V1Edge:
    """`:predict`, or `:explain`: the same body, and the same answer with each row's explanation added."""

    def __init__(self, name: str, verb: Verb) -> None:
        self.name = name
        self._verb = verb

    async def answer(self, predictor: Predictor, model: str, version: str | None, body: bytes) -> Answer:
        result = await self._verb(predictor, PredictRequest(model, version, decode(body)))
        return Answer(orjson.dumps(payload(result)), headers_of(result), result)


V1 = V1Edge("v1", Predictor.predict)
V1_EXPLAIN = V1Edge("v1:explain", Predictor.explain)
