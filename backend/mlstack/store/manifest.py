"""The manifest of one model version: what it expects, what it answers, how it was made, its checksum."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
VERSION_NAME = re.compile(r"^[1-9][0-9]{0,8}$")
FORMAT_VERSION = 1

FeatureType = Literal["number", "integer", "boolean", "string"]
Task = Literal["classification", "regression", "recommendation"]
ArtifactFormat = Literal["joblib", "onnx", "profile", "explain"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Feature(_Strict):
    """One input column of the pipeline, as a client sends it."""

    name: str
    type: FeatureType
    nullable: bool = False
    """A null (JSON null, V2 missing value) is allowed; the pipeline imputes it."""
    categories: list[str] | None = None
    """The values seen in training, for string features."""
    reject_unknown: bool = True
    """An unseen category is a 422 (True) or passes to the encoder, which ignores it (False)."""
    minimum: float | None = None
    """Smallest value seen in training: a hint for forms, not a limit."""
    maximum: float | None = None
    """Largest value seen in training: a hint for forms, not a limit."""
    typical: Any = None
    """A typical value (median or most frequent), used for example rows and form defaults."""


class Artifact(_Strict):
    """A file of the version directory and the facts checked before it is opened."""

    file: str
    format: ArtifactFormat = "joblib"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=1)


class RuntimeVersions(_Strict):
    """Library versions the artifact was written with; loading checks them."""

    python: str
    sklearn: str
    numpy: str
    joblib: str
    pandas: str | None = None


class OnnxExport(_Strict):
    """Whether the version has an ONNX export replicas may serve, and why not when it has none."""

    published: bool
    reason: str | None = None
    """Why no ONNX file was published: not asked for, conversion failed, or the parity check failed."""
    max_abs_diff: float | None = None
    """Largest difference from the joblib pipeline on the checked rows (probabilities or predictions)."""
    tolerance: float | None = None
    """The parity bound: absolute for probabilities, relative to max(1, |y|) for regression predictions."""
    checked_rows: int = 0
    """Held-out rows the parity check ran on (each once as is and once with its nullable features null)."""
    skl2onnx: str | None = None
    onnxruntime: str | None = None


ExplanationMethod = Literal["linear", "tree_path_dependent", "sampling_permutation", "recommender_items"]


class ExplanationFacts(_Strict):
    """How the version's predictions are explained (`:explain`), or why they cannot be."""

    method: ExplanationMethod | None
    """None: the version cannot be explained, and `reason` says why."""
    reason: str | None = None
    background_rows: int = 0
    """Training rows stored in the explanation artifact as the sampling method's reference."""


class Training(_Strict):
    """How the version was made."""

    source: str
    """The demo set's name or the CSV file's name (never an absolute path)."""
    target: str
    rows: int
    data_sha256: str
    train_rows: int
    test_rows: int
    estimator: str
    params: dict[str, Any] = {}
    search: list[dict[str, Any]] = []
    """Each candidate family's best cross-validated score."""
    seconds: float = 0.0


class CatalogueItem(_Strict):
    """One item a recommender can recommend, as clients show it."""

    item_id: str
    title: str
    genre: str
    year: int


class RecommenderFacts(_Strict):
    """What a recommendation model knows about: its kind, the shape of its factors, its catalogue."""

    kind: str
    """popularity, itemknn (item-item neighbours) or svd (matrix factorisation)."""
    factor_shape: list[int]
    """items × factors for svd, items × items for itemknn."""
    genres: list[str]
    items: list[CatalogueItem]


class Manifest(_Strict):
    """Everything about one model version except its weights. Written once, never changed."""

    format_version: int = FORMAT_VERSION
    model: str = Field(pattern=MODEL_NAME.pattern)
    version: str = Field(pattern=VERSION_NAME.pattern)
    task: Task
    description: str = ""
    created_at: datetime
    inputs: list[Feature]
    classes: list[Any] | None = None
    """Class labels in predict_proba's column order; None for regressors."""
    metrics: dict[str, Any] = {}
    training: Training
    runtime: RuntimeVersions
    artifact: Artifact
    extra_artifacts: list[Artifact] = []
    """Further files of the version (an ONNX export, the training data's profile), each verified like the
    main one."""
    recommender: RecommenderFacts | None = None
    """For task recommendation: the catalogue and the model's shape."""
    onnx: OnnxExport | None = None
    """The ONNX export's parity facts; None in manifests written before the export existed."""
    explanation: ExplanationFacts | None = None
    """How predictions are explained; None in manifests written before explanations existed."""

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def onnx_artifact(self) -> Artifact | None:
        return next((a for a in self.extra_artifacts if a.format == "onnx"), None)

    @property
    def profile_artifact(self) -> Artifact | None:
        """The training data's profile; None for versions published before profiles, and recommenders."""
        return next((a for a in self.extra_artifacts if a.format == "profile"), None)

    @property
    def explain_artifact(self) -> Artifact | None:
        """What explaining needs (a reference and background rows); None for versions without it."""
        return next((a for a in self.extra_artifacts if a.format == "explain"), None)

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.inputs if f.name == name), None)

    def public(self) -> dict[str, Any]:
        """The manifest as clients see it (GET /v1/models/{m})."""
        return self.model_dump(mode="json")
