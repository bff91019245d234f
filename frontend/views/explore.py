"""Explore: the data a model version was trained on (its profile): each feature's distribution, how the
target moves with it, and the correlations between the numbers."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import state
import widgets
from gateway import GatewayError


def feature_table(profile: dict[str, Any]) -> pd.DataFrame:
    """One row per feature, the most informative about the target first."""
    rows = []
    for feature in profile["features"]:
        relation = feature["target"] or {}
        strength = next(
            (
                f"{name} {relation[key]:+.3f}"
                for key, name in (("cramers_v", "V"), ("correlation_ratio", "η"), ("pearson", "r"))
                if relation.get(key) is not None
            ),
            "",
        )
        rows.append(
            {
                "feature": feature["name"],
                "type": feature["type"],
                "missing": feature["missing_share"],
                "distinct": feature["distinct"],
                "mutual information": relation.get("mutual_information"),
                "relation": strength,
            }
        )
    return pd.DataFrame(rows).sort_values("mutual information", ascending=False, na_position="last")


def distribution_chart(feature: dict[str, Any]) -> alt.Chart:
    if feature["distribution"] is not None:
        edges, counts = feature["distribution"]["edges"], feature["distribution"]["counts"]
        frame = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "rows": counts})
        return (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("from:Q", title=feature["name"]),
                x2="to:Q",
                y="rows:Q",
                y2=alt.datum(0),  # columns stand on the axis
                tooltip=["from", "to", "rows"],
            )
            .properties(height=260)
        )
    categories = dict(feature["categories"]["counts"])
    if feature["categories"]["other"]:
        categories["(other)"] = feature["categories"]["other"]
    frame = pd.DataFrame({"category": list(categories), "rows": list(categories.values())})
    bars = alt.Chart(frame).mark_bar().encode(y=_labels("category"), x="rows:Q", tooltip=["rows"])
    return bars.properties(height=max(260, 24 * len(frame)))


def _labels(field: str) -> alt.Y:
    """A band axis that shows every label: bins and categories are few and each one matters."""
    return alt.Y(f"{field}:N", sort=None, title=None, axis=alt.Axis(labelOverlap=False))


def relation_chart(profile: dict[str, Any], feature: dict[str, Any], klass: str | None) -> alt.LayerChart:
    """The target per bin or category: a class's share (classifiers) or the mean target (regressors)."""
    relation = feature["target"]
    values = relation["class_shares"][klass] if klass is not None else relation["target_mean"]
    frame = pd.DataFrame({"bin": relation["bins"], "rows": relation["rows"], "value": values})
    frame = frame[frame["rows"] > 0]
    overall = overall_value(profile, klass)
    title = f"share of {profile['target']['name']} = {klass}" if klass is not None else "mean target"
    bars = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=_labels("bin"),
            x=alt.X("value:Q", title=title),
            tooltip=["bin", "rows", alt.Tooltip("value:Q", format=".4g")],
        )
    )
    rule = alt.Chart(pd.DataFrame({"overall": [overall]})).mark_rule(color="#e45756").encode(x="overall:Q")
    return (bars + rule).properties(height=max(260, 24 * len(frame)))


def overall_value(profile: dict[str, Any], klass: str | None) -> float:
    target = profile["target"]
    if klass is None:
        return float(target["stats"]["mean"])
    return float(target["categories"]["counts"][klass] / profile["rows"])


def heatmap(correlations: dict[str, Any], method: str) -> alt.LayerChart:
    names = correlations["features"]
    cells = [
        {"row": names[i], "column": names[j], "r": value}
        for i, values in enumerate(correlations[method])
        for j, value in enumerate(values)
    ]
    base = alt.Chart(pd.DataFrame(cells)).encode(
        x=alt.X("column:N", sort=names, title=None), y=alt.Y("row:N", sort=names, title=None)
    )
    scale = alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True)
    heat = base.mark_rect().encode(color=alt.Color("r:Q", scale=scale), tooltip=["row", "column", "r"])
    text = base.mark_text(fontSize=11).encode(text=alt.Text("r:Q", format=".2f"))
    return (heat + text).properties(height=40 * len(names) + 40)


st.title("Explore")
st.caption("The data a model version learned from: its profile, published with the version.")
try:
    model, version = widgets.model_picker(state.tabular_models(), key="explore")
    profile = state.profile(model, version)
except GatewayError as exc:
    (st.info if exc.status == 404 else st.error)(str(exc))
    st.stop()

left, middle, right, last = st.columns(4)
left.metric("Rows", f"{profile['rows']:,}")
middle.metric("Features", len(profile["features"]))
right.metric("Target", profile["target"]["name"])
last.metric("Task", profile["task"])

st.subheader("Features by mutual information with the target")
st.dataframe(
    feature_table(profile).style.format({"missing": "{:.1%}", "mutual information": "{:.4f}"}, na_rep="n/a"),
    hide_index=True,
    width="stretch",
)

st.subheader("One feature")
names = [f["name"] for f in profile["features"]]
chosen = st.selectbox("Feature", names, key="explore-feature")
feature = next(f for f in profile["features"] if f["name"] == chosen)
klass = profile["focus_class"]
classes = list((profile["target"].get("categories") or {}).get("counts", {}))
if len(classes) > 2:
    klass = st.selectbox("Class", classes, index=classes.index(klass), key="explore-class")
facts, values, relation = st.columns([1, 2, 2])
facts.metric("Missing", f"{feature['missing_share']:.1%}")
facts.metric("Distinct", f"{feature['distinct']:,}")
if feature["stats"] is not None:
    facts.metric("Median", f"{feature['stats']['quantiles']['0.5']:.4g}")
with values:
    st.caption("Distribution")
    if feature["distribution"] is not None or feature["categories"] is not None:
        st.altair_chart(distribution_chart(feature), width="stretch")
with relation:
    st.caption(f"{profile['target']['name']} per {'bin' if feature['kind'] == 'numeric' else 'category'}")
    st.altair_chart(relation_chart(profile, feature, klass), width="stretch")

if profile["correlations"] is not None:
    st.subheader("Correlations between numeric features")
    method = st.radio("Method", ["pearson", "spearman"], horizontal=True, key="explore-correlation")
    st.altair_chart(heatmap(profile["correlations"], method), width="stretch")
