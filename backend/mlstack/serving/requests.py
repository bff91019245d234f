"""The typed seam between the protocol edges (api/) and the core: what an edge asks, what the core answers.

An edge turns bytes into a `PredictRequest` (model, version, the rows as the protocol laid them out) and a
`Result` back into bytes. Nothing here knows HTTP or a protocol's field names; the core never calls an edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Kind = Literal["number", "boolean", "string"]
"""What a column's values claim to be, as its protocol declared it (V2: a tensor's datatype)."""


@dataclass(frozen=True, slots=True)
class Records:
    """One object per row, feature name → value (V1 `instances`), not yet checked."""

    items: Any


@dataclass(frozen=True, slots=True)
class Column:
    values: list[Any]
    kind: Kind
    declared: str
    """The protocol's own name for the kind (e.g. FP32), quoted when it does not fit the feature."""


@dataclass(frozen=True, slots=True)
class Columns:
    """One column per feature name, all of `count` values (V2 tensors), not yet checked."""

    columns: dict[str, Column]
    count: int
    where: str = "inputs"


Inputs = Records | Columns


@dataclass(frozen=True, slots=True)
class PredictRequest:
    model: str
    version: str | None
    """A pinned or already chosen version; None: the current one, or the canary for its share."""
    inputs: Inputs


CacheStatus = Literal["HIT", "MISS", "PARTIAL", "BYPASS"]


class Recount(Protocol):
    """Counts a request's rows once more in the live drift counters: an edge that answers the same body
    again without the core (a remembered answer) still served those rows."""

    def again(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Result:
    """What any protocol needs to answer a prediction, row by row in the order of the request."""

    model: str
    version: str
    labels: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    cache: CacheStatus
    extra: dict[str, list[Any]] | None = None
    """Further per-row outputs of the runtime (a recommender's scores and sources)."""
    degraded: str | None = None
    """Why the answer is not the usual one (a recommender without user data answers from popularity)."""
    artifact_sha256: str = ""
    """The artifact that answered: a version republished under the same number is not the same answer."""
    erasable: bool = False
    """Its rows must be erasable at once (a user's recommendations): no copy may be kept in memory."""
    recount: Recount | None = None
    """What the request added to the live drift counts, to add again when its answer is served again."""
