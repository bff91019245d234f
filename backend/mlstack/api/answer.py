"""What a protocol edge gives back for a prediction: the payload, its headers, and the core's result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from mlstack.serving.core import Predictor
from mlstack.serving.requests import Result


@dataclass(frozen=True, slots=True)
class Answer:
    payload: bytes
    headers: dict[str, str]
    result: Result


class Edge(Protocol):
    """One protocol's prediction: its bytes in, the core's result out as its bytes."""

    name: str

    async def answer(self, predictor: Predictor, model: str, version: str | None, body: bytes) -> Answer:
        """Decode (a 4xx before the model is looked up when the body is bad), predict, encode."""


def headers_of(result: Result) -> dict[str, str]:
    """The contract's headers of a prediction: which version answered and what the cache did."""
    headers = {"X-Model-Version": result.version, "X-Cache": result.cache}
    if result.degraded is not None:
        headers["X-Degraded"] = result.degraded
    return headers
