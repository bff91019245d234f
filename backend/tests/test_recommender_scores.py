"""Item-item scores from the CSR arrays equal scipy's `matrix[rows].T @ weights`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from mlstack.recommend.model import _weighted_rows


def test_weighted_rows_equal_scipys_product_with_empty_and_repeated_rows() -> None:
    rng = np.random.default_rng(4)
    matrix = sp.random(400, 400, density=0.03, format="csr", random_state=2)
    matrix = sp.csr_matrix(matrix.multiply(np.arange(400)[:, None] % 7 != 0))  # every 7th row empty
    for rows in ([0], [7, 14], rng.choice(400, 30, replace=False).tolist(), [3, 3, 5]):
        indexes = np.array(rows, dtype=np.int64)
        weights = rng.random(len(rows))

        expected = np.asarray(matrix[indexes].T @ weights).ravel()

        np.testing.assert_allclose(_weighted_rows(matrix, indexes, weights), expected, rtol=1e-12, atol=0)
