"""Each explanation method on pipelines fitted here, on a synthetic set whose target depends on `x2` only
(or, for the one-hot check, on the category `plan_type` only): additivity against the model's own output,
the driving feature found, contributions on original feature names, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder
from sklearn.svm import LinearSVC

from mlstack.explain.artifact import decode
from mlstack.explain.engine import TabularExplainer, method_for
from mlstack.explain.errors import Unexplainable
from mlstack.explain.outputs import LOGIT_CLIP
from mlstack.explain.preparation import prepare, rows_of
from mlstack.frames import prepare_frame
from mlstack.store.manifest import Feature
from mlstack.training.pipeline import build_pipeline, infer_schema

ROWS = 1200
TOLERANCE = {"linear": 1e-6, "tree_path_dependent": 1e-6, "sampling_permutation": 1e-3}
PERMUTATIONS = 10


def synthetic(rows: int, seed: int, driver: str = "x2", classes: int = 0) -> pd.DataFrame:
    """Five numbers (two with gaps) and two categories with confusable names; the target reads `driver`."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=rows) for i in range(5)})
    frame["plan"] = rng.choice(["a", "b", "c"], rows)
    frame["plan_type"] = rng.choice(["a", "b", "c", "d"], rows)
    signal = (
        frame["x2"] if driver == "x2" else frame["plan_type"].map({"a": -2.0, "b": -0.5, "c": 0.5, "d": 2.0})
    )
    if classes:
        frame["y"] = np.digitize(signal, np.quantile(signal, np.linspace(0, 1, classes + 1)[1:-1]))
    else:
        frame["y"] = 3.0 * signal + 0.05 * rng.normal(size=rows)
    for column in ("x0", "x1", "plan"):
        frame[column] = frame[column].mask(rng.random(rows) < 0.08)
    return frame


def fitted(estimator: BaseEstimator, frame: pd.DataFrame) -> tuple[Pipeline, list[Feature]]:
    features = infer_schema(frame, "y")
    pipeline = build_pipeline(features, estimator).fit(prepare_frame(frame, features), frame["y"])
    return pipeline, features


def explainer_of(
    pipeline: Pipeline, features: list[Feature], classifier: bool, train: pd.DataFrame
) -> TabularExplainer:
    """Through training's preparation and the published file's decoding, as a replica gets it."""
    prepared = prepare_frame(train, features)
    facts, raw = prepare(pipeline, features, classifier, prepared, prepared.head(50))
    assert raw is not None, facts.reason
    return TabularExplainer(pipeline, features, classifier, decode(raw, features), PERMUTATIONS)


def own_output(
    pipeline: Pipeline, frame: pd.DataFrame, method: str, classes: np.ndarray | None
) -> np.ndarray:
    """The model's output, from the pipeline itself: raw scores, or log-odds of predict_proba."""
    if classes is None:
        return pipeline.predict(frame)
    rows = np.arange(len(frame))
    if method != "sampling_permutation":
        scores = pipeline.decision_function(frame)
        return scores if scores.ndim == 1 else scores[rows, classes]
    p = np.clip(pipeline.predict_proba(frame)[rows, classes], LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(p / (1 - p))


CASES = [
    ("linear", LogisticRegression(C=10.0, max_iter=2000), 2),
    ("linear", LogisticRegression(max_iter=2000), 3),
    ("linear", Ridge(), 0),
    ("tree_path_dependent", HistGradientBoostingClassifier(max_iter=60, random_state=0), 2),
    ("tree_path_dependent", HistGradientBoostingClassifier(max_iter=30, random_state=0), 3),
    ("tree_path_dependent", HistGradientBoostingRegressor(max_iter=60, random_state=0), 0),
    ("sampling_permutation", RandomForestRegressor(n_estimators=20, min_samples_leaf=20, random_state=0), 0),
    ("sampling_permutation", GaussianNB(), 2),
]
IDS = [f"{type(e).__name__}-{c or 'regression'}" for _, e, c in CASES]


@pytest.mark.parametrize(("method", "estimator", "classes"), CASES, ids=IDS)
def test_contributions_add_up_to_the_models_output_and_find_the_driving_feature(
    method: str, estimator: BaseEstimator, classes: int
) -> None:
    held_out_rows = 80 if method == "sampling_permutation" else 200  # the sampling method costs ~10 ms a row
    train, held_out = (
        synthetic(ROWS, seed=1, classes=classes),
        synthetic(held_out_rows, seed=2, classes=classes),
    )
    pipeline, features = fitted(estimator, train)
    explainer = explainer_of(pipeline, features, classes > 0, train)
    frame = prepare_frame(held_out, features)

    explained = explainer.explain(rows_of(frame, features))

    class_index = None
    if classes:
        class_index = np.array([list(pipeline.classes_).index(r.explained_class) for r in explained.rows])
    phi = np.array([[c.contribution for c in r.contributions] for r in explained.rows])
    base = np.array([r.base_value for r in explained.rows])
    gap = np.abs(base + phi.sum(axis=1) - own_output(pipeline, frame, method, class_index))
    names = [f.name for f in features]
    largest = np.array(names)[np.abs(phi).argmax(axis=1)]
    assert explained.method == method
    assert gap.max() <= TOLERANCE[method]
    if classes <= 2:  # a middle class's softmax logit hardly reads x2: its odds move by the others' logits
        assert np.mean(largest == "x2") >= 0.95


@pytest.mark.parametrize(
    "estimator",
    [LogisticRegression(max_iter=2000), HistGradientBoostingClassifier(max_iter=40, random_state=0)],
    ids=["linear", "tree"],
)
def test_a_one_hot_category_lands_on_its_feature_not_on_an_encoded_column(estimator: BaseEstimator) -> None:
    train = synthetic(ROWS, seed=3, driver="plan_type", classes=2)
    pipeline, features = fitted(estimator, train)
    explainer = explainer_of(pipeline, features, True, train)
    frame = prepare_frame(synthetic(100, seed=4, driver="plan_type", classes=2), features)

    explained = explainer.explain(rows_of(frame, features))

    encoded = set(pipeline[0].get_feature_names_out()) - {f.name for f in features}
    assert encoded, "the pipeline one-hot encodes"
    for row in explained.rows:
        assert [c.feature for c in row.contributions] == [f.name for f in features]
        assert max(row.contributions, key=lambda c: abs(c.contribution)).feature == "plan_type"


def test_the_sampling_method_is_reproducible_and_says_its_count() -> None:
    train = synthetic(600, seed=5)
    pipeline, features = fitted(RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0), train)
    rows = rows_of(prepare_frame(synthetic(5, seed=6), features), features)

    first = explainer_of(pipeline, features, False, train).explain(rows)
    again = explainer_of(pipeline, features, False, train).explain(rows)

    assert first.permutations == PERMUTATIONS
    assert first.rows == again.rows


def test_native_categorical_splits_are_refused_at_training() -> None:
    train = synthetic(400, seed=7)
    features = infer_schema(train, "y")
    frame = prepare_frame(train, features)
    codes = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("ordinal", OrdinalEncoder())])
    preprocess = ColumnTransformer(
        [("numeric", SimpleImputer(), [f"x{i}" for i in range(5)]), ("codes", codes, ["plan", "plan_type"])],
        sparse_threshold=0.0,
    )
    model = HistGradientBoostingRegressor(max_iter=10, categorical_features=[5, 6])
    pipeline = Pipeline([("preprocess", preprocess), ("model", model)]).fit(frame, train["y"])

    with pytest.raises(Unexplainable, match="categorical splits"):
        method_for(pipeline, is_classifier=False)
    facts, raw = prepare(pipeline, features, False, frame, frame.head(10))
    assert (facts.method, raw) == (None, None)
    assert "categorical" in str(facts.reason)


def test_a_classifier_without_probabilities_is_refused_with_the_reason() -> None:
    train = synthetic(300, seed=8, classes=2)
    pipeline, features = fitted(LinearSVC(), train)
    frame = prepare_frame(train, features)

    facts, raw = prepare(pipeline, features, True, frame, frame.head(10))

    assert raw is None
    assert facts.method is None
    assert "probabilities" in str(facts.reason)
