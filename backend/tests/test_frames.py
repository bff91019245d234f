"""The frame every pipeline sees: built from validated columns, it equals prepare_frame's, dtypes included."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlstack.frames import columns_frame, prepare_frame
from mlstack.serving.requests import Records
from mlstack.serving.validation import Validator
from mlstack.store.model_store import ModelStore

from .conftest import DEMO_MODELS
from .test_explain import held_out_rows


@pytest.mark.parametrize("model", list(DEMO_MODELS))
def test_validated_columns_make_the_frame_prepare_frame_makes(trained_store: Path, model: str) -> None:
    manifest = ModelStore(trained_store).manifest(model, "1")
    rows, _ = held_out_rows(manifest, model, count=30)  # every third row with its nullable features null

    built = columns_frame(rows.features, rows.columns())

    expected = prepare_frame(
        pd.DataFrame(rows.values, columns=[f.name for f in rows.features]), list(rows.features)
    )
    assert built.dtypes.tolist() == expected.dtypes.tolist()
    pd.testing.assert_frame_equal(built, expected)
    assert built.isna().to_numpy().any()


def test_booleans_and_nulls_as_a_client_sends_them(trained_store: Path) -> None:
    manifest = ModelStore(trained_store).manifest("churn", "1")
    typical = {f.name: f.typical for f in manifest.inputs}
    instances = [{**typical, "senior_citizen": flag, "total_charges": None} for flag in (True, False)]
    rows = Validator(manifest, 10, 256).validate(Records(instances))

    built = columns_frame(rows.features, rows.columns())

    pd.testing.assert_frame_equal(built, prepare_frame(pd.DataFrame(instances), list(manifest.inputs)))
    assert built["senior_citizen"].tolist() == [1.0, 0.0]
