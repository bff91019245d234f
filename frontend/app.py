"""The UI's entry point: page setup, navigation over views/, and the gateway's state in the sidebar."""

from __future__ import annotations

import streamlit as st

import state
from gateway import GatewayError

st.set_page_config(page_title="mlstack", page_icon=":material/insights:", layout="wide")

pages = st.navigation(
    [
        st.Page("views/predict.py", title="Predict", icon=":material/bolt:", default=True),
        st.Page("views/batch.py", title="Batch", icon=":material/table_view:"),
        st.Page("views/models.py", title="Models", icon=":material/inventory_2:"),
        st.Page("views/explore.py", title="Explore", icon=":material/query_stats:"),
        st.Page("views/recommend.py", title="Recommend", icon=":material/recommend:"),
        st.Page("views/monitor.py", title="Monitor", icon=":material/monitoring:"),
    ]
)

with st.sidebar:
    st.caption(f"Gateway: {state.client().settings.gateway_url}")
    try:
        st.caption(f"{len(state.models())} model(s) served")
    except GatewayError as exc:
        st.warning(str(exc))

pages.run()
