"""The profile of a frame: figures equal to pandas' own, one binning rule, relations meaning what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack.profile.bins import OTHER, bin_index, bin_labels
from mlstack.profile.build import QUANTILES, build_profile
from mlstack.profile.schema import FeatureProfile, Profile
from mlstack.training.datasets import demo_dataset
from mlstack.training.pipeline import infer_schema
from mlstack.training.publish import profile_bytes


def profile_of(frame: pd.DataFrame, target: str, task: str = "classification") -> Profile:
    return build_profile(frame, target, infer_schema(frame, target), task, "test")  # type: ignore[arg-type]  # the task as a plain string, as the CLI passes it


def assert_matches_pandas(feature: FeatureProfile, column: pd.Series) -> None:
    """Counts, missing share, distinct values, statistics and category frequencies, as pandas gives them."""
    assert (feature.count, feature.missing) == (column.count(), column.isna().sum())
    assert feature.missing_share == pytest.approx(column.isna().mean(), abs=1e-15)
    assert feature.distinct == column.nunique()
    if feature.kind == "numeric":
        assert feature.stats is not None
        assert (feature.stats.min, feature.stats.max) == (column.min(), column.max())
        assert feature.stats.mean == pytest.approx(column.mean(), rel=1e-12)
        assert feature.stats.std == pytest.approx(column.std(), rel=1e-12)
        assert feature.stats.quantiles == {str(q): column.quantile(q) for q in QUANTILES}
    else:
        assert feature.categories is not None
        expected = column.map(lambda v: str(v).lower() if isinstance(v, bool | np.bool_) else v)
        assert feature.categories.counts == expected.value_counts().to_dict()


def churn_frame(rows: int = 3000) -> pd.DataFrame:
    return demo_dataset("churn", rows=rows, seed=3).frame


def test_every_feature_matches_pandas_on_the_same_frame() -> None:
    frame = churn_frame()
    profile = profile_of(frame, "churned")

    assert profile.rows == len(frame)
    assert [f.name for f in profile.features] == [c for c in frame.columns if c != "churned"]
    for feature in profile.features:
        assert_matches_pandas(feature, frame[feature.name])
    assert profile.target.categories is not None
    assert profile.target.categories.counts == {
        str(k): n for k, n in frame["churned"].value_counts().sort_index().items()
    }


def test_counting_each_training_value_with_the_live_rule_gives_the_profiles_bins() -> None:
    frame = churn_frame()
    profile = profile_of(frame, "churned")

    for feature in (f for f in profile.features if f.bins is not None):
        bins, values = feature.bins, frame[feature.name].dropna()
        counted = np.bincount([bins.index(float(v)) for v in values], minlength=len(bins.counts))
        assert counted.tolist() == bins.counts, feature.name
        assert sum(bins.counts) + feature.missing == len(frame)


def test_a_value_on_an_edge_belongs_to_the_bin_the_edge_closes() -> None:
    edges = [1.0, 2.0, 3.0]

    assert [bin_index(edges, v) for v in (0.5, 1.0, 1.5, 2.0, 3.0, 3.5)] == [0, 0, 1, 1, 2, 3]
    assert bin_labels(edges) == ["<= 1", "(1, 2]", "(2, 3]", "> 3"]


def test_every_bin_has_training_mass_and_values_beyond_the_range_land_in_the_outer_bins() -> None:
    frame = churn_frame()
    profile = profile_of(frame, "churned")

    for feature in (f for f in profile.features if f.bins is not None):
        assert all(n > 0 for n in feature.bins.counts), feature.name
        assert feature.stats is not None
        assert feature.bins.index(feature.stats.min - 1e6) == 0
        assert feature.bins.index(feature.stats.max + 1e6) == len(feature.bins.counts) - 1


def test_a_small_integer_feature_gets_one_bin_per_value() -> None:
    frame = churn_frame()
    products = profile_of(frame, "churned").feature("num_products")

    assert products is not None
    assert products.bins is not None
    assert products.bins.counts == frame["num_products"].value_counts().sort_index().tolist()


def test_the_same_data_gives_the_same_bytes() -> None:
    frame = demo_dataset("fraud", rows=3000, seed=1).frame

    assert profile_bytes(profile_of(frame, "is_fraud")) == profile_bytes(profile_of(frame.copy(), "is_fraud"))


def test_constant_and_empty_columns_are_described_not_refused() -> None:
    frame = pd.DataFrame(
        {
            "constant": [7.0] * 60,
            "empty": [np.nan] * 60,
            "label": ["yes", "no"] * 30,
        }
    )
    profile = profile_of(frame, "label")
    constant, empty = profile.features

    assert constant.bins is not None
    assert constant.bins.counts == [60]
    assert constant.stats is not None
    assert constant.stats.std == 0.0
    assert constant.target is not None
    assert constant.target.mutual_information is None
    assert (empty.count, empty.missing_share, empty.stats, empty.bins) == (0, 1.0, None, None)


def test_rare_categories_share_the_other_bin() -> None:
    common = [f"c{i:02d}" for i in range(40)]
    values = [c for c in common for _ in range(30)] + ["rare-a", "rare-b"]
    frame = pd.DataFrame({"city": values, "y": [i % 2 for i in range(len(values))]})

    city = profile_of(frame, "y").features[0]

    assert city.categories is not None
    assert len(city.categories.counts) == 30
    assert city.categories.other == 10 * 30 + 2
    assert city.categories.other_distinct == 12
    assert city.categories.key("rare-a") == OTHER
    assert city.target is not None
    assert city.target.bins[-2:] == ["(other)", "(missing)"]


def test_target_rates_per_category_equal_a_pandas_groupby() -> None:
    frame = churn_frame()
    contract = profile_of(frame, "churned").feature("contract")

    assert contract is not None
    assert contract.target is not None
    assert contract.target.class_shares
    expected = frame.groupby("contract")["churned"].mean()
    shares = dict(zip(contract.target.bins, contract.target.class_shares["1"], strict=True))
    for category, rate in expected.items():
        assert shares[category] == pytest.approx(rate, rel=1e-12)
    assert shares["(missing)"] is None  # no row without a contract


def test_cramers_v_is_near_zero_when_independent_and_one_when_determined() -> None:
    rng = np.random.default_rng(0)
    colour = rng.choice(["red", "green", "blue", "grey"], 2000)
    frame = pd.DataFrame(
        {"noise": rng.choice(list("abcdefghij"), 2000), "colour": colour, "y": colour == "red"}
    )
    frame["y"] = frame["y"].astype(int)
    noise, colour_ = profile_of(frame, "y").features

    assert noise.target is not None
    assert colour_.target is not None
    assert noise.target.cramers_v is not None
    assert noise.target.cramers_v < 0.05
    assert colour_.target.cramers_v == pytest.approx(1.0, abs=1e-3)  # the bias correction takes a hair
    assert noise.target.mutual_information is not None
    assert noise.target.mutual_information < 0.01
    red = frame["y"].mean()
    entropy = -(red * np.log(red) + (1 - red) * np.log(1 - red))  # all there is to know about y
    assert colour_.target.mutual_information == pytest.approx(entropy, rel=1e-9)


def test_a_regressors_relations_are_means_correlations_and_eta() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=1500)
    group = rng.choice(["a", "b", "c"], 1500)
    y = 2 * x + np.where(group == "a", 3.0, 0.0) + rng.normal(scale=0.5, size=1500)
    frame = pd.DataFrame({"x": x, "group": group, "y": y})

    numeric, categorical = profile_of(frame, "y", "regression").features

    assert numeric.target is not None
    assert categorical.target is not None
    assert numeric.target.pearson == pytest.approx(frame["x"].corr(frame["y"]), rel=1e-12)
    assert numeric.target.spearman == pytest.approx(frame["x"].corr(frame["y"], method="spearman"), rel=1e-12)
    assert numeric.target.cramers_v is None
    assert numeric.target.class_shares is None
    means = dict(zip(categorical.target.bins, categorical.target.target_mean or [], strict=True))
    assert means["a"] == pytest.approx(frame.loc[frame["group"] == "a", "y"].mean(), rel=1e-12)
    assert categorical.target.correlation_ratio is not None
    assert categorical.target.correlation_ratio > 0.4
    assert (numeric.target.mutual_information or 0) > (categorical.target.mutual_information or 0) > 0.05


def test_the_correlation_matrix_is_pandas_pairwise_complete_one() -> None:
    frame = churn_frame()
    correlations = profile_of(frame, "churned").correlations

    assert correlations is not None
    names = correlations.features
    assert "contract" not in names
    assert "senior_citizen" in names
    expected = frame[names].astype("float64").corr()
    assert np.allclose(np.array(correlations.pearson, dtype=float), expected.to_numpy(), rtol=1e-12)
