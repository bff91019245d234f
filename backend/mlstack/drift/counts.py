"""Live counts of what a replica serves, per loaded version, into its training profile's bins.

Counting is a few list increments per row, on the event loop, before the cache lookup (a hit is traffic
too): one `bisect_left` per number (the profile's binning rule, mlstack.profile.bins) and one dict lookup
per category; batches of many rows are binned a column at a time with numpy. Nothing here waits: the
recorder (drift/recorder.py) takes the counts every few seconds and sends them to Redis.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from mlstack.drift.layout import REFUSED, ROWS, Slots, layout_of
from mlstack.errors import BadInput
from mlstack.profile.bins import BINNING, bin_index
from mlstack.profile.schema import FeatureProfile, Profile
from mlstack.serving.requests import Columns, Inputs, Records
from mlstack.serving.validation import Rows
from mlstack.store.manifest import Feature

COLUMNS_FROM_ROWS = 24
"""From this many rows on, a request is binned a column at a time with numpy, not row by row (about
0.2 µs per value). Churn's 9 features (indicative, under load): 8 rows 11 µs by rows, 26 by columns; 32
rows 44 and 35; 1,000 rows 1,070 and 290."""

Vector = npt.NDArray[np.int64]
Locate = Callable[[Any], int]
LocateColumn = Callable[[Sequence[Any]], npt.NDArray[np.intp]]


class RowCounter(Protocol):
    """What the core tells about the rows it validated: counted, or refused."""

    def count(self, rows: Rows) -> Tally | BatchTally | None: ...

    def refuse(self, inputs: Inputs, error: BadInput) -> None: ...


class Tally:
    """What one request of a few rows added: its answer, remembered and served again, adds it again."""

    __slots__ = ("_added", "_counts")

    def __init__(self, counts: list[int], added: list[int]) -> None:
        self._counts, self._added = counts, added

    def again(self) -> None:
        counts = self._counts
        for i in self._added:
            counts[i] += 1


class BatchTally:
    """What one batch added, as a vector."""

    __slots__ = ("_added", "_counts")

    def __init__(self, counts: Vector, added: Vector) -> None:
        self._counts, self._added = counts, added

    def again(self) -> None:
        self._counts += self._added


class NoCounts:
    """A version without a profile (a recommender, an old version), or counting switched off."""

    def count(self, rows: Rows) -> Tally | BatchTally | None:
        return None

    def refuse(self, inputs: Inputs, error: BadInput) -> None:
        return None


NO_COUNTS = NoCounts()


class LiveCounts:
    """One version's counters, laid out by `layout_of(profile)`: a list of integers that requests of a few
    rows add to one by one, and a numpy vector that batches add to at once."""

    def __init__(self, profile: Profile, inputs: Sequence[Feature]) -> None:
        if profile.binning != BINNING:
            raise ValueError(f"profile binned by {profile.binning!r}; this replica counts {BINNING!r}")
        names = [f.name for f in inputs]
        if names != [f.name for f in profile.features]:
            raise ValueError("the profile's features are not the manifest's inputs")
        self.profile = profile
        self.layout = layout_of(profile)
        self._counts = [0] * len(self.layout)
        self._zeros = [0] * len(self.layout)
        self._batches: Vector = np.zeros(len(self.layout), dtype=np.int64)
        pairs = list(zip(self.layout.features, profile.features, inputs, strict=True))
        self._locators = [_locator(slots, feature, given) for slots, feature, given in pairs]
        self._columns = [_column_locator(slots, feature, given) for slots, feature, given in pairs]
        self._refused_by_name = {s.name: s.refused for s in self.layout.features}

    def count(self, rows: Rows) -> Tally | BatchTally:
        if len(rows) >= COLUMNS_FROM_ROWS:
            return self._count_columns(rows)
        counts, locators = self._counts, self._locators
        added = [ROWS] * len(rows)
        for row in rows.values:
            added.extend(map(operator.call, locators, row))
        for i in added:
            counts[i] += 1
        return Tally(counts, added)

    def _count_columns(self, rows: Rows) -> BatchTally:
        located = [locate(column) for locate, column in zip(self._columns, rows.columns(), strict=True)]
        added: Vector = np.bincount(np.concatenate(located), minlength=len(self.layout)).astype(np.int64)
        added[ROWS] = len(rows)
        self._batches += added
        return BatchTally(self._batches, added)

    @property
    def counts(self) -> list[int]:
        """Everything counted since the last `take`."""
        counts: list[int] = (self._batches + self._counts).tolist()
        return counts

    def refuse(self, inputs: Inputs, error: BadInput) -> None:
        """A request validation refused: all its rows count as refused, and against the feature named."""
        rows = _rows_in(inputs)
        self._counts[REFUSED] += rows
        feature = self._feature_in(error.where)
        if feature is not None:
            self._counts[feature] += rows

    def take(self) -> list[int] | None:
        """The counts so far, leaving zeros (on the event loop, so no count falls between); None if none."""
        if not (self._counts[ROWS] or self._counts[REFUSED] or self._batches[ROWS]):
            return None
        taken = self.counts
        # in place: the tallies of remembered answers keep pointing here
        self._counts[:] = self._zeros
        self._batches[:] = 0
        return taken

    def _feature_in(self, where: str) -> int | None:
        """The refused counter of the feature an error names (`instances[3].contract`), if it names one."""
        named = [name for name in self._refused_by_name if where == name or where.endswith(f".{name}")]
        return self._refused_by_name[max(named, key=len)] if named else None


def _rows_in(inputs: Inputs) -> int:
    if isinstance(inputs, Records):
        return len(inputs.items) if isinstance(inputs.items, list) and inputs.items else 1
    assert isinstance(inputs, Columns)
    return max(inputs.count, 1)


def _range(feature: FeatureProfile) -> tuple[list[float], float, float]:
    if feature.bins is None or feature.stats is None:  # no value in training: one bin for any value
        return [], -math.inf, math.inf
    return feature.bins.edges, feature.stats.min, feature.stats.max


def _locator(slots: Slots, feature: FeatureProfile, given: Feature) -> Locate:
    if slots.kind == "categorical":
        return _categories(slots, feature, given).__getitem__
    edges, low, high = _range(feature)
    first, missing, below, above = slots.first, slots.missing, slots.below, slots.above
    assert below is not None
    assert above is not None

    def locate(value: float | None) -> int:
        if value is None:
            return missing
        if value < low:
            return below
        if value > high:
            return above
        return first + bin_index(edges, value)

    return locate


class _Index(dict[Any, int]):
    """Category → position; a category the version never saw goes to `unseen`, in C for all others."""

    def __init__(self, positions: dict[Any, int], unseen: int) -> None:
        super().__init__(positions)
        self.unseen = unseen

    def __missing__(self, key: Any) -> int:
        return self.unseen


def _categories(slots: Slots, feature: FeatureProfile, given: Feature) -> _Index:
    assert slots.other is not None
    assert slots.unseen is not None
    kept = list(feature.categories.counts) if feature.categories is not None else []
    positions: dict[Any, int] = {None: slots.missing}
    if given.type == "boolean":
        for value, name in ((True, "true"), (False, "false")):
            positions[value] = slots.first + kept.index(name) if name in kept else slots.other
        return _Index(positions, slots.other)
    # without the manifest's list of categories, an unseen one cannot be told from a rare one
    known = given.categories
    positions.update(dict.fromkeys(known or (), slots.other))
    positions.update({name: slots.first + i for i, name in enumerate(kept)})
    return _Index(positions, slots.unseen if known is not None else slots.other)


def _column_locator(slots: Slots, feature: FeatureProfile, given: Feature) -> LocateColumn:
    """The positions of a whole column's values, by the same rule as the row locators."""
    if slots.kind == "categorical":
        index = _categories(slots, feature, given)
        return lambda column: np.fromiter(map(index.__getitem__, column), dtype=np.intp, count=len(column))
    edges, low, high = _range(feature)
    # One search over [just below the minimum, the edges..., the maximum], closed on the right like the
    # bins: 0 is below the range, 1 + bin_index(edges, v) within it, the last above it (and NaN).
    cuts = np.array([np.nextafter(low, -np.inf), *edges, high], dtype=np.float64)
    table = np.array([slots.below, *slots.values, slots.above], dtype=np.intp)
    missing, nullable = slots.missing, given.nullable

    def locate(column: Sequence[Any]) -> npt.NDArray[np.intp]:
        values = np.array(column, dtype=np.float64)  # None becomes NaN
        positions = table[np.searchsorted(cuts, values, side="left")]
        if nullable:
            positions[np.isnan(values)] = missing
        return positions

    return locate
