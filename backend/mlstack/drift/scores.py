"""Distances between a training histogram and a live one, and the line a distance must pass in a window of
a given size before it means drift. Pure numpy on counts; the research behind each choice is in
docs/drift.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.special import chdtri

Floats = npt.NDArray[np.float64]

PSI_PSEUDO_COUNT = 0.5
"""Added to every bin's count on both sides before PSI: an empty bin would make it infinite."""


def _shares(counts: Sequence[float] | Floats) -> Floats:
    values: Floats = np.asarray(counts, dtype=np.float64)
    shares: Floats = values / values.sum()
    return shares


def _bins_with_mass(training: Sequence[int], live: Sequence[int]) -> tuple[Floats, Floats]:
    """Both histograms without the bins empty on both sides (they say nothing and would count as bins)."""
    p, q = np.asarray(training, dtype=np.float64), np.asarray(live, dtype=np.float64)
    used = (p > 0) | (q > 0)
    return p[used], q[used]


def jensen_shannon(training: Sequence[int], live: Sequence[int]) -> float | None:
    """The Jensen-Shannon distance in base 2: 0 for equal shares, 1 for disjoint ones. None without rows."""
    p, q = _bins_with_mass(training, live)
    if p.sum() == 0 or q.sum() == 0:
        return None
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    divergence = (_kl(p, m) + _kl(q, m)) / 2
    return float(math.sqrt(min(max(divergence, 0.0), 1.0)))


def _kl(p: Floats, m: Floats) -> float:
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / m[present])))


def psi(training: Sequence[int], live: Sequence[int]) -> float | None:
    """Population stability index, Σ (q - p) ln(q / p), with PSI_PSEUDO_COUNT added to every bin."""
    p, q = _bins_with_mass(training, live)
    if p.sum() == 0 or q.sum() == 0:
        return None
    p, q = _shares(p + PSI_PSEUDO_COUNT), _shares(q + PSI_PSEUDO_COUNT)
    return float(np.sum((q - p) * np.log(q / p)))


def wasserstein(
    points: Sequence[float], training: Sequence[int], live: Sequence[int], std: float | None
) -> float | None:
    """Wasserstein-1 between the two histograms placed on `points` (each bin's training mean, ascending),
    divided by the training standard deviation. None without spread or without rows."""
    if not std or sum(training) == 0 or sum(live) == 0:
        return None
    gaps = np.diff(np.asarray(points, dtype=np.float64))
    cdf_gap = np.abs(np.cumsum(_shares(training)) - np.cumsum(_shares(live)))[:-1]
    return float(np.sum(cdf_gap * gaps) / std)


def bins_in_play(training: Sequence[int], live: Sequence[int]) -> int:
    p, _ = _bins_with_mass(training, live)
    return len(p)


def chi_square_line(bins: int, training_rows: int, live_rows: int, alpha: float) -> float:
    """χ²(1-α; bins-1) × (1/N + 1/M): with no drift, N·M/(N+M) times PSI and 8 ln 2 times that times the
    JS divergence are both about χ² with bins-1 degrees of freedom."""
    if bins < 2 or training_rows <= 0 or live_rows <= 0:
        return 0.0
    return float(chdtri(bins - 1, alpha)) * (1 / training_rows + 1 / live_rows)


def psi_line(bins: int, training_rows: int, live_rows: int, alpha: float) -> float:
    """The PSI that windows of this size pass with probability α when nothing has drifted."""
    return chi_square_line(bins, training_rows, live_rows, alpha)


def js_line(bins: int, training_rows: int, live_rows: int, alpha: float) -> float:
    """The JS distance (base 2) that windows of this size pass with probability α when nothing has drifted."""
    return math.sqrt(chi_square_line(bins, training_rows, live_rows, alpha) / (8 * math.log(2)))
