"""The profile's one shape (`profile.json` of a version): the training command writes it, the replica serves
and will count live rows against it, the UI and the report draw it.

Deterministic: the same data set gives the same bytes (no clock, no unseeded randomness).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlstack.profile.bins import BINNING, OTHER, bin_index
from mlstack.store.manifest import FeatureType

PROFILE_FORMAT = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericStats(_Strict):
    """Over the present values, as pandas computes them (std with ddof=1, linear quantiles)."""

    min: float
    max: float
    mean: float
    std: float | None
    """None with a single value."""
    quantiles: dict[str, float]
    """Probability ("0.01" ... "0.99") to value."""


class Bins(_Strict):
    """Counts on fixed edges from the training deciles (mlstack.profile.bins has the rule): bin 0 is
    (-inf, edges[0]], bin i is (edges[i-1], edges[i]], the last is (edges[-1], +inf). Live rows are
    counted into exactly these bins, plus below `NumericStats.min`, above `.max`, and missing."""

    edges: list[float]
    counts: list[int]
    means: list[float | None]
    """Mean of the training values in each bin (None if empty): support points for a Wasserstein distance."""
    labels: list[str]

    def index(self, value: float) -> int:
        return bin_index(self.edges, value)


class Distribution(_Strict):
    """For the eye, not for drift: equal-width bins from min to max (one per value for small integers);
    bin i is [edges[i], edges[i+1]), the last one closed."""

    edges: list[float]
    counts: list[int]


class Categories(_Strict):
    """Counts per category. The kept categories (at most 30, each at least 0.5 % of the rows, most frequent
    first) have a bin each; the rarer ones share `other`. A live value outside the manifest's categories
    is *unseen*; it is counted apart and, for distances, with `other`."""

    counts: dict[str, int]
    other: int = 0
    """Rows whose category was too rare to keep."""
    other_distinct: int = 0
    """How many categories share `other`."""

    def key(self, value: str) -> str:
        return value if value in self.counts else OTHER


class TargetRelation(_Strict):
    """The target within the feature's bins (numbers) or categories ("other" last), then "missing"; and
    the strength of the relation, by the measures that fit the two types (the others are None)."""

    bins: list[str]
    rows: list[int]
    class_shares: dict[str, list[float | None]] | None = None
    """Classifiers: per class, its share of the rows in each bin (None for an empty bin)."""
    target_mean: list[float | None] | None = None
    """Regressors: the mean target in each bin."""
    cramers_v: float | None = None
    """Classifiers: Cramér's V of feature bins × classes, with Bergsma's bias correction, in [0, 1]."""
    correlation_ratio: float | None = None
    """Regressors, categorical feature: η, the root of the target variance's share between categories."""
    pearson: float | None = None
    """Number × numeric target (a binary target as 0/1, the point-biserial correlation)."""
    spearman: float | None = None
    mutual_information: float | None = None
    """In nats, by scikit-learn: exact for discrete feature and classes, k-nearest-neighbour otherwise."""


class FeatureProfile(_Strict):
    """One column: counts, then either numbers (stats, bins, distribution) or categories."""

    name: str
    type: FeatureType
    """As in the manifest's inputs; booleans are profiled as the categories "true" and "false"."""
    kind: Literal["numeric", "categorical"]
    count: int
    """Present values (pandas' count)."""
    missing: int
    missing_share: float
    distinct: int
    stats: NumericStats | None = None
    bins: Bins | None = None
    distribution: Distribution | None = None
    categories: Categories | None = None
    target: TargetRelation | None = None
    """How the target behaves across this feature; None for the target itself."""


class Correlations(_Strict):
    """Between the numeric and boolean features (booleans as 0/1), over the rows where both are present."""

    features: list[str]
    pearson: list[list[float | None]]
    spearman: list[list[float | None]]


class Profile(_Strict):
    """A data set's profile: what a model version learned from, or what `mlstack profile` was given."""

    format_version: int = PROFILE_FORMAT
    binning: str = BINNING
    source: str
    """The demo set's name or the CSV file's name."""
    data_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    rows: int
    """Rows with a target: the rows every figure is computed on."""
    task: Literal["classification", "regression"]
    target: FeatureProfile
    """The target column itself: class counts for a classifier, numbers for a regressor."""
    focus_class: str | None = None
    """The class whose rate charts show: scikit-learn's positive class (the second of two sorted labels),
    or the rarest class of several."""
    features: list[FeatureProfile]
    correlations: Correlations | None = None

    def feature(self, name: str) -> FeatureProfile | None:
        return next((f for f in self.features if f.name == name), None)
