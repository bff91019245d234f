"""Live counting into a version's profile bins: the very rule the profile was built with, row by row and a
column at a time alike; out-of-range, missing, other and unseen apart; refusals named by feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlstack.drift.counts import COLUMNS_FROM_ROWS, LiveCounts
from mlstack.drift.layout import REFUSED, ROWS, Slots
from mlstack.errors import BadInput
from mlstack.profile.schema import Profile
from mlstack.serving.requests import Columns, Records
from mlstack.serving.validation import Rows, Validator
from mlstack.store.manifest import Manifest
from mlstack.store.model_store import ModelStore
from mlstack.training.datasets import demo_dataset


@pytest.fixture(scope="module")
def churn(trained_store: Path) -> tuple[Manifest, Profile]:
    store = ModelStore(trained_store)
    profile = store.profile("churn", "1")
    assert profile is not None
    return store.manifest("churn", "1"), profile


def rows_of(manifest: Manifest, instances: list[dict[str, Any]]) -> Rows:
    return Validator(manifest, 100_000, 256).rows(instances)


def training_instances(rows: int) -> list[dict[str, Any]]:
    """The churn demo's training rows (seed 0, 800 rows, as trained_store), as JSON would send them."""
    frame = demo_dataset("churn", rows=rows, seed=0).frame.drop(columns=["churned"])
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def slots(counts: LiveCounts, name: str) -> Slots:
    return next(s for s in counts.layout.features if s.name == name)


def test_the_training_rows_counted_live_give_the_profiles_counts(churn: tuple[Manifest, Profile]) -> None:
    manifest, profile = churn
    by_columns, by_rows = LiveCounts(profile, manifest.inputs), LiveCounts(profile, manifest.inputs)
    instances = training_instances(profile.rows)

    by_columns.count(rows_of(manifest, instances))
    for instance in instances:
        by_rows.count(rows_of(manifest, [instance]))

    assert by_rows.counts == by_columns.counts
    assert by_columns.counts[ROWS] == profile.rows
    for feature in profile.features:
        place = slots(by_columns, feature.name)
        expected = feature.bins.counts if feature.bins else list(feature.categories.counts.values())
        assert by_columns.counts[place.first : place.first + place.bins] == expected, feature.name
        assert by_columns.counts[place.missing] == feature.missing, feature.name
        outside = [place.below, place.above, place.unseen]
        assert all(by_columns.counts[i] == 0 for i in outside if i is not None), feature.name


def test_edges_bounds_and_beyond_land_alike_row_by_row_and_by_columns(
    churn: tuple[Manifest, Profile],
) -> None:
    manifest, profile = churn
    charges = profile.feature("total_charges")
    assert charges is not None
    assert charges.bins is not None
    assert charges.stats is not None
    low, high, edges = charges.stats.min, charges.stats.max, charges.bins.edges
    values = [low, *edges, high, low - 1, high + 1, None, *(e + 1e-9 for e in edges)]
    base = training_instances(1)[0]
    instances = [{**base, "total_charges": value} for value in values] * 3  # enough for the column path
    assert len(instances) >= COLUMNS_FROM_ROWS
    by_columns, by_rows = LiveCounts(profile, manifest.inputs), LiveCounts(profile, manifest.inputs)

    by_columns.count(rows_of(manifest, instances))
    for instance in instances:
        by_rows.count(rows_of(manifest, [instance]))

    place = slots(by_rows, "total_charges")
    bins = by_rows.counts[place.first : place.first + place.bins]
    assert by_rows.counts == by_columns.counts
    # an edge closes its bin and a hair above it opens the next: the minimum and the first edge in bin 0,
    # the maximum and a hair above the last edge in the top bin, so each bin gets two values (thrice)
    assert bins == [6] * (len(edges) + 1)
    assert (by_rows.counts[place.below], by_rows.counts[place.above]) == (3, 3)
    assert by_rows.counts[place.missing] == 3


def test_categories_kept_rare_unseen_and_booleans(churn: tuple[Manifest, Profile]) -> None:
    manifest, profile = churn
    open_inputs = [f.model_copy(update={"reject_unknown": False}) for f in manifest.inputs]
    counts = LiveCounts(profile, open_inputs)
    base = training_instances(1)[0]
    kept = list(profile.feature("contract").categories.counts)
    instances = [
        {**base, "contract": kept[0], "senior_citizen": True},
        {**base, "contract": "Three year", "senior_citizen": False},
        {**base, "contract": "Three year", "senior_citizen": False},
    ]

    counts.count(Validator(manifest.model_copy(update={"inputs": open_inputs}), 10, 256).rows(instances))

    contract, senior = slots(counts, "contract"), slots(counts, "senior_citizen")
    assert counts.counts[contract.first] == 1
    assert (counts.counts[contract.unseen], counts.counts[contract.other]) == (2, 0)
    senior_kept = list(profile.feature("senior_citizen").categories.counts)
    assert counts.counts[senior.first + senior_kept.index("true")] == 1
    assert counts.counts[senior.first + senior_kept.index("false")] == 2


def test_a_refused_request_counts_all_its_rows_against_the_feature_named(
    churn: tuple[Manifest, Profile],
) -> None:
    manifest, profile = churn
    counts = LiveCounts(profile, manifest.inputs)
    instances = training_instances(5)

    counts.refuse(Records(instances), BadInput("instances[3].contract", "unknown category"))
    counts.refuse(Columns({}, 4), BadInput("inputs.payment_method", "datatype FP64 does not fit"))
    counts.refuse(Records("not a list"), BadInput("instances", "must be a list"))

    assert counts.counts[REFUSED] == 5 + 4 + 1
    assert counts.counts[slots(counts, "contract").refused] == 5
    assert counts.counts[slots(counts, "payment_method").refused] == 4
    assert counts.counts[ROWS] == 0


def test_take_leaves_zeros_and_a_tally_adds_again_into_the_same_counters(
    churn: tuple[Manifest, Profile],
) -> None:
    manifest, profile = churn
    counts = LiveCounts(profile, manifest.inputs)
    assert counts.take() is None
    tally = counts.count(rows_of(manifest, training_instances(2)))
    first = counts.take()

    tally.again()

    assert first is not None
    assert first[ROWS] == 2
    assert counts.counts == first  # the same rows again, into the fresh counts
