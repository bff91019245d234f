"""Sampled Shapley values for any other estimator: feature orderings drawn at random (each with its reverse),
features switched one at a time from a background row's value to the explained row's, the model's change
credited to the feature switched, averaged over the background sample and the orderings.

The contributions add up exactly to output − mean output over the background, at any sample count: along
one ordering the changes telescope. Their split between features is an estimate that improves with the
count. Features are swapped as whole column groups of the transformed matrix, which is the same as
swapping raw values because every preprocessing step works column by column (columns.py checks that).
Hand-written rather than shap's PermutationExplainer: that one seeds numpy's global random generator
(a side effect on the whole replica) and its tabular masker cannot take string columns.
"""

from __future__ import annotations

import numpy as np

from mlstack.explain.columns import ColumnMap
from mlstack.explain.outputs import ModelOutput

SEED = 0
"""The same orderings for every row and request: an explanation is reproducible."""


class SamplingMethod:
    name = "sampling_permutation"
    tolerance = 1e-3

    def __init__(
        self, output: ModelOutput, background: np.ndarray, columns: ColumnMap, permutations: int
    ) -> None:
        self._output = output
        self._background = background
        self._columns = columns
        self.permutations = permutations
        self._present = self._coalitions(len(columns.features), permutations)

    @staticmethod
    def _coalitions(features: int, permutations: int) -> tuple[np.ndarray, np.ndarray]:
        """Per ordering, which feature enters at each step (orders) and who is present before it (masks)."""
        rng = np.random.default_rng(SEED)
        half = [rng.permutation(features) for _ in range(max(1, permutations // 2))]
        orders = np.array([o for order in half for o in (order, order[::-1])][: max(permutations, 2)])
        steps = np.arange(features + 1)[:, None] > np.arange(features)[None, :]  # step j: first j entered
        ranks = np.argsort(orders, axis=1)  # ranks[p, f]: the step at which feature f enters
        masks = steps[:, ranks].transpose(1, 0, 2)  # (orderings, features + 1, features)
        return orders, masks

    def attribute(self, matrix: np.ndarray, classes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Base value per row (n,) and contributions per row and feature (n, features)."""
        base, phi = np.empty(len(matrix)), np.zeros((len(matrix), len(self._columns.features)))
        for row in range(len(matrix)):
            explained = None if classes is None else classes[row : row + 1]
            base[row], phi[row] = self._row(matrix[row], explained)
        return base, phi

    def _row(self, x: np.ndarray, explained: np.ndarray | None) -> tuple[float, np.ndarray]:
        orders, masks = self._present
        base = float(self._value(self._background, explained).mean())
        full = float(self._value(x[None, :], explained)[0])
        path = np.empty(masks.shape[:2])
        path[:, 0], path[:, -1] = base, full  # nobody present, everybody present: the same for all orderings
        for ordering, steps in enumerate(masks[:, 1:-1, :]):  # one ordering at a time bounds the memory
            present = steps[:, self._columns.owner]  # feature masks → column masks
            mixed = np.where(present[:, None, :], x[None, None, :], self._background[None, :, :])
            values = self._value(mixed.reshape(-1, len(x)), explained) if len(mixed) else np.empty(0)
            path[ordering, 1:-1] = values.reshape(len(steps), -1).mean(axis=1)
        phi = np.zeros(len(self._columns.features))
        np.add.at(phi, orders.ravel(), np.diff(path, axis=1).ravel())
        return base, phi / len(orders)

    def _value(self, rows: np.ndarray, explained: np.ndarray | None) -> np.ndarray:
        classes = None if explained is None else np.repeat(explained, len(rows))
        return self._output.of_class(rows, classes if classes is not None else np.zeros(len(rows), np.int64))
