"""Column-at-a-time checks of a batch give the rows, and the errors, that row-by-row checks give."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest

from mlstack.errors import BadInput
from mlstack.serving.validation import COLUMNS_FROM_ROWS, Rows, Validator
from mlstack.store.manifest import Feature

FEATURES = [
    Feature(name="amount", type="number", nullable=True),
    Feature(name="count", type="integer"),
    Feature(name="flag", type="boolean"),
    Feature(name="plan", type="string", categories=["a", "b"]),
    Feature(name="note", type="string", nullable=True, reject_unknown=False),
]


def validator() -> Validator:
    return Validator(SimpleNamespace(inputs=FEATURES), max_rows=1000, max_string_length=8)  # type: ignore[arg-type]  # a manifest stand-in with only the inputs the validator reads


def random_row(rng: random.Random) -> dict[str, Any]:
    return {
        "amount": rng.choice([None, 1, 2.5, -3, 10**15]),
        "count": rng.choice([0, 7, 3.0]),
        "flag": rng.choice([True, False]),
        "plan": rng.choice(["a", "b"]),
        "note": rng.choice([None, "x", "new one"]),
    }


def one_by_one(rows: list[dict[str, Any]]) -> Rows:
    check = validator()
    return Rows(check.features, [value for row in rows for value in check.rows([row]).values])


def test_a_valid_batch_gives_the_rows_of_one_row_checks_with_numbers_as_floats() -> None:
    rng = random.Random(7)
    rows = [random_row(rng) for _ in range(50)]

    batch = validator().rows(rows)

    assert batch.values == one_by_one(rows).values
    assert {type(row[0]) for row in batch.values} == {float, type(None)}
    assert {type(row[1]) for row in batch.values} == {float}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("amount", True, "must be a number"),
        ("amount", "1.5", "must be a number"),
        ("count", 2.5, "must be an integer"),
        ("count", None, "must not be null"),
        ("flag", 1, "must be true or false"),
        ("plan", "c", "unknown category"),
        ("note", "far too long", "longer than 8"),
    ],
)
def test_a_bad_value_deep_in_a_batch_is_named_as_a_single_row_check_names_it(
    field: str, value: Any, message: str
) -> None:
    rng = random.Random(3)
    rows = [random_row(rng) for _ in range(COLUMNS_FROM_ROWS * 3)]
    rows[17] = {**rows[17], field: value}

    with pytest.raises(BadInput) as raised:
        validator().rows(rows)

    assert f"instances[17].{field}" in str(raised.value)
    assert message in str(raised.value)


def test_a_row_with_a_missing_or_unknown_feature_is_named() -> None:
    rng = random.Random(5)
    rows = [random_row(rng) for _ in range(COLUMNS_FROM_ROWS * 2)]
    rows[9] = {k: v for k, v in rows[9].items() if k != "flag"}
    rows[12] = {**rows[12], "extra": 1}

    with pytest.raises(BadInput, match=r"instances\[9\]\.flag"):
        validator().rows(rows)


def test_a_row_with_one_feature_swapped_for_an_unknown_one_is_named() -> None:
    """As many keys as the schema has names, but not the same ones: still caught, still named."""
    rng = random.Random(9)
    rows = [random_row(rng) for _ in range(COLUMNS_FROM_ROWS * 2)]
    swapped = {k: v for k, v in rows[11].items() if k != "flag"}
    rows[11] = {**swapped, "flags": True}

    with pytest.raises(BadInput, match=r"instances\[11\]\.flags.*unknown feature"):
        validator().rows(rows)
