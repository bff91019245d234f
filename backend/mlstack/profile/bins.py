"""The one binning rule, used where a profile is computed and wherever rows are counted against it.

Numbers: interior edges e0 < e1 < ... < ek, open-ended outer bins, each bin closed on the right:
bin 0 is (-inf, e0], bin i is (e(i-1), ei], bin k+1 is (ek, +inf), so a value beyond the training range
still lands in a bin that has training mass. `bisect_left` is that rule (a value equal to an edge goes
to the bin the edge closes); `numpy.searchsorted(side="left")` is the same rule for a whole column.
Missing values are counted apart.

Categories: the kept ones by name, everything else in OTHER; missing apart.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BINNING = "deciles-v1"
"""Names this rule and the edges below; a replica counts only into bins made by a rule it knows."""
EDGE_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MAX_CATEGORIES = 30
MIN_CATEGORY_SHARE = 0.005
OTHER = "__other__"
MISSING = "__missing__"


def bin_index(edges: Sequence[float], value: float) -> int:
    """The bin of one value: a bisection over a short list, about half a microsecond."""
    return bisect_left(edges, value)


def bin_indices(edges: Sequence[float], values: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """The bins of many values (no missing ones), by exactly the rule of `bin_index`."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")


def decile_edges(values: npt.NDArray[np.float64]) -> list[float]:
    """Interior edges at the training deciles, each an observed value (inverted CDF), duplicates dropped.

    Edges are observed values, so the first bin, which an edge closes, holds the minimum; an edge equal to
    the maximum would leave the top bin empty, so it is dropped. Heavy ties (many zeros) leave fewer bins.
    """
    if len(values) == 0:
        return []
    quantiles = np.quantile(values, EDGE_QUANTILES, method="inverted_cdf")
    top = float(values.max())
    return sorted({float(q) for q in quantiles if q < top})


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Human labels of the bins, for charts: "<= 12", "(12, 24]", "> 60"."""
    if not edges:
        return ["all values"]
    shown = [f"{e:.4g}" for e in edges]
    middle = [f"({low}, {high}]" for low, high in zip(shown, shown[1:], strict=False)]
    return [f"<= {shown[0]}", *middle, f"> {shown[-1]}"]


def kept_categories(counts: dict[str, int], rows: int) -> list[str]:
    """The categories that get a bin of their own: most frequent first (ties by name), at most
    MAX_CATEGORIES, each with at least MIN_CATEGORY_SHARE of the rows; the rest share OTHER."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [name for name, n in ranked[:MAX_CATEGORIES] if n >= MIN_CATEGORY_SHARE * rows]


def boolean_key(value: bool) -> str:
    """A boolean's category name, as JSON spells it."""
    return "true" if value else "false"
