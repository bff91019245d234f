"""`:explain` answers: the predict answer, and per instance why (a table model's per-feature contributions,
or a recommender's "because you liked" items). Every field is always present; extra fields never are."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from mlstack.api.schemas.v1 import V1PredictRequest, V1PredictResponse, instances

Value = float | str | bool | None


class _Exact(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class V1ExplainRequest(V1PredictRequest):
    """The predict body, with the explanations' own batch limit."""

    instances: list[dict[str, Any]] = instances("explain_max_instances")


class Contribution(_Exact):
    """One original input feature's share of the output (its one-hot columns summed back onto it)."""

    feature: str
    value: Value
    """As validated (numbers as floats); null when it was missing."""
    contribution: float
    imputed: bool
    """The value was missing and the pipeline filled it in: the contribution is that of `imputed_as`."""
    imputed_as: Value


class TabularExplanation(_Exact):
    """base_value + Σ contribution = output, within `tolerance`, in `output_space`."""

    output: float
    """The model's output for the row in `output_space`, from the pipeline named by `adds_up_to`."""
    base_value: float
    """The output for the method's reference (the training data's mean, or the trees' mean output)."""
    output_space: Literal["target", "log_odds", "class_logit"]
    """`target`: a regressor's units; `log_odds` of `explained_class` (two classes, or the sampling
    method); `class_logit`: the explained class's softmax logit (more classes)."""
    probability: float | None
    """A classifier's probability of `explained_class`; null for a regressor."""
    explained_class: str | int | bool | None
    """The positive class (two classes) or the predicted one (more); null for a regressor."""
    contributions: list[Contribution]
    """One per input feature, in the schema's order."""
    method: Literal["linear", "tree_path_dependent", "sampling_permutation"]
    permutations: int | None
    """The sampling method's feature orderings per row; null for the exact methods."""
    tolerance: float
    """Largest |base_value + Σ contribution − output| the method allows; every answer is checked."""
    adds_up_to: Literal["joblib"]
    """The runtime whose output the contributions add up to: the joblib pipeline, in float64."""
    predicted_by: Literal["onnx", "joblib"]
    """The runtime that made the prediction answered beside the explanation."""
    parity_tolerance: float | None
    """When the ONNX export predicted: how far its outputs may be from the joblib pipeline's (the
    version's publish-time parity bound); null when the joblib pipeline predicted."""


class Because(_Exact):
    item: str
    contribution: float
    """Its term in the recommended item's score (the terms add up to the score)."""
    share: float
    """contribution / score."""
    source: Literal["history", "genre"]
    """In the user's history (or the visitor's list), or a popular film of a preferred genre."""


class ExplainedItem(_Exact):
    item: str
    score: float
    because: list[Because]
    """The largest positive contributions, largest first; empty for the popular fallback."""


class RecommendationExplanation(_Exact):
    """The recommended items, best first, each with the items behind its score."""

    method: Literal["recommender_items"]
    items: list[ExplainedItem]


class V1ExplainResponse(V1PredictResponse):
    """The predict answer (`predictions`, `probabilities` for classifiers, `scores` and `sources` for
    recommenders) and `explanations`, all in the order of `instances`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    explanations: list[TabularExplanation | RecommendationExplanation]
