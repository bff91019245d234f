"""A table as Open Inference Protocol tensors, as MLServer's pandas codec maps it: one tensor per column."""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from mlstack.api.schemas.v2 import InferenceRequest, RequestInput
from mlstack.errors import BadInput, MalformedRequest
from mlstack.serving.core import Result
from mlstack.serving.registry import Loaded
from mlstack.store.manifest import Feature

NUMERIC = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"}
)
ACCEPTED = {
    "number": NUMERIC,
    "integer": NUMERIC,
    "boolean": frozenset({"BOOL"}),
    "string": frozenset({"BYTES"}),
}
DECLARED = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}
OUTPUT_NAMES = ("predictions", "probabilities")


def parse_request(body: dict[str, Any]) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise MalformedRequest(f"{where}: {error['msg']}") from None


def decode_columns(request: InferenceRequest, features: list[Feature]) -> tuple[dict[str, list[Any]], int]:
    """One list per feature and the row count; shapes, datatypes and names checked against the schema."""
    by_name = {f.name: f for f in features}
    columns: dict[str, list[Any]] = {}
    counts = set()
    for tensor in request.inputs:
        feature = by_name.get(tensor.name)
        if feature is None:
            raise BadInput(f"inputs.{tensor.name[:64]}", "unknown feature")
        columns[tensor.name] = _column(tensor, feature)
        counts.add(len(columns[tensor.name]))
    missing = [f.name for f in features if f.name not in columns]
    if missing:
        raise BadInput(f"inputs.{missing[0]}", "missing feature")
    if len(counts) != 1:
        raise MalformedRequest("inputs: every tensor must have the same first dimension (rows)")
    return columns, counts.pop()


def _column(tensor: RequestInput, feature: Feature) -> list[Any]:
    where = f"inputs.{tensor.name}"
    if tensor.datatype not in ACCEPTED[feature.type]:
        expected = DECLARED[feature.type]
        raise BadInput(
            where, f"datatype {tensor.datatype} does not fit a {feature.type} feature (use {expected})"
        )
    shape = tensor.shape
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 0:
        raise MalformedRequest(f"{where}.shape: must be [N] or [N, 1], got {shape}")
    data = _flatten(tensor.data, where)
    if len(data) != shape[0]:
        raise MalformedRequest(f"{where}.data: {len(data)} values do not fill shape {shape}")
    return data


def _flatten(data: list[Any], where: str) -> list[Any]:
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            if any(isinstance(inner, list) for inner in item):
                raise MalformedRequest(f"{where}.data: nested deeper than the shape allows")
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def encode_response(result: Result, request: InferenceRequest) -> dict[str, Any]:
    names = set(OUTPUT_NAMES) | set(result.extra or ())
    wanted = {o.name for o in request.outputs} if request.outputs else names
    unknown = wanted - names
    if unknown:
        raise MalformedRequest(f"outputs.{sorted(unknown)[0][:64]}: unknown output")
    rows = len(result.labels)
    outputs = []
    if result.extra is not None:  # a recommender: ranked lists of item ids, their scores, their sources
        extra = {"predictions": result.labels, **result.extra}
        outputs = [_tensor(name, values) for name, values in extra.items() if name in wanted]
    elif "predictions" in wanted:
        datatype = _label_datatype(result.labels)
        outputs.append({"name": "predictions", "shape": [rows], "datatype": datatype, "data": result.labels})
    if "probabilities" in wanted and result.probabilities is not None:
        width = len(result.classes or ())
        flat = [p for row in result.probabilities for p in row]
        outputs.append({"name": "probabilities", "shape": [rows, width], "datatype": "FP64", "data": flat})
    response: dict[str, Any] = {
        "model_name": result.model,
        "model_version": result.version,
        "outputs": outputs,
    }
    if request.id is not None:
        response["id"] = request.id
    return response


def _tensor(name: str, values: list[Any]) -> dict[str, Any]:
    """Per-row values, or per-row lists as a [rows, width] tensor (short lists padded)."""
    if not values or not isinstance(values[0], list):
        return {"name": name, "shape": [len(values)], "datatype": _label_datatype(values), "data": values}
    width = max(len(row) for row in values)
    sample = next((row[0] for row in values if row), "")
    pad = "" if isinstance(sample, str) else 0.0
    flat = [v for row in values for v in (row + [pad] * (width - len(row)))]
    return {"name": name, "shape": [len(values), width], "datatype": _label_datatype([sample]), "data": flat}


PLATFORMS = {"joblib": "sklearn", "onnx": "onnxruntime_onnx"}
"""V2 `platform` per engine: MLServer's name for scikit-learn, Triton's for ONNX Runtime."""


def model_metadata(loaded: Loaded, versions: list[str]) -> dict[str, Any]:
    manifest = loaded.manifest
    inputs = [{"name": f.name, "datatype": DECLARED[f.type], "shape": [-1]} for f in manifest.inputs]
    outputs = [{"name": "predictions", "datatype": _label_datatype(manifest.classes or [0.0]), "shape": [-1]}]
    if manifest.task == "recommendation":
        outputs = [
            {"name": "predictions", "datatype": "BYTES", "shape": [-1, -1]},
            {"name": "scores", "datatype": "FP64", "shape": [-1, -1]},
            {"name": "sources", "datatype": "BYTES", "shape": [-1]},
        ]
    if manifest.is_classifier:
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(manifest.classes or ())]}
        )
    return {
        "name": manifest.model,
        "versions": versions,
        "platform": PLATFORMS.get(loaded.runtime.engine, loaded.runtime.engine),
        "inputs": inputs,
        "outputs": outputs,
    }


def _label_datatype(labels: list[Any]) -> str:
    sample = labels[0] if labels else 0.0
    if isinstance(sample, bool):
        return "BOOL"
    if isinstance(sample, int):
        return "INT64"
    if isinstance(sample, float) and not math.isnan(sample):
        return "FP64"
    return "BYTES"
