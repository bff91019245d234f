"""Models: every model and version, metrics and plots from the manifest, training facts, promote/rollback."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

import state
from gateway import GatewayError

HEADLINE = ("roc_auc", "pr_auc", "f1", "accuracy", "precision", "recall", "mae", "rmse", "r2")
RANKING = ("ndcg_at_10", "recall_at_10", "hit_rate_at_10", "coverage_at_10")


def show_version(manifest: dict[str, Any], current: str | None) -> None:
    metrics = manifest["metrics"]
    marker = " — current" if manifest["version"] == current else ""
    st.subheader(f"{manifest['model']} version {manifest['version']}{marker}")
    shown = [name for name in HEADLINE + RANKING if name in metrics]
    baseline = metrics.get("baseline_popularity", {})
    for column, name in zip(st.columns(len(shown) or 1), shown, strict=False):
        delta = f"{metrics[name] - baseline[name]:+.3f} vs popularity" if name in baseline else None
        column.metric(name.upper().replace("_", " "), f"{metrics[name]:.3f}", delta=delta)
    if "candidates" in metrics:
        candidates(metrics["candidates"])
    left, right = st.columns(2)
    with left:
        if "confusion_matrix" in metrics:
            confusion_matrix(metrics["confusion_matrix"], metrics.get("confusion_matrix_labels"))
        elif "residuals" in metrics:
            residuals(metrics["residuals"])
    with right:
        if "roc_curve" in metrics:
            roc_curve(metrics["roc_curve"], metrics.get("roc_auc"))
    training = manifest["training"]
    st.caption("Training")
    facts = {
        "source": training["source"],
        "target": training["target"],
        "rows": training["rows"],
        "train / test rows": f"{training['train_rows']} / {training['test_rows']}",
        "estimator": training["estimator"],
        "hyper-parameters": str(training["params"]),
        "seconds": training["seconds"],
        "created": manifest["created_at"],
        "scikit-learn": manifest["runtime"]["sklearn"],
        "sha256": manifest["artifact"]["sha256"][:16] + "…",
    }
    st.table(pd.DataFrame({"fact": list(facts), "value": [str(v) for v in facts.values()]}).set_index("fact"))


def candidates(figures: dict[str, dict[str, float]]) -> None:
    """Each candidate family of a recommender on the held-out interactions."""
    st.caption("Candidates on held-out interactions (the popularity baseline included)")
    frame = pd.DataFrame(figures).T[list(RANKING)]
    st.dataframe(frame.style.format("{:.3f}"), width="stretch")


def confusion_matrix(matrix: list[list[int]], labels: list[Any] | None) -> None:
    labels = [str(x) for x in (labels or range(len(matrix)))]
    cells = [
        {"actual": labels[i], "predicted": labels[j], "count": n}
        for i, row in enumerate(matrix)
        for j, n in enumerate(row)
    ]
    base = alt.Chart(pd.DataFrame(cells)).encode(x="predicted:N", y="actual:N")
    heat = base.mark_rect().encode(color=alt.Color("count:Q", legend=None))
    text = base.mark_text(fontSize=16).encode(text="count:Q")
    st.caption("Confusion matrix (held-out test set)")
    st.altair_chart((heat + text).properties(height=260), width="stretch")


def roc_curve(curve: dict[str, list[float]], auc: float | None) -> None:
    frame = pd.DataFrame({"false positive rate": curve["fpr"], "true positive rate": curve["tpr"]})
    st.caption(f"ROC curve (AUC {auc:.3f})" if auc is not None else "ROC curve")
    line = alt.Chart(frame).mark_line().encode(x="false positive rate:Q", y="true positive rate:Q")
    st.altair_chart(line.properties(height=260), width="stretch")


def residuals(points: dict[str, list[float]]) -> None:
    frame = pd.DataFrame({"actual": points["y_true"], "predicted": points["y_pred"]})
    frame["residual"] = frame["actual"] - frame["predicted"]
    st.caption("Residuals (held-out test set)")
    dots = alt.Chart(frame).mark_circle(size=30).encode(x="predicted:Q", y="residual:Q")
    st.altair_chart(dots.properties(height=260), width="stretch")


def admin_actions(model: dict[str, Any], version: str) -> None:
    client = state.client()
    if not client.is_admin:
        return
    left, right = st.columns(2)
    try:
        promote = left.button(
            f"Make version {version} current",
            disabled=version == model["current"],
            key=f"promote-{model['name']}",
        )
        if promote:
            client.promote(model["name"], version)
            st.success(f"{model['name']} now serves version {version}")
        if right.button("Roll back to the previous version", key=f"rollback-{model['name']}"):
            client.rollback(model["name"])
            st.success("rolled back")
    except GatewayError as exc:
        st.error(str(exc))


st.title("Models")
try:
    catalogue = state.models()
except GatewayError as exc:
    st.error(str(exc))
    st.stop()
st.dataframe(
    pd.DataFrame(
        [
            {
                "model": m["name"],
                "task": m["task"],
                "current": m["current"],
                "versions": ", ".join(m["versions"]),
            }
            for m in catalogue
        ]
    ),
    hide_index=True,
    width="stretch",
)
for model in catalogue:
    with st.expander(f"{model['name']} ({model['task']})", expanded=model is catalogue[0]):
        version = st.selectbox("Version", list(reversed(model["versions"])), key=f"models-{model['name']}")
        try:
            show_version(state.manifest(model["name"], version), model["current"])
        except GatewayError as exc:
            st.error(str(exc))
        admin_actions(model, version)
