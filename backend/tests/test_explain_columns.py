"""The map from transformed columns to input features, read from the fitted structure, equals what a probe
finds (change one input, see which output columns move) in every preprocessing variant it accepts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, PolynomialFeatures, StandardScaler

from mlstack.explain.columns import column_map
from mlstack.explain.errors import Unexplainable

NUMBERS = ["plan", "usage", "empty"]
STRINGS = ["plan_type", "region"]  # `plan_type_a` could be `plan` + `type_a`: names cannot be parsed


def frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "plan": rng.normal(size=rows),
            "usage": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(size=rows)),
            "empty": np.full(rows, np.nan),  # all missing in training: the imputer drops it
            "plan_type": rng.choice(
                np.array(["a", "b", "type_a", "rare"], dtype=object), rows, p=[0.4, 0.3, 0.28, 0.02]
            ),
            "region": np.where(
                rng.random(rows) < 0.1, np.nan, rng.choice(np.array(["n", "s"], dtype=object), rows)
            ),
        }
    )


def preprocess(numeric_imputer: SimpleImputer, encoder: OneHotEncoder) -> ColumnTransformer:
    numeric = Pipeline([("impute", numeric_imputer), ("scale", StandardScaler())])
    strings = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("one_hot", encoder)])
    return ColumnTransformer(
        [("numeric", numeric, NUMBERS), ("categorical", strings, STRINGS)], sparse_threshold=0.0
    )


VARIANTS = {
    "the training recipe": (
        SimpleImputer(strategy="median"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    ),
    "missing indicators": (SimpleImputer(add_indicator=True), OneHotEncoder(sparse_output=False)),
    "empty features kept": (SimpleImputer(keep_empty_features=True), OneHotEncoder(sparse_output=False)),
    "first category dropped": (SimpleImputer(), OneHotEncoder(drop="first", sparse_output=False)),
    "rare categories grouped": (SimpleImputer(), OneHotEncoder(min_frequency=0.05, sparse_output=False)),
    "all of them": (
        SimpleImputer(add_indicator=True),
        OneHotEncoder(
            drop="if_binary", min_frequency=0.05, handle_unknown="infrequent_if_exist", sparse_output=False
        ),
    ),
}


def probed_owner(fitted: ColumnTransformer, data: pd.DataFrame) -> np.ndarray:
    """For each output column, the one input column whose change moved it."""
    names = list(data.columns)
    base = fitted.transform(data)
    owner = np.full(base.shape[1], -1)
    for i, name in enumerate(names):
        changed = data.copy()
        changed[name] = changed[name].sample(frac=1.0, random_state=1).to_numpy()  # shuffled: values move
        if name == "empty":
            changed[name] = 1.0
        moved = ~np.isclose(fitted.transform(changed), base, equal_nan=True).all(axis=0)
        assert (owner[moved] == -1).all(), "an output column moved with two inputs"
        owner[moved] = i
    return owner


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_structural_map_equals_the_probe(variant: str) -> None:
    data = frame()
    fitted = preprocess(*VARIANTS[variant]).fit(data)

    mapped = column_map(fitted, list(data.columns))

    probe = probed_owner(fitted, data)
    assert (probe >= 0).all()
    assert mapped.owner.tolist() == probe.tolist()


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")
def test_a_feature_empty_in_training_owns_no_column_and_sums_to_zero() -> None:
    data = frame()
    fitted = preprocess(*VARIANTS["the training recipe"]).fit(data)
    mapped = column_map(fitted, list(data.columns))
    per_column = np.ones((2, len(mapped.owner)))

    grouped = mapped.group(per_column)

    assert grouped[:, list(data.columns).index("empty")].tolist() == [0.0, 0.0]
    assert grouped.sum(axis=1).tolist() == [len(mapped.owner)] * 2
    assert mapped.imputed_as[list(data.columns).index("empty")] is None
    assert mapped.imputed_as[list(data.columns).index("region")] in {"n", "s"}


def test_a_step_it_does_not_understand_is_refused() -> None:
    data = frame()[["plan", "usage"]].fillna(0.0)
    fitted = ColumnTransformer([("numeric", PolynomialFeatures(2), ["plan", "usage"])]).fit(data)

    with pytest.raises(Unexplainable, match="PolynomialFeatures"):
        column_map(fitted, ["plan", "usage"])
