"""What an explanation answers, per row and per call: protocol-free, the API edges shape it for clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlstack.explain.outputs import OutputSpace


@dataclass(frozen=True, slots=True)
class FeatureContribution:
    """One original input feature's share of the output (one-hot columns already summed back)."""

    feature: str
    value: Any
    """As the client sent it; None when missing."""
    contribution: float
    imputed: bool = False
    """The value was missing and the pipeline filled it in with `imputed_as`."""
    imputed_as: Any = None


@dataclass(frozen=True, slots=True)
class RowExplanation:
    """base_value + Σ contributions = output (within the method's tolerance)."""

    output: float
    base_value: float
    contributions: list[FeatureContribution]
    """In the schema's feature order."""
    probability: float | None = None
    """For a classifier: the explained class's probability."""
    explained_class: Any = None
    """For a classifier: the positive class (two classes) or the predicted class (more)."""


@dataclass(frozen=True, slots=True)
class Explained:
    """The explanations of a batch of rows, and the facts that hold for all of them."""

    method: str
    output_space: OutputSpace
    adds_up_to: str
    """The runtime whose output the contributions add up to: "joblib" (the pipeline in float64). An ONNX-
    served prediction may differ from it within the version's publish-time parity tolerance."""
    rows: list[RowExplanation]
    tolerance: float
    """Largest |base + Σ contributions − output| the method guarantees (every answer is checked)."""
    permutations: int | None = None
    """The sampling method's orderings per row; None for the exact methods."""
