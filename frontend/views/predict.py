"""Predict: one row from a form generated from the model's schema; the answer, its probabilities and facts,
and why: each feature's contribution to the model's output."""

from __future__ import annotations

import streamlit as st

import state
import widgets
from gateway import GatewayError

st.title("Predict")
try:
    model, version = widgets.model_picker(state.tabular_models(), key="predict")
    manifest = state.manifest(model, version)
except GatewayError as exc:
    st.error(str(exc))
    st.stop()

if manifest.get("description"):
    st.caption(manifest["description"])
with st.form("predict-form"):
    row = widgets.schema_form(manifest, key="predict")
    submitted = st.form_submit_button("Predict", type="primary")

if submitted:
    try:
        answer = state.client().predict(model, [row], version)
    except GatewayError as exc:
        st.error(str(exc))  # the API's own words, e.g. which field is wrong
        st.stop()
    body = answer.body
    st.subheader(f"Prediction: {body['predictions'][0]}")
    widgets.answer_facts(
        body["model_version"], answer.headers.get("X-Cache", "?"), answer.latency_ms, manifest.get("engine")
    )
    if body.get("probabilities"):
        st.caption("Probability per class")
        widgets.proba_chart(body["probabilities"][0])

    st.subheader("Why")
    try:
        explained = state.client().explain(model, [row], body["model_version"]).body  # the version shown
    except GatewayError as exc:
        st.info(str(exc))  # e.g. a version published before explanations existed (409)
        st.stop()
    why = explained["explanations"][0]
    largest = max(why["contributions"], key=lambda c: abs(c["contribution"]))
    st.markdown(f"Largest contribution: **{largest['feature']}** ({largest['contribution']:+.3f})")
    widgets.contributions_chart(why)
    st.caption(widgets.explanation_caption(why))
