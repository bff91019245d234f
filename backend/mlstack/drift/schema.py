"""The drift route's answer (`GET /v1/models/{model}/drift`): one model version's live rows over a window,
merged from every replica, against its training profile."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Reason = Literal["js", "psi", "wasserstein", "missing", "out_of_range", "unseen", "refused"]
Status = Literal["insufficient_data", "no_drift", "drift"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    asked_s: int
    """The window asked for, in seconds."""
    since: int
    """Start of the oldest bucket read (epoch seconds): whole buckets, so up to one bucket more than asked."""
    until: float
    """When the counts were read (epoch seconds); the newest bucket is still filling."""
    bucket_s: int


class Thresholds(_Strict):
    """The configured lines (BACKEND_DRIFT_*). A distance is flagged above the larger of its line and the
    value a window of this size passes by chance (see `FeatureDrift.js_line`)."""

    js: float
    psi: float
    wasserstein: float
    wasserstein_min_rows: int
    missing: float
    out_of_range: float
    unseen: float
    refused: float
    drifted_share: float
    alpha: float
    """Chance of any false flag in a window without drift, shared among the features (Bonferroni)."""
    min_rows: int


class HistogramBin(_Strict):
    label: str
    training: int
    live: int


class FeatureDrift(_Strict):
    name: str
    kind: Literal["numeric", "categorical"]
    rows: int
    """Live rows counted (missing values included)."""
    js: float | None
    """Jensen-Shannon distance, base 2, in [0, 1], over the bins and the missing bin."""
    js_line: float
    """What `js` must pass to be flagged here: max(Thresholds.js, the chance value for this window)."""
    psi: float | None
    """Population stability index over the same bins, 0.5 added to every bin count on both sides."""
    psi_line: float
    wasserstein: float | None
    """Numbers: Wasserstein-1 over the bins (placed at their training means) divided by the training std."""
    missing_share: float | None
    training_missing_share: float
    out_of_range_share: float | None
    """Numbers: the share of present live values below the training minimum or above the maximum."""
    unseen_share: float | None
    """Categories: the share of live rows with a category the version never saw in training."""
    refused_rows: int
    """Rows refused by validation (422) for a value of this feature."""
    refused_share: float | None
    flagged: bool
    reasons: list[Reason]
    histogram: list[HistogramBin]
    """The profile's bins (values outside the training range in the outer ones), then `(other)` or
    `(unseen)` for categories, then `(missing)`."""


class DriftReport(_Strict):
    model: str
    version: str
    window: Window
    status: Status
    """`insufficient_data` below `min_rows` rows in the window: distances are given, nothing is flagged."""
    rows: int
    """Rows served in the window by every replica (cache hits included)."""
    refused_rows: int
    """Rows refused by validation (422) in the window."""
    refused_share: float | None
    training_rows: int
    features_flagged: list[str]
    drifted_share: float
    """Share of the features flagged."""
    dataset_drift: bool
    """drifted_share at or above Thresholds.drifted_share."""
    thresholds: Thresholds
    features: list[FeatureDrift]
