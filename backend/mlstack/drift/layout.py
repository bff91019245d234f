"""Where each live counter sits: one flat list of integers per model version, and the field name each
position has in Redis. The replica counts into it and the drift route reads it back, both from the same
layout, built from the version's profile.

Per row: `n`, or `refused` for a row validation refused (422). Per feature, after its value bins:
- a number: `{name}:b{i}` for the profile's bins, then `na`, `lo` (below the training minimum, counted
  here *instead of* bin 0) and `hi` (above the maximum, instead of the top bin), then `refused`;
- a category: `{name}:c{i}` for the profile's kept categories, then `other` (a training category too
  rare to keep), `unseen` (a category the version never saw), `na`, then `refused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlstack.profile.schema import FeatureProfile, Profile

ROWS = 0
REFUSED = 1
GLOBAL_FIELDS = ("n", "refused")


@dataclass(frozen=True, slots=True)
class Slots:
    """One feature's positions in the flat list."""

    name: str
    kind: Literal["numeric", "categorical"]
    first: int
    """The first value bin; the feature has `bins` of them."""
    bins: int
    missing: int
    refused: int
    below: int | None = None
    above: int | None = None
    other: int | None = None
    unseen: int | None = None

    @property
    def values(self) -> range:
        return range(self.first, self.first + self.bins)


@dataclass(frozen=True, slots=True)
class Layout:
    fields: tuple[str, ...]
    features: tuple[Slots, ...]

    def __len__(self) -> int:
        return len(self.fields)


def layout_of(profile: Profile) -> Layout:
    fields = list(GLOBAL_FIELDS)
    slots = []
    for feature in profile.features:
        slots.append(_slots(feature, len(fields)))
        fields.extend(_suffixed(feature))
    return Layout(tuple(fields), tuple(slots))


def value_bins(feature: FeatureProfile) -> int:
    if feature.kind == "numeric":
        return len(feature.bins.counts) if feature.bins is not None else 1
    return len(feature.categories.counts) if feature.categories is not None else 0


def _suffixed(feature: FeatureProfile) -> list[str]:
    bins = value_bins(feature)
    if feature.kind == "numeric":
        names = [f"b{i}" for i in range(bins)] + ["na", "lo", "hi", "refused"]
    else:
        names = [f"c{i}" for i in range(bins)] + ["other", "unseen", "na", "refused"]
    return [f"{feature.name}:{suffix}" for suffix in names]


def _slots(feature: FeatureProfile, first: int) -> Slots:
    bins = value_bins(feature)
    after = first + bins
    if feature.kind == "numeric":
        return Slots(feature.name, "numeric", first, bins, after, after + 3, below=after + 1, above=after + 2)
    return Slots(
        feature.name, "categorical", first, bins, after + 2, after + 3, other=after, unseen=after + 1
    )
