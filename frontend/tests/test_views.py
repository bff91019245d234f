"""Each page run with Streamlit's AppTest against a real stack (gateway, replica, Redis): no mocked API."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gateway import GatewayClient, GatewayError
from mlstack.training.datasets import demo_dataset
from settings import FrontendSettings
from stack.native import NativeStack

APP = str(Path(__file__).resolve().parents[1] / "app.py")
pytestmark = pytest.mark.stack


def run_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    if page != "views/predict.py":
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for e in (*at.markdown, *at.subheader, *at.title, *at.caption, *at.error, *at.success)]
    return "\n".join(str(p) for p in parts)


def test_predict_page_shows_a_prediction_from_the_form(ui_env: NativeStack) -> None:
    at = run_page("views/predict.py")
    at.number_input(key="predict-churn-tenure_months").set_value(2)
    at.selectbox(key="predict-churn-contract").set_value("Month-to-month")
    at.button[0].click().run()

    assert not at.exception
    assert "Prediction:" in texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Model version"] == "1"
    assert metrics["Cache (X-Cache)"] in {"MISS", "HIT"}
    assert metrics["Round trip"].endswith(" ms")
    assert metrics["Runtime"] == "onnx"  # the demo pipeline converts, so onnxruntime serves it


def test_predict_page_charts_why_largest_contribution_first(ui_env: NativeStack) -> None:
    at = run_page("views/predict.py")
    at.number_input(key="predict-churn-tenure_months").set_value(2)
    at.button[0].click().run()

    assert not at.exception
    with GatewayClient(FrontendSettings()) as client:
        manifest = client.manifest("churn")
        row = {**{f["name"]: f["typical"] for f in manifest["inputs"]}, "tenure_months": 2}
        why = client.explain("churn", [row]).body["explanations"][0]
    expected = sorted(why["contributions"], key=lambda c: -abs(c["contribution"]))
    bars = chart_data(at.get("vega_lite_chart")[-1])
    assert [label.split(" = ")[0] for label in bars["feature"]] == [c["feature"] for c in expected]
    np.testing.assert_allclose(
        bars["contribution"], [c["contribution"] for c in expected], rtol=0, atol=1e-12
    )
    assert (bars["direction"] == np.where(bars["contribution"] >= 0, "raises", "lowers")).all()
    assert "Method: linear; it adds up to the joblib pipeline's output." in texts(at)


def chart_data(chart: Any) -> pd.DataFrame:
    """The rows a Vega-Lite element draws (Streamlit sends them as an Arrow stream)."""
    (dataset,) = chart.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()


def test_api_validation_errors_reach_the_page_in_the_apis_words(ui_env: NativeStack) -> None:
    with GatewayClient(FrontendSettings()) as client, pytest.raises(GatewayError) as caught:
        client.predict("churn", [{"tenure_months": "twelve"}])

    assert caught.value.status == 422
    assert str(caught.value).startswith("instances[0].")


def test_a_wrong_key_is_a_sentence_on_the_page(ui_env: NativeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTEND_API_KEY", "not-a-key-" + "x" * 20)
    forget_cached_clients()
    try:
        at = run_page("views/predict.py")
    finally:
        forget_cached_clients()

    assert [e.value for e in at.error][-1].startswith("The gateway does not accept the UI's API key")


def test_batch_page_checks_columns_and_predicts_a_csv(ui_env: NativeStack) -> None:
    frame = demo_dataset("churn", rows=30, seed=5).frame
    at = run_page("views/batch.py")
    at.file_uploader[0].set_value(
        ("rows.csv", frame.drop(columns=["tenure_months"]).to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    assert "missing columns: tenure_months" in texts(at)

    at.file_uploader[0].set_value(("rows.csv", frame.to_csv(index=False).encode(), "text/csv")).run()
    at.button[0].click().run()

    assert not at.exception
    assert "30 predictions from churn version 1" in texts(at)


def test_models_page_shows_metrics_for_classifier_and_regressor(ui_env: NativeStack) -> None:
    at = run_page("views/models.py")

    labels = {m.label for m in at.metric}
    assert {"ROC AUC", "F1"} <= labels
    assert "churn version 1 — current" in texts(at)


def test_models_page_shows_a_recommenders_figures_against_popularity(ui_env: NativeStack) -> None:
    at = run_page("views/models.py")
    ndcg = next(m for m in at.metric if m.label == "NDCG AT 10")

    assert "vs popularity" in str(ndcg.proto.delta)
    assert "recommend version 1 — current" in texts(at)


def test_recommend_page_creates_a_user_changes_the_list_cleans_and_deletes(ui_env: NativeStack) -> None:
    with GatewayClient(FrontendSettings()) as client:
        manifest = client.manifest("recommend")
    horror = [i["item_id"] for i in manifest["recommender"]["items"] if i["genre"] == "Horror"][:5]
    at = run_page("views/recommend.py")
    at.text_input(key="rec-user").set_value(f"ui-{uuid.uuid4().hex[:8]}").run()
    assert "(popular: no history)" in texts(at)

    at.multiselect(key="rec-create-items").set_value(horror).run()
    at.button(key="rec-create").click().run()
    top = at.dataframe[0].value
    assert (top["genre"] == "Horror").sum() >= 6
    assert "5 events; latest first" in texts(at)

    at.button(key="rec-clean").click().run()
    assert "(popular: no history)" in texts(at)
    at.button(key="rec-delete").click().run()
    assert not at.exception
    assert any(s.value.startswith("Deleted ui-") for s in at.success)


def test_monitor_page_reads_replica_statistics(ui_env: NativeStack) -> None:
    at = run_page("views/monitor.py")

    assert "Source: replica statistics" in texts(at)
    assert not at.error


def test_monitor_page_shows_the_drift_of_a_models_inputs(ui_env: NativeStack, drift_counted: int) -> None:
    at = run_page("views/monitor.py")
    at.selectbox(key="drift-feature").set_value("contract").run()

    table = at.dataframe[-1].value
    metrics = {m.label: m.value for m in at.metric}
    assert not at.exception
    inputs = demo_dataset("churn", rows=10).frame.drop(columns=["churned"]).columns
    assert sorted(table["feature"]) == sorted(inputs)
    assert {"JS", "PSI", "Wasserstein", "missing", "out of range", "unseen", "refused"} <= set(table.columns)
    assert drift_counted >= 250
    assert int(metrics["Rows served"].replace(",", "")) >= drift_counted
    assert "contract: live shares per training bin" in texts(at)
    assert len(at.get("vega_lite_chart")) >= 1


def test_a_dead_gateway_is_a_sentence_not_a_traceback(
    ui_env: NativeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTEND_GATEWAY_URL", "http://127.0.0.1:9")
    forget_cached_clients()
    try:
        at = run_page("views/predict.py")
    finally:
        forget_cached_clients()

    assert any("cannot be reached. Is the stack up?" in e.value for e in at.error)
    assert not at.exception


def forget_cached_clients() -> None:
    """The next run builds its gateway client from the patched settings; the old one closes its sockets."""
    import state

    state.client().close()
    st.cache_resource.clear()
    st.cache_data.clear()


def test_explore_page_shows_a_classifiers_profile(ui_env: NativeStack) -> None:
    at = run_page("views/explore.py")

    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Rows"], metrics["Target"], metrics["Task"]) == ("800", "churned", "classification")
    table = at.dataframe[0].value
    assert len(table) == 9
    assert table["mutual information"].is_monotonic_decreasing
    assert len(at.get("vega_lite_chart")) == 3  # distribution, target per bin, correlations

    at.selectbox(key="explore-feature").set_value("contract").run()
    at.radio(key="explore-correlation").set_value("spearman").run()
    assert not at.exception
    assert "churned per category" in texts(at)


def test_explore_page_shows_a_regressors_profile(ui_env: NativeStack) -> None:
    at = run_page("views/explore.py")
    at.selectbox(key="explore-model").set_value("maintenance").run()
    at.selectbox(key="explore-feature").set_value("vibration_rms").run()

    metrics = {m.label: m.value for m in at.metric}
    assert not at.exception
    assert (metrics["Target"], metrics["Task"]) == ("remaining_useful_life_days", "regression")
    assert "remaining_useful_life_days per bin" in texts(at)
    assert len(at.get("vega_lite_chart")) == 3


def test_a_recommender_has_no_profile_and_says_so(ui_env: NativeStack) -> None:
    with GatewayClient(FrontendSettings()) as client, pytest.raises(GatewayError) as caught:
        client.profile("recommend")

    assert caught.value.status == 404
    assert "has no profile" in str(caught.value)
