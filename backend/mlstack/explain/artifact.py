"""explain.json, the version's explanation data, written at training and read (sha256-verified) at load:
the mean of the transformed training rows (the linear method's reference) and a sample of training rows
(the sampling method's background). JSON, not a pickle: it is data, and it stays readable."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlstack.explain.errors import Unexplainable
from mlstack.frames import prepare_frame
from mlstack.store.manifest import Feature

FORMAT = 1
BACKGROUND_ROWS = 100
"""Training rows kept as the sampling method's background; its cost grows with this number."""


@dataclass(frozen=True)
class ExplainData:
    reference: np.ndarray
    """Mean of every transformed column over the training rows."""
    background: pd.DataFrame
    """Training rows (prepared frame: the schema's features and dtypes)."""


def encode(data: ExplainData, features: list[Feature]) -> bytes:
    names = [f.name for f in features]
    rows = [[_plain(v) for v in row] for row in data.background[names].itertuples(index=False)]
    document = {"format": FORMAT, "features": names, "reference": data.reference.tolist(), "background": rows}
    return json.dumps(document, allow_nan=False, separators=(",", ":")).encode()


def decode(raw: bytes, features: list[Feature]) -> ExplainData:
    try:
        document = json.loads(raw)
        names = [f.name for f in features]
        if document["format"] != FORMAT or document["features"] != names:
            raise ValueError("format or features differ from the manifest's")
        background = pd.DataFrame(document["background"], columns=names)
        reference = np.asarray(document["reference"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise Unexplainable(f"explain.json is not readable: {exc}") from None
    return ExplainData(reference, prepare_frame(background, features))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
