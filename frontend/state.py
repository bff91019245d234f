"""What every page shares: one gateway client per process, and short-lived caches of API reads."""

from __future__ import annotations

from typing import Any

import streamlit as st

from gateway import GatewayClient
from settings import FrontendSettings


@st.cache_resource
def client() -> GatewayClient:
    return GatewayClient(FrontendSettings())


@st.cache_data(ttl=5, show_spinner=False)
def models() -> list[dict[str, Any]]:
    return client().models()


@st.cache_data(ttl=60, show_spinner=False)
def manifest(model: str, version: str | None = None) -> dict[str, Any]:
    return client().manifest(model, version)


@st.cache_data(ttl=60, show_spinner=False)
def profile(model: str, version: str | None = None) -> dict[str, Any]:
    return client().profile(model, version)


def tabular_models() -> list[dict[str, Any]]:
    """The models that take a row of features (the Recommend page has the recommenders)."""
    return [m for m in models() if m["task"] != "recommendation"]
