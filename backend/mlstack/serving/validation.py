"""Rows from clients checked against a manifest's input schema; every error names the row and the field."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import NoneType
from typing import Any

from mlstack.errors import BadInput, MalformedRequest, TooManyRows
from mlstack.serving.requests import Column, Columns, Inputs, Kind, Records
from mlstack.store.manifest import Feature, FeatureType, Manifest


@dataclass(frozen=True, slots=True)
class Rows:
    """Validated rows, as their runtime takes them: for a table, each a tuple of values in the schema's
    feature order, JSON-native types; for a recommender, its queries."""

    features: tuple[Feature, ...]
    values: list[Any]
    keys: list[str] | None = None
    """Each row's part of its cache key, when the runtime names rows itself; else a hash of the row."""
    degraded: str | None = None
    """Why these rows cannot be answered as usual (they are then neither looked up nor cached)."""

    def __len__(self) -> int:
        return len(self.values)

    def column(self, index: int) -> list[Any]:
        return [row[index] for row in self.values]

    def columns(self) -> list[tuple[Any, ...]]:
        """Every feature's values at once, in feature order (one transpose in C, not one pass per feature)."""
        return list(zip(*self.values, strict=True))

    def subset(self, indexes: Sequence[int]) -> Rows:
        keys = None if self.keys is None else [self.keys[i] for i in indexes]
        return Rows(self.features, [self.values[i] for i in indexes], keys, self.degraded)


FITS: dict[FeatureType, Kind] = {
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
    "string": "string",
}
"""The kind of column each feature type takes."""


Checker = Callable[[Any], Any]
ColumnChecker = Callable[[Sequence[Any]], Sequence[Any] | None]
COLUMNS_FROM_ROWS = 8
"""From this many rows on, values are checked a column at a time: set and map calls run in C, where a
check per value cost about 4 µs per row of 20 features, most of a 100-row batch's time."""


def _number_column(nullable: bool) -> ColumnChecker:
    plain = frozenset({float, NoneType} if nullable else {float})
    convertible = plain | {int}

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        types = set(map(type, values))
        if types <= plain:
            return values
        if types == {int}:  # orjson's integers are 64-bit: float() never overflows here
            return list(map(float, values))
        if types <= convertible:
            return [float(v) if type(v) is int else v for v in values]
        return None

    return check


def _integer_column(nullable: bool) -> ColumnChecker:
    numbers = _number_column(nullable)

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        converted = numbers(values)
        if converted is None:
            return None
        present = [v for v in converted if v is not None] if nullable else converted
        return converted if all(map(float.is_integer, present)) else None

    return check


def _boolean_column(nullable: bool) -> ColumnChecker:
    allowed = frozenset({bool, NoneType} if nullable else {bool})
    return lambda values: values if set(map(type, values)) <= allowed else None


def _string_column(feature: Feature, max_length: int) -> ColumnChecker:
    allowed_types = frozenset({str, NoneType} if feature.nullable else {str})
    categories = (
        frozenset(feature.categories or ()) if feature.reject_unknown and feature.categories else None
    )

    def check(values: Sequence[Any]) -> Sequence[Any] | None:
        if not set(map(type, values)) <= allowed_types:
            return None
        given = set(values) - {None}
        if max(map(len, given), default=0) > max_length:
            return None
        if categories is not None and not given <= categories:
            return None
        return values

    return check


def _number(value: Any) -> Any:
    if type(value) is float:  # bool is a subclass of int: exact type checks keep `true` out
        return value
    if type(value) is int:
        as_float = float(value)
        if math.isinf(as_float):
            raise ValueError("number too large")
        return as_float
    raise ValueError("must be a number")


def _integer(value: Any) -> Any:
    if type(value) is int or (type(value) is float and value.is_integer()):
        return _number(value)
    raise ValueError("must be an integer")


def _boolean(value: Any) -> Any:
    if type(value) is bool:
        return value
    raise ValueError("must be true or false")


def _string_checker(feature: Feature, max_length: int) -> Checker:
    allowed = frozenset(feature.categories or ()) if feature.reject_unknown and feature.categories else None

    def check(value: Any) -> Any:
        if type(value) is not str:
            raise ValueError("must be a string")
        if len(value) > max_length:
            raise ValueError(f"longer than {max_length} characters")
        if allowed is not None and value not in allowed:
            raise ValueError(f"unknown category {value[:40]!r}; allowed: {sorted(allowed)}")
        return value

    return check


class Validator:
    """Checks rows for one manifest. Built once per loaded version, used for every request."""

    def __init__(self, manifest: Manifest, max_rows: int, max_string_length: int) -> None:
        self.features = tuple(manifest.inputs)
        self.names = tuple(f.name for f in self.features)
        self._name_set = frozenset(self.names)
        self._by_name = {f.name: f for f in self.features}
        self._in_order = operator.itemgetter(*self.names) if len(self.names) > 1 else None
        self.max_rows = max_rows
        self._checkers = [self._checker(f, max_string_length) for f in self.features]
        self._column_checkers = [self._column_checker(f, max_string_length) for f in self.features]

    @staticmethod
    def _checker(feature: Feature, max_string_length: int) -> Checker:
        simple = {"number": _number, "integer": _integer, "boolean": _boolean}
        return simple.get(feature.type) or _string_checker(feature, max_string_length)

    @staticmethod
    def _column_checker(feature: Feature, max_string_length: int) -> ColumnChecker:
        if feature.type == "number":
            return _number_column(feature.nullable)
        if feature.type == "integer":
            return _integer_column(feature.nullable)
        if feature.type == "boolean":
            return _boolean_column(feature.nullable)
        return _string_column(feature, max_string_length)

    def check_count(self, count: int, where: str = "instances") -> None:
        if count == 0:
            raise MalformedRequest(f"{where}: must hold at least one row")
        if count > self.max_rows:
            raise TooManyRows(f"{where}: {count} rows, more than the limit of {self.max_rows}")

    def validate(self, inputs: Inputs) -> Rows:
        if isinstance(inputs, Records):
            return self.rows(inputs.items)
        return self.columns(inputs)

    def rows(self, instances: Any) -> Rows:
        """V1 `instances`: a non-empty list of objects, feature name → value."""
        if not isinstance(instances, list):
            raise MalformedRequest("instances: must be a list of objects")
        self.check_count(len(instances))
        if len(instances) >= COLUMNS_FROM_ROWS:
            by_columns = self._by_columns(instances)
            if by_columns is not None:
                return by_columns
        return Rows(self.features, [self._row(i, row) for i, row in enumerate(instances)])

    def _by_columns(self, instances: list[Any]) -> Rows | None:
        """The rows, if every value passes; None at the first doubt, and the row-by-row checks then
        name the first bad field exactly as they do for a single row."""
        if self._in_order is None or set(map(type, instances)) != {dict}:
            return None
        if set(map(len, instances)) != {len(self.names)}:
            return None
        try:  # every name present and no more keys than names: exactly the schema's keys
            rows = list(map(self._in_order, instances))  # tuples in schema order, built in C
        except KeyError:
            return None
        columns, converted = [], False
        for column, check in zip(zip(*rows, strict=True), self._column_checkers, strict=True):
            checked = check(column)
            if checked is None:
                return None
            converted = converted or checked is not column
            columns.append(checked)
        return Rows(self.features, list(zip(*columns, strict=True)) if converted else rows)

    def columns(self, given: Columns) -> Rows:
        """Columns of equal length (V2 tensors), one per feature, each of a kind that fits its feature."""
        where = given.where
        for name, column in given.columns.items():
            if name not in self._name_set:
                raise BadInput(f"{where}.{name[:64]}", "unknown feature")
            self._check_kind(f"{where}.{name}", column, self._by_name[name])
        missing = [name for name in self.names if name not in given.columns]
        if missing:
            raise BadInput(f"{where}.{missing[0]}", "missing feature")
        self.check_count(given.count, where)
        rows = zip(*(given.columns[name].values for name in self.names), strict=True)
        return Rows(self.features, [self._values(f"{where}[{i}]", row) for i, row in enumerate(rows)])

    @staticmethod
    def _check_kind(where: str, column: Column, feature: Feature) -> None:
        if column.kind != FITS[feature.type]:
            raise BadInput(where, f"datatype {column.declared} does not fit a {feature.type} feature")

    def _row(self, index: int, row: Any) -> tuple[Any, ...]:
        where = f"instances[{index}]"
        if not isinstance(row, dict):
            raise BadInput(where, "must be an object of feature values")
        if row.keys() != self._name_set:
            self._explain_keys(where, row)
        return self._values(where, tuple(row[name] for name in self.names))

    def _values(self, where: str, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        out: list[Any] = []
        for feature, check, value in zip(self.features, self._checkers, raw, strict=True):
            if value is None:
                if not feature.nullable:
                    raise BadInput(f"{where}.{feature.name}", "must not be null")
                out.append(None)
                continue
            try:
                out.append(check(value))
            except ValueError as exc:
                raise BadInput(f"{where}.{feature.name}", str(exc)) from None
        return tuple(out)

    def _explain_keys(self, where: str, row: dict[str, Any]) -> None:
        unknown = [key for key in row if key not in self._name_set]
        if unknown:
            raise BadInput(f"{where}.{str(unknown[0])[:64]}", "unknown feature")
        missing = next(name for name in self.names if name not in row)
        raise BadInput(f"{where}.{missing}", "missing feature")
