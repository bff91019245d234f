"""Distances, chance lines and flags of a drift report, on counts: bounds, known values, and how often a
window without drift is flagged (the research note's simulations, redone on the churn profile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlstack.drift import scores
from mlstack.drift.layout import REFUSED, ROWS, Layout, layout_of
from mlstack.drift.report import drift_report, thresholds
from mlstack.drift.schema import DriftReport, Window
from mlstack.profile.bins import bin_indices, decile_edges
from mlstack.profile.schema import Profile
from mlstack.settings import Settings
from mlstack.store.model_store import ModelStore

WINDOW = Window(asked_s=900, since=0, until=900.0, bucket_s=60)


@pytest.fixture(scope="module")
def profile(trained_store: Path) -> Profile:
    found = ModelStore(trained_store).profile("churn", "1")
    assert found is not None
    return found


def test_jensen_shannon_is_zero_for_equal_shares_and_one_for_disjoint_ones() -> None:
    assert scores.jensen_shannon([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0, abs=1e-9)
    assert scores.jensen_shannon([5, 0], [0, 7]) == pytest.approx(1.0)
    assert scores.jensen_shannon([5, 5], [0, 0]) is None


def test_psi_is_finite_with_a_bin_empty_in_training() -> None:
    unseen = scores.psi([500, 300, 200, 0], [475, 285, 190, 50])

    assert unseen is not None
    assert 0 < unseen < 1
    assert scores.psi([10, 20], [10, 20]) == pytest.approx(0.0, abs=1e-12)


def test_wasserstein_of_a_one_std_shift_is_about_one() -> None:
    rng = np.random.default_rng(1)
    training, live = rng.normal(0, 1, 100_000), rng.normal(1, 1, 20_000)
    edges = decile_edges(training)
    training_bins = np.bincount(bin_indices(edges, training), minlength=len(edges) + 1)
    live_bins = np.bincount(bin_indices(edges, live), minlength=len(edges) + 1)
    means = np.bincount(bin_indices(edges, training), weights=training) / training_bins

    shifted = scores.wasserstein(
        means.tolist(), training_bins.tolist(), live_bins.tolist(), float(training.std())
    )
    same = scores.wasserstein(means.tolist(), training_bins.tolist(), training_bins.tolist(), 1.0)

    assert shifted is not None
    assert 0.85 < shifted < 1.05
    assert same == pytest.approx(0.0, abs=1e-12)


def test_chance_lines_match_the_simulated_99th_percentiles() -> None:
    # the research note's simulation: 10 bins, N = 100,000 training rows, 99th percentile with no drift
    assert scores.js_line(10, 100_000, 200, 0.01) == pytest.approx(0.140, abs=0.002)
    assert scores.psi_line(10, 100_000, 500, 0.01) == pytest.approx(0.044, abs=0.001)
    assert scores.js_line(10, 100_000, 2_000, 0.01) == pytest.approx(0.045, abs=0.001)


def sampled_window(profile: Profile, layout: Layout, rows: int, rng: np.random.Generator) -> list[int]:
    """Counts of `rows` rows drawn like the training data, feature by feature."""
    counts = [0] * len(layout)
    counts[ROWS] = rows
    for slots, feature in zip(layout.features, profile.features, strict=True):
        if feature.bins is not None:
            training = [*feature.bins.counts, feature.missing]
            places = [*slots.values, slots.missing]
        else:
            assert feature.categories is not None
            assert slots.other is not None
            training = [*feature.categories.counts.values(), feature.categories.other, feature.missing]
            places = [*slots.values, slots.other, slots.missing]
        drawn = rng.multinomial(rows, np.asarray(training) / sum(training))
        for place, n in zip(places, drawn, strict=True):
            counts[place] += int(n)
    return counts


def report(profile: Profile, counts: list[int], **settings: float) -> DriftReport:
    limits = thresholds(Settings(**settings))  # type: ignore[arg-type]  # settings by name, as the environment gives them
    return drift_report("churn", "1", profile, layout_of(profile), counts, WINDOW, limits)


def test_windows_without_drift_are_rarely_flagged_and_small_ones_never(profile: Profile) -> None:
    layout, rng = layout_of(profile), np.random.default_rng(3)
    flagged = 0
    for _ in range(200):
        found = report(profile, sampled_window(profile, layout, 500, rng))
        assert found.status in ("no_drift", "drift")
        flagged += len(found.features_flagged)
    small = [report(profile, sampled_window(profile, layout, 50, rng)) for _ in range(50)]

    assert flagged / (200 * len(profile.features)) <= 0.02
    assert {r.status for r in small} == {"insufficient_data"}
    assert not any(r.features_flagged for r in small)
    # the chance line is above the configured one in a small window, and reported
    assert all(f.js_line > 0.1 for f in small[0].features if f.kind == "numeric")


def test_a_missing_surge_out_of_range_values_unseen_categories_and_refusals_are_flagged(
    profile: Profile,
) -> None:
    layout = layout_of(profile)
    counts = sampled_window(profile, layout, 2_000, np.random.default_rng(4))
    place = {s.name: s for s in layout.features}
    charges, contract, tenure = place["total_charges"], place["contract"], place["tenure_months"]
    for i in charges.values:  # 60 % of the values go missing, the others keep their shares
        moved = counts[i] * 6 // 10
        counts[i] -= moved
        counts[charges.missing] += moved
    assert tenure.above is not None
    assert contract.unseen is not None
    counts[tenure.first + tenure.bins - 1] -= 200
    counts[tenure.above] += 200  # in the top bin's place: only the out-of-range counter tells
    counts[contract.first] -= 200
    counts[contract.unseen] += 200
    counts[REFUSED] = 60
    counts[place["payment_method"].refused] = 60

    found = {f.name: f for f in report(profile, counts).features}

    assert {"missing", "js"} <= set(found["total_charges"].reasons)
    assert found["tenure_months"].reasons == ["out_of_range"]
    assert found["tenure_months"].out_of_range_share == pytest.approx(0.1)
    assert "unseen" in found["contract"].reasons
    assert found["contract"].unseen_share == pytest.approx(0.1)
    assert found["payment_method"].reasons == ["refused"]
    assert found["payment_method"].refused_share == pytest.approx(60 / 2_060)
