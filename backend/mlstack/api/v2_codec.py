"""A table as Open Inference Protocol tensors, as MLServer's pandas codec maps it: one tensor per column."""

from __future__ import annotations

import math
from typing import Any

import orjson
from pydantic import ValidationError

from mlstack.api.answer import Answer, headers_of
from mlstack.api.body import parse_object
from mlstack.api.schemas.v2 import InferenceRequest, RequestInput
from mlstack.errors import MalformedRequest
from mlstack.serving.core import Predictor
from mlstack.serving.registry import Loaded
from mlstack.serving.requests import Column, Columns, Kind, PredictRequest, Result

NUMERIC = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "FP16", "FP32", "FP64"}
)
NUMBER: Kind = "number"
KINDS: dict[str, Kind] = dict.fromkeys(NUMERIC, NUMBER) | {"BOOL": "boolean", "BYTES": "string"}
DECLARED = {"number": "FP64", "integer": "INT64", "boolean": "BOOL", "string": "BYTES"}
OUTPUT_NAMES = ("predictions", "probabilities")


def parse_request(body: dict[str, Any]) -> InferenceRequest:
    try:
        return InferenceRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise MalformedRequest(f"{where}: {error['msg']}") from None


def decode(body: bytes) -> tuple[Columns, InferenceRequest]:
    """One column per tensor, shapes checked; the request itself, for its `id` and wanted outputs."""
    request = parse_request(parse_object(body))
    columns = {tensor.name: _column(tensor) for tensor in request.inputs}
    counts = {len(column.values) for column in columns.values()}
    if len(counts) != 1:
        raise MalformedRequest("inputs: every tensor must have the same first dimension (rows)")
    return Columns(columns, counts.pop()), request


def _column(tensor: RequestInput) -> Column:
    where = f"inputs.{tensor.name}"
    kind = KINDS.get(tensor.datatype)
    if kind is None:
        raise MalformedRequest(f"{where}.datatype: {tensor.datatype[:16]} is not supported")
    shape = tensor.shape
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 0:
        raise MalformedRequest(f"{where}.shape: must be [N] or [N, 1], got {shape}")
    data = _flatten(tensor.data, where)
    if len(data) != shape[0]:
        raise MalformedRequest(f"{where}.data: {len(data)} values do not fill shape {shape}")
    return Column(data, kind, tensor.datatype)


class V2Edge:
    """The Open Inference Protocol: one tensor per feature in, the request's `id` echoed out."""

    name = "v2"

    async def answer(self, predictor: Predictor, model: str, version: str | None, body: bytes) -> Answer:
        columns, request = decode(body)
        result = await predictor.predict(PredictRequest(model, version, columns))
        return Answer(orjson.dumps(encode_response(result, request)), headers_of(result), result)


V2 = V2Edge()


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
