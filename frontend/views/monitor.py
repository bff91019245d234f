"""Monitor: throughput, latency percentiles, error rate and cache hit ratio per replica, and the live
drift of a model's inputs against its training data, refreshing themselves."""

from __future__ import annotations

import time
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import state
import widgets
from gateway import GatewayError

HISTORY = 120  # samples kept per chart
WINDOWS = ["5m", "15m", "1h", "6h", "24h"]
DRIFT_COLUMNS = {
    "JS": st.column_config.NumberColumn(
        format="%.3f", help="Jensen-Shannon distance, base 2: 0 same, 1 disjoint"
    ),
    "JS line": st.column_config.NumberColumn(
        format="%.3f", help="What JS must pass here: the configured threshold, or more in a small window"
    ),
    "PSI": st.column_config.NumberColumn(format="%.3f", help="Population stability index"),
    "Wasserstein": st.column_config.NumberColumn(format="%.3f", help="In training standard deviations"),
    "missing": st.column_config.NumberColumn(format="percent"),
    "out of range": st.column_config.NumberColumn(format="percent", help="Outside the training min and max"),
    "unseen": st.column_config.NumberColumn(format="percent", help="Categories never seen in training"),
    "refused": st.column_config.NumberColumn(format="percent", help="Rows refused (422) for this feature"),
}


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


def drift_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per feature, flagged ones first: the distances and the live shares behind each flag."""
    rows = [
        {
            "feature": f["name"],
            "drifted": "yes" if f["flagged"] else "",
            "why": ", ".join(f["reasons"]),
            "JS": f["js"],
            "JS line": f["js_line"],
            "PSI": f["psi"],
            "Wasserstein": f["wasserstein"],
            "missing": f["missing_share"],
            "out of range": f["out_of_range_share"],
            "unseen": f["unseen_share"],
            "refused": f["refused_share"],
        }
        for f in report["features"]
    ]
    return pd.DataFrame(rows).sort_values("drifted", ascending=False, kind="stable")


def histogram_chart(feature: dict[str, Any]) -> alt.Chart:
    """The live shares per bin beside the training ones (shares: the two have different row counts)."""
    bins = feature["histogram"]
    totals = {kind: sum(b[kind] for b in bins) or 1 for kind in ("training", "live")}
    frame = pd.DataFrame(
        [{"bin": b["label"], "rows": kind, "share": b[kind] / totals[kind]} for kind in totals for b in bins]
    )
    colors = alt.Scale(domain=["training", "live"], range=["#b8c2cc", "#e45756"])
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("bin:N", sort=None, title=None, axis=alt.Axis(labelAngle=-30, labelOverlap=False)),
            xOffset=alt.XOffset("rows:N", sort=["training", "live"]),
            y=alt.Y("share:Q", axis=alt.Axis(format="%"), title="share of rows"),
            color=alt.Color("rows:N", scale=colors, title=None),
            tooltip=["bin", "rows", alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=280)
    )


@st.fragment(run_every=state.client().settings.refresh_s)
def drift() -> None:
    st.subheader("Drift: what is served against what the model learned from")
    try:
        model, version = widgets.model_picker(state.tabular_models(), key="drift")
        window = st.radio("Window", WINDOWS, index=1, horizontal=True, key="drift-window")
        report = state.client().drift(model, window, version)
    except GatewayError as exc:
        (st.info if exc.status == 404 else st.error)(str(exc))
        return
    rows, flagged = report["rows"], report["features_flagged"]
    left, middle, right, last = st.columns(4)
    left.metric("Rows served", f"{rows:,}")
    middle.metric("Refused (422)", f"{report['refused_share'] or 0:.1%}")
    right.metric("Features drifted", f"{len(flagged)} of {len(report['features'])}")
    last.metric("Version", report["version"])
    if report["status"] == "insufficient_data":
        st.info(
            f"Too few rows in this window for the distances to mean anything (fewer than "
            f"{report['thresholds']['min_rows']}): nothing is flagged."
        )
    elif flagged:
        st.warning(f"Drifted: {', '.join(flagged)}" + (" (dataset drift)" if report["dataset_drift"] else ""))
    else:
        st.success("No feature has drifted in this window.")
    st.dataframe(drift_table(report), hide_index=True, width="stretch", column_config=DRIFT_COLUMNS)
    names = [f["name"] for f in sorted(report["features"], key=lambda f: not f["flagged"])]
    chosen = st.selectbox("Feature", names, key="drift-feature")
    feature = next(f for f in report["features"] if f["name"] == chosen)
    st.caption(f"{chosen}: live shares per training bin (grey: training, red: live)")
    st.altair_chart(histogram_chart(feature), width="stretch")


st.title("Monitor")
live()
drift()
