"""A window's summed live counts against the training profile: per feature the distances, the shares, and
whether it is flagged; a window with too few rows says so and flags nothing."""

from __future__ import annotations

from dataclasses import dataclass

from mlstack.drift import scores
from mlstack.drift.layout import REFUSED, ROWS, Layout, Slots
from mlstack.drift.schema import DriftReport, FeatureDrift, HistogramBin, Reason, Thresholds, Window
from mlstack.profile.schema import FeatureProfile, Profile
from mlstack.settings import Settings

WASSERSTEIN_MIN_ROWS = 1000
"""Binned Wasserstein has no closed-form chance line: it flags only when both the training data and the
window have this many present values (on a skewed feature, 0.1 is its no-drift 99th percentile at 500)."""


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        js=settings.drift_js_threshold,
        psi=settings.drift_psi_threshold,
        wasserstein=settings.drift_wasserstein_threshold,
        wasserstein_min_rows=WASSERSTEIN_MIN_ROWS,
        missing=settings.drift_missing_threshold,
        out_of_range=settings.drift_out_of_range_threshold,
        unseen=settings.drift_unseen_threshold,
        refused=settings.drift_refused_threshold,
        drifted_share=settings.drift_share_threshold,
        alpha=settings.drift_alpha,
        min_rows=settings.drift_min_rows,
    )


@dataclass(frozen=True, slots=True)
class _Totals:
    """The window's row counts that every feature's shares are taken of."""

    rows: int
    refused: int
    limits: Thresholds
    training_rows: int
    alpha: float
    """Per feature: the family-wise alpha shared among the features."""

    @property
    def seen(self) -> int:
        return self.rows + self.refused


def drift_report(
    model: str,
    version: str,
    profile: Profile,
    layout: Layout,
    counts: list[int],
    window: Window,
    limits: Thresholds,
) -> DriftReport:
    features = len(layout.features)
    totals = _Totals(counts[ROWS], counts[REFUSED], limits, profile.rows, limits.alpha / max(features, 1))
    scored = [
        _feature(slots, feature, counts, totals)
        for slots, feature in zip(layout.features, profile.features, strict=True)
    ]
    flagged = [f.name for f in scored if f.flagged]
    share = len(flagged) / features if features else 0.0
    enough = totals.seen >= limits.min_rows
    return DriftReport(
        model=model,
        version=version,
        window=window,
        status="insufficient_data" if not enough else "drift" if flagged else "no_drift",
        rows=totals.rows,
        refused_rows=totals.refused,
        refused_share=totals.refused / totals.seen if totals.seen else None,
        training_rows=profile.rows,
        features_flagged=flagged,
        drifted_share=share,
        dataset_drift=share >= limits.drifted_share and bool(flagged),
        thresholds=limits,
        features=scored,
    )


def _histograms(
    slots: Slots, feature: FeatureProfile, counts: list[int]
) -> tuple[list[str], list[int], list[int]]:
    """Labels, training counts and live counts: value bins, (other) for categories, then (missing)."""
    live = counts[slots.first : slots.first + slots.bins]
    if slots.kind == "numeric":
        assert slots.below is not None
        assert slots.above is not None
        if feature.bins is not None:
            labels, training = list(feature.bins.labels), list(feature.bins.counts)
        else:
            labels, training = ["all values"], [0]
        live[0] += counts[slots.below]  # beyond the training range: in the open-ended outer bins
        live[-1] += counts[slots.above]
    else:
        assert slots.other is not None
        assert slots.unseen is not None
        categories = feature.categories
        labels = [*categories.counts, "(other)"] if categories is not None else ["(other)"]
        training = [*categories.counts.values(), categories.other] if categories is not None else [0]
        live.append(counts[slots.other] + counts[slots.unseen])
    return [*labels, "(missing)"], [*training, feature.missing], [*live, counts[slots.missing]]


def _feature(slots: Slots, feature: FeatureProfile, counts: list[int], totals: _Totals) -> FeatureDrift:
    labels, training, live = _histograms(slots, feature, counts)
    rows, missing, limits = sum(live), counts[slots.missing], totals.limits
    bins = scores.bins_in_play(training, live)
    js_line = max(limits.js, scores.js_line(bins, totals.training_rows, rows, totals.alpha))
    psi_line = max(limits.psi, scores.psi_line(bins, totals.training_rows, rows, totals.alpha))
    js, psi = scores.jensen_shannon(training, live), scores.psi(training, live)
    refused = counts[slots.refused]
    shares = _shares(slots, counts, rows, missing)
    wasserstein = _wasserstein(feature, training[:-1], live[:-1])
    reasons: list[Reason] = []
    if rows >= limits.min_rows:
        reasons += ["js"] if js is not None and js > js_line else []
        reasons += ["psi"] if psi is not None and psi > psi_line else []
        if wasserstein is not None and min(feature.count, rows - missing) >= WASSERSTEIN_MIN_ROWS:
            reasons += ["wasserstein"] if wasserstein > limits.wasserstein else []
        if abs(missing / rows - feature.missing_share) > limits.missing:
            reasons.append("missing")
        reasons += ["out_of_range"] if (shares[0] or 0.0) > limits.out_of_range else []
        reasons += ["unseen"] if (shares[1] or 0.0) > limits.unseen else []
    refused_share = refused / totals.seen if totals.seen else None
    if totals.seen >= limits.min_rows and refused_share is not None and refused_share > limits.refused:
        reasons.append("refused")
    return FeatureDrift(
        name=slots.name,
        kind=slots.kind,
        rows=rows,
        js=js,
        js_line=js_line,
        psi=psi,
        psi_line=psi_line,
        wasserstein=wasserstein,
        missing_share=missing / rows if rows else None,
        training_missing_share=feature.missing_share,
        out_of_range_share=shares[0],
        unseen_share=shares[1],
        refused_rows=refused,
        refused_share=refused_share,
        flagged=bool(reasons),
        reasons=reasons,
        histogram=[
            HistogramBin(label=label, training=t, live=n)
            for label, t, n in zip(labels, training, live, strict=True)
        ],
    )


def _shares(slots: Slots, counts: list[int], rows: int, missing: int) -> tuple[float | None, float | None]:
    """(out of range among present values, for numbers; unseen among rows, for categories)."""
    if slots.kind == "numeric":
        assert slots.below is not None
        assert slots.above is not None
        present = rows - missing
        beyond = counts[slots.below] + counts[slots.above]
        return (beyond / present if present else None), None
    assert slots.unseen is not None
    return None, (counts[slots.unseen] / rows if rows else None)


def _wasserstein(feature: FeatureProfile, training: list[int], live: list[int]) -> float | None:
    if feature.bins is None or feature.stats is None:
        return None
    means, edges = feature.bins.means, feature.bins.edges
    # every bin has training mass by the binning rule; an edge stands in should one ever be empty
    points = [m if m is not None else edges[min(i, len(edges) - 1)] for i, m in enumerate(means)]
    return scores.wasserstein(points, training, live, feature.stats.std)
