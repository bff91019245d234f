"""Monitor: throughput, latency percentiles, error rate and cache hit ratio per replica, refreshing itself."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st

import state
from gateway import GatewayError

HISTORY = 120  # samples kept per chart


def replica_rows(replicas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for replica in replicas:
        cache = replica["cache"]
        looked_up = cache["hits"] + cache["misses"]
        for key, figures in replica["predictions"].items() or [("-", None)]:
            rows.append(
                {
                    "replica": replica["name"],
                    "model": key.replace(":", " v"),  # a colon would mean a data type to Altair
                    "req/s": figures["per_s"] if figures else 0.0,
                    "p50 ms": figures["latency_ms"]["p50"] if figures else None,
                    "p95 ms": figures["latency_ms"]["p95"] if figures else None,
                    "p99 ms": figures["latency_ms"]["p99"] if figures else None,
                    "error rate": figures["error_ratio"] if figures else 0.0,
                    "cache hit ratio": round(cache["hits"] / looked_up, 3) if looked_up else None,
                }
            )
    return rows


def probe() -> dict[str, Any]:
    """Without an admin key the UI can only time its own cheap request to the gateway."""
    started = time.perf_counter()
    try:
        state.client().models()
        ok = True
    except GatewayError:
        ok = False
    return {
        "replica": "gateway (probe)",
        "p50 ms": (time.perf_counter() - started) * 1000,
        "error rate": 0.0 if ok else 1.0,
    }


@st.fragment(run_every=state.client().settings.refresh_s)
def live() -> None:
    history: list[dict[str, Any]] = st.session_state.setdefault("monitor-history", [])
    client = state.client()
    try:
        rows = replica_rows(client.stats()) if client.is_admin else [probe()]
        source = (
            "replica statistics (/v1/stats, last minute per replica)"
            if client.is_admin
            else ("the UI's own probe requests (set FRONTEND_ADMIN_KEY for per-replica figures)")
        )
    except GatewayError as exc:
        st.error(str(exc))
        return
    now = pd.Timestamp.now()
    history.extend({"time": now, **row} for row in rows)
    del history[: max(0, len(history) - HISTORY * max(1, len(rows)))]
    st.caption(f"Source: {source}. Refreshes every {client.settings.refresh_s:g}s.")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    frame = pd.DataFrame(history)
    series = frame["replica"] + (" " + frame["model"] if "model" in frame else "")
    frame = frame.assign(series=series)
    for metric in ("req/s", "p99 ms", "error rate", "cache hit ratio"):
        if metric in frame and frame[metric].notna().any():
            st.caption(metric)
            st.line_chart(frame.pivot_table(index="time", columns="series", values=metric), height=180)


st.title("Monitor")
live()
