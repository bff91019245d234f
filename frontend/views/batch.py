"""Batch: a CSV checked against the schema, predicted in chunks of the batch limit, results to download."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import state
import table
import widgets
from gateway import GatewayError

st.title("Batch predictions")
try:
    model, version = widgets.model_picker(state.tabular_models(), key="batch")
    manifest = state.manifest(model, version)
except GatewayError as exc:
    st.error(str(exc))
    st.stop()

st.caption("Columns: " + ", ".join(f"`{f['name']}`" for f in manifest["inputs"]))
upload = st.file_uploader("CSV file with a header row", type=["csv"])
if upload is None:
    st.stop()
try:
    frame = pd.read_csv(upload, keep_default_na=False, na_values=[""])  # "None" can be a real category
except (ValueError, UnicodeDecodeError) as exc:
    st.error(f"This file cannot be read as CSV: {exc}")
    st.stop()

found = table.problems(frame, manifest)
if found:
    st.error("This file does not fit the model's schema:\n\n" + "\n".join(f"- {p}" for p in found))
    st.stop()
extra = table.extra_columns(frame, manifest)
if extra:
    st.info(f"Ignored columns (the model does not use them): {', '.join(extra)}")
st.write(f"{len(frame)} rows ready.")

if st.button("Predict all rows", type="primary"):
    size = state.client().settings.batch_rows
    rows = table.rows(frame, manifest)
    progress = st.progress(0.0, text="predicting…")
    predictions, probabilities = [], []
    try:
        for start in range(0, len(rows), size):
            body = state.client().predict(model, rows[start : start + size], version).body
            predictions += body["predictions"]
            probabilities += body.get("probabilities") or []
            progress.progress(
                min(1.0, (start + size) / len(rows)), text=f"{min(start + size, len(rows))} rows"
            )
    except GatewayError as exc:
        st.error(f"Stopped after {len(predictions)} rows: {exc}")
        st.stop()
    results = frame.copy()
    results["prediction"] = predictions
    for name in probabilities[0] if probabilities else []:
        results[f"probability_{name}"] = [p[name] for p in probabilities]
    st.success(f"{len(results)} predictions from {model} version {body['model_version']}")
    st.dataframe(results, width="stretch")
    st.download_button(
        "Download CSV", results.to_csv(index=False), file_name=f"{model}-predictions.csv", mime="text/csv"
    )
