"""How strongly a feature and the target go together: Cramér's V, the correlation ratio, mutual information.

The traps, measured in shared/research/drift-and-profile.md §4.8-4.9: uncorrected V is far from 0 for
independent variables on few rows, so V is bias-corrected (Bergsma 2013); scikit-learn's mutual information
treats every column as continuous unless told, adds seeded noise to continuous ones, and refuses NaN.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import chi2_contingency
from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

MI_NEIGHBOURS = 10
"""Not scikit-learn's 3: on a weak relation (true MI 0.019 nats, 800 rows) the estimate's spread across
samples was 0.022 with 3 neighbours and 0.011 with 10, at the same mean (docs/profile.md)."""
MI_SEED = 0
MI_MAX_ROWS = 20_000
"""k-nearest-neighbour estimates grow as n log n; beyond this a seeded sample of rows is used."""


def cramers_v(codes: npt.NDArray[np.intp], labels: npt.NDArray[np.intp]) -> float | None:
    """Bias-corrected Cramér's V of two integer-coded variables; None when either has a single value."""
    width = int(labels.max()) + 1
    table = np.bincount(codes * width + labels, minlength=(int(codes.max()) + 1) * width).reshape(-1, width)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]  # bins or classes without rows
    rows, columns = table.shape
    n = int(table.sum())
    if rows < 2 or columns < 2 or n < 2:
        return None
    chi2 = float(chi2_contingency(table, correction=False)[0])  # no Yates: it would shrink 2×2 tables only
    phi2 = max(0.0, chi2 / n - (rows - 1) * (columns - 1) / (n - 1))
    rows_c = rows - (rows - 1) ** 2 / (n - 1)
    columns_c = columns - (columns - 1) ** 2 / (n - 1)
    spread = min(rows_c - 1, columns_c - 1)
    return _clip(math.sqrt(phi2 / spread)) if spread > 0 else None


def correlation_ratio(codes: npt.NDArray[np.intp], target: npt.NDArray[np.float64]) -> float | None:
    """η: the square root of the share of the target's variance between the groups; None without spread."""
    total = float(((target - target.mean()) ** 2).sum())
    if total == 0.0:
        return None
    frame = pd.DataFrame({"code": codes, "y": target}).groupby("code")["y"].agg(["count", "mean"])
    between = float((frame["count"] * (frame["mean"] - target.mean()) ** 2).sum())
    return _clip(math.sqrt(between / total))


def mutual_information(
    values: npt.NDArray[np.float64], target: npt.NDArray[np.float64], discrete: bool, classifier: bool
) -> float | None:
    """MI in nats between one feature (no missing values here) and the target, with an explicit mask."""
    if len(values) <= MI_NEIGHBOURS or np.unique(values).size < 2:
        return None
    if len(values) > MI_MAX_ROWS:
        sample = np.sort(np.random.default_rng(MI_SEED).choice(len(values), MI_MAX_ROWS, replace=False))
        values, target = values[sample], target[sample]
    measure = mutual_info_classif if classifier else mutual_info_regression
    found = measure(
        values.reshape(-1, 1),
        target,
        discrete_features=[discrete],
        n_neighbors=MI_NEIGHBOURS,
        random_state=MI_SEED,
    )
    return max(0.0, float(found[0]))


def _clip(value: float) -> float:
    return min(1.0, max(0.0, value))
