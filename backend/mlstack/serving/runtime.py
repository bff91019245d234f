"""A loaded model version behind one interface: rows in, labels and class probabilities out.

Two engines: the joblib pipeline (always there) and its ONNX export (when it converted and passed the
parity check at publish time). Both answer labels as `classes[argmax(probabilities)]` over the
manifest's classes, so the two give the same Python values for the same rows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnxruntime as ort
import pandas as pd

from mlstack.frames import prepare_frame
from mlstack.serving.validation import Rows
from mlstack.store.manifest import Manifest


@dataclass(frozen=True, slots=True)
class Prediction:
    """Per-row outputs, in the order of the rows given."""

    labels: list[Any]
    probabilities: list[list[float]] | None = None
    extra: dict[str, list[Any]] | None = None
    """Further per-row outputs, named as the runtime's `outputs` say."""

    def rows(self, start: int, end: int) -> Prediction:
        """The outputs of rows start to end (one request's share of a gathered call)."""
        probabilities = None if self.probabilities is None else self.probabilities[start:end]
        extra = None if self.extra is None else {k: v[start:end] for k, v in self.extra.items()}
        return Prediction(self.labels[start:end], probabilities, extra)


class Runtime(Protocol):
    """A verified, loaded model version. Only the registry builds one; routes never see its artifact."""

    manifest: Manifest
    engine: str
    inline_rows: int
    """Calls of up to this many rows run on the event loop: a thread hop would cost more than they do."""
    cache_space: str
    """The cache's key space for this runtime's answers."""
    erasable: bool
    """Its cached answers must be erasable at once: no copy is kept in a replica's memory."""
    outputs: tuple[str, ...]
    """Per-row outputs beyond labels and probabilities."""

    @property
    def prepare(self) -> Callable[[Rows], Awaitable[Rows]] | None:
        """What must happen to validated rows before they are looked up (a recommender reads user data)."""

    def predict(self, rows: Rows) -> Prediction: ...


class TabularRuntime:
    """What the table runtimes share: answers cached by row, kept near, nothing to prepare."""

    cache_space = "pred"
    erasable = False
    outputs: tuple[str, ...] = ()
    prepare: Callable[[Rows], Awaitable[Rows]] | None = None


class SklearnRuntime(TabularRuntime):
    """A joblib-serialised scikit-learn Pipeline: preprocessing and estimator in one object."""

    engine = "joblib"
    inline_rows = 0  # milliseconds per call: it runs on the batcher's worker thread

    def __init__(self, manifest: Manifest, pipeline: Any) -> None:
        self.manifest = manifest
        self._pipeline = pipeline
        self._classes = np.asarray(pipeline.classes_) if manifest.is_classifier else None

    def frame(self, rows: Rows) -> pd.DataFrame:
        raw = {f.name: rows.column(i) for i, f in enumerate(rows.features)}
        return prepare_frame(pd.DataFrame(raw), list(rows.features))

    def predict(self, rows: Rows) -> Prediction:
        frame = self.frame(rows)
        if self._classes is None:
            return Prediction(labels=self._pipeline.predict(frame).tolist())
        proba = self._pipeline.predict_proba(frame)
        # the most probable class is what predict() answers; taking it here saves a second pipeline pass
        labels = self._classes[proba.argmax(axis=1)].tolist()
        return Prediction(labels=labels, probabilities=proba.tolist())


ONNX_MISSING = "\x00mlstack:missing\x00"
"""What a null string becomes for the ONNX graph: its string imputers replace this value (skl2onnx
imputes strings only when the missing marker is a string, not NaN)."""
ONNX_UNKNOWN = "\x00mlstack:unknown\x00"
"""A client string equal to ONNX_MISSING is sent as this instead: unknown to the encoder, like in joblib."""


class OnnxRuntime(TabularRuntime):
    """The pipeline's ONNX export in onnxruntime: one float32 or string tensor [N, 1] per feature.

    Inputs are built from the validated rows directly (no DataFrame): numbers and booleans as float32 with
    NaN for null, strings as objects with ONNX_MISSING for null. The session uses one thread for each
    pool: a replica owns one core, and the batcher already runs one call at a time.
    """

    engine = "onnx"
    inline_rows = 1 << 30  # tens of microseconds for a row, well under a millisecond for a full batch

    def __init__(self, manifest: Manifest, model: bytes) -> None:
        self.manifest = manifest
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in self._session.get_inputs()]
        if names != [f.name for f in manifest.inputs]:
            raise ValueError(f"ONNX inputs {names[:5]} do not match the manifest's features")
        outputs = [o.name for o in self._session.get_outputs()]
        self._classes = np.asarray(manifest.classes) if manifest.is_classifier else None
        self._output = "probabilities" if self._classes is not None else outputs[0]
        if self._output not in outputs:
            raise ValueError(f"ONNX outputs {outputs} have no {self._output!r}")

    def predict(self, rows: Rows) -> Prediction:
        (out,) = self._session.run([self._output], onnx_feed(rows))
        if self._classes is None:
            return Prediction(labels=out.ravel().astype(np.float64).tolist())
        proba = out.astype(np.float64)
        return Prediction(labels=self._classes[proba.argmax(axis=1)].tolist(), probabilities=proba.tolist())


def onnx_feed(rows: Rows) -> dict[str, np.ndarray]:
    """One [N, 1] array per feature, straight from the row tuples (numpy turns None into NaN for floats)."""
    feed = {}
    for feature, column in zip(rows.features, rows.columns(), strict=True):
        if feature.type == "string":
            values = [ONNX_MISSING if v is None else ONNX_UNKNOWN if v == ONNX_MISSING else v for v in column]
            feed[feature.name] = np.array(values, dtype=object).reshape(-1, 1)
        else:
            feed[feature.name] = np.array(column, dtype=np.float32).reshape(-1, 1)
    return feed
