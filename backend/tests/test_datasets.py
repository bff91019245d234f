"""The demo sets: the same table for a seed, missing values, the intended imbalance, honest dtypes."""

from __future__ import annotations

import pandas as pd
import pytest

from mlstack.training.datasets import DEMO_SETS, demo_dataset

POSITIVE_SHARE = {"churn": (0.2, 0.3), "fraud": (0.01, 0.02), "maintenance": (0.08, 0.12)}


@pytest.mark.parametrize("name", DEMO_SETS)
def test_a_seed_gives_the_same_table(name: str) -> None:
    first = demo_dataset(name, rows=300, seed=7).frame

    pd.testing.assert_frame_equal(first, demo_dataset(name, rows=300, seed=7).frame)
    assert not first.equals(demo_dataset(name, rows=300, seed=8).frame)


@pytest.mark.parametrize("name", DEMO_SETS)
def test_sets_have_missing_values_and_the_intended_imbalance(name: str) -> None:
    demo = demo_dataset(name)
    low, high = POSITIVE_SHARE[name]

    assert demo.frame.drop(columns=list(demo.targets)).isna().any().any()
    assert low <= demo.frame[demo.target].mean() <= high
    assert set(demo.frame[demo.target].unique()) == {0, 1}
    assert demo.frame[demo.target].dtype == "int64"


@pytest.mark.parametrize("name", DEMO_SETS)
def test_the_default_target_comes_first_and_every_target_is_a_column(name: str) -> None:
    demo = demo_dataset(name, rows=100)

    assert demo.targets[0] == demo.target
    assert set(demo.targets) <= set(demo.frame.columns)
    assert demo.description


def test_rows_and_mixed_types() -> None:
    frame = demo_dataset("churn", rows=250).frame

    assert len(frame) == 250
    assert frame["senior_citizen"].dtype == bool
    assert pd.api.types.is_integer_dtype(frame["tenure_months"])
    assert pd.api.types.is_float_dtype(frame["monthly_charges"])
    assert set(frame["contract"].dropna()) == {"Month-to-month", "One year", "Two year"}


def test_fraud_has_boolean_flags_and_maintenance_a_numeric_second_target() -> None:
    fraud = demo_dataset("fraud", rows=200).frame
    maintenance = demo_dataset("maintenance", rows=200)

    assert fraud["card_present"].dtype == bool
    assert fraud["country_mismatch"].dtype == bool
    assert "remaining_useful_life_days" in maintenance.targets
    assert (maintenance.frame["remaining_useful_life_days"] >= 0).all()


def test_an_unknown_set_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="unknown demo set 'weather'"):
        demo_dataset("weather")
