"""Whole answers, remembered for a request body sent again byte for byte: no parsing, validation,
hashing or rendering for the commonest repeat of all.

Only answers that came wholly from the cache are kept, among the near cache's rows and under its rules
(a bounded LRU, its TTL, nothing while Redis is unreachable), keyed by protocol, model, the version that
answered and the body; an answer whose rows must be erasable (a user's recommendations) is never kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlstack.api.answer import Edge
from mlstack.cache.predictions import PredictionCache
from mlstack.serving.core import Predictor
from mlstack.serving.requests import Recount
from mlstack.telemetry.metrics import Metrics

MAX_REMEMBERED_BODY = 1024
"""Request bodies up to this size (a row or a few) may have their whole answer remembered."""


@dataclass(frozen=True, slots=True)
class Remembered:
    sha256: str
    """The artifact that answered: a version republished under the same number is not the same answer."""
    payload: bytes
    rows: int
    headers: dict[str, str]
    recount: Recount | None
    """Its rows, counted again for live drift at each recall: they are served again."""


class AnswerMemory:
    def __init__(self, predictor: Predictor, cache: PredictionCache, metrics: Metrics) -> None:
        self._predictor = predictor
        self._cache = cache
        self._metrics = metrics

    async def answer(
        self, edge: Edge, model: str, version: str | None, body: bytes
    ) -> tuple[bytes, dict[str, str]]:
        # The version that answers is chosen here, once per request: a remembered answer and a computed
        # one must be of the same version, or a canary would get its share squared.
        chosen = version or self._predictor.registry.choose(model)
        near = self._cache.near
        if near is None or len(body) > MAX_REMEMBERED_BODY or chosen is None:
            answer = await edge.answer(self._predictor, model, chosen, body)
            return answer.payload, answer.headers
        key = (edge.name, model, chosen, body)
        found = near.get(key) if self._cache.available else None
        if found is not None and await self._still_served(model, chosen, found):
            self._metrics.count_cache(found.rows, 0, 0)
            if found.recount is not None:
                found.recount.again()
            self._metrics.near_cache_rows.inc(found.rows)
            return found.payload, found.headers
        answer = await edge.answer(self._predictor, model, chosen, body)
        result = answer.result
        if result.cache == "HIT" and not result.erasable:
            remembered = Remembered(
                result.artifact_sha256, answer.payload, len(result.labels), answer.headers, result.recount
            )
            near.put(key, remembered)
        return answer.payload, answer.headers

    async def _still_served(self, model: str, version: str, found: Remembered) -> bool:
        loaded = await self._predictor.registry.get(model, version)
        return loaded.manifest.artifact.sha256 == found.sha256
