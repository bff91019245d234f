"""`:explain` through the real gateway (nginx, two replicas, Redis): keys and scopes as for a prediction,
its own batch limit, predict's 4xx for bad rows, the cache, retries on another replica, and no 5xx from
anything schemathesis sends it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from mlstack.frames import prepare_frame
from mlstack.store.model_store import ModelStore
from stack.native import NativeStack
from stacks import across_a_replica_kill, predict
from waiting import wait_until

pytestmark = pytest.mark.stack
EXACT = 1e-6


def explain(
    stack: NativeStack, rows: list[dict[str, Any]], key: str | None = None, **kwargs: Any
) -> httpx.Response:
    """One explanation of churn through the gateway, on a new connection."""
    headers = {"X-API-Key": key or stack.key("predict"), **kwargs.pop("headers", {})}
    url = f"{stack.gateway_url}/v1/models/churn:explain"
    return httpx.post(url, json={"instances": rows}, headers=headers, timeout=20, **kwargs)


def test_keys_and_scopes_are_those_of_a_prediction(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    keys = {
        "none": {},
        "unknown": {"X-API-Key": "x" * 43},
        "in the query": {},
        **{scope: {"X-API-Key": stack.key(scope)} for scope in ("predict", "users", "admin")},
        "bearer": {"Authorization": f"Bearer {stack.key('predict')}"},
    }
    params = {"in the query": {"api_key": stack.key("predict")}}
    statuses = {}
    for name, headers in keys.items():
        verbs = [
            httpx.post(
                f"{stack.gateway_url}/v1/models/churn:{verb}",
                json={"instances": [churn_row]},
                headers=headers,
                params=params.get(name),
            )
            for verb in ("predict", "explain")
        ]
        statuses[name] = tuple(r.status_code for r in verbs)
        if verbs[1].status_code == 401:
            assert "ApiKey" in verbs[1].headers["WWW-Authenticate"]
            assert list(verbs[1].json()) == ["error"]

    assert statuses == {
        "none": (401, 401),
        "unknown": (401, 401),
        "in the query": (401, 401),
        "predict": (200, 200),
        "users": (200, 200),  # every scope may predict, so none is refused with 403 here
        "admin": (200, 200),
        "bearer": (200, 200),
    }


def test_over_its_own_batch_limit_is_a_json_413(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    rows = [
        {**churn_row, "monthly_charges": 30.0 + i} for i in range(101)
    ]  # BACKEND_EXPLAIN_MAX_INSTANCES=100

    over, at_limit, predicted = explain(stack, rows), explain(stack, rows[:100]), predict(stack, rows)

    assert over.status_code == 413
    assert over.json() == {"error": "instances: 101 rows, more than the limit of 100"}
    assert (at_limit.status_code, len(at_limit.json()["explanations"])) == (200, 100)
    assert predicted.status_code == 200


def test_bad_rows_get_predicts_4xx_naming_the_field(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    bodies = {
        "string for a number": [{**churn_row, "tenure_months": "twelve"}],
        "unknown feature": [{**churn_row, "shoe_size": 42}],
        "missing feature": [{k: v for k, v in churn_row.items() if k != "contract"}],
        "unknown category": [{**churn_row, "contract": "Forever"}],
        "null where not nullable": [{**churn_row, "tenure_months": None}],
    }
    for case, rows in bodies.items():
        explained, predicted = explain(stack, rows), predict(stack, rows)

        assert (explained.status_code, explained.json()) == (predicted.status_code, predicted.json()), case
        assert explained.status_code == 422, case
    assert explain(stack, [{**churn_row, "shoe_size": 42}]).json() == {
        "error": "instances[0].shoe_size: unknown feature"
    }


def test_the_same_row_misses_then_hits_on_any_replica(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    row = {**churn_row, "tenure_months": 43, "monthly_charges": 64.5}
    first = explain(stack, [row])
    wait_until(
        lambda: explain(stack, [dict(reversed(row.items()))]).headers["X-Cache"] == "HIT",
        5.0,
        "a cached explanation",
    )
    later = [explain(stack, [row]) for _ in range(4)]  # round robin: both replicas

    assert first.headers["X-Cache"] == "MISS"
    assert {r.headers["X-Cache"] for r in later} == {"HIT"}
    assert all(r.json() == first.json() for r in later)
    assert predict(stack, [row]).headers["X-Cache"] == "MISS"  # a key space of its own


def test_contributions_add_up_to_the_pipelines_output(
    stack: NativeStack, store_dir: Path, churn_row: dict[str, Any]
) -> None:
    rows = [
        {**churn_row, "tenure_months": t, "contract": c}
        for t in (1, 24, 60)
        for c in ("Month-to-month", "Two year")
    ]
    rows.append({**churn_row, "total_charges": None})
    answer = explain(stack, rows).json()

    store = ModelStore(store_dir)
    manifest, pipeline = store.load("churn", "1")
    output = pipeline.decision_function(prepare_frame(pd.DataFrame(rows), list(manifest.inputs)))
    explanations = answer["explanations"]
    totals = [e["base_value"] + sum(c["contribution"] for c in e["contributions"]) for e in explanations]
    assert np.max(np.abs(np.array(totals) - output)) <= EXACT
    assert [c["feature"] for c in explanations[0]["contributions"]] == [f.name for f in manifest.inputs]
    missing = next(c for c in explanations[-1]["contributions"] if c["feature"] == "total_charges")
    assert (missing["imputed"], missing["value"]) == (True, None)
    assert missing["imputed_as"] is not None


@pytest.mark.faults
def test_a_killed_replica_costs_no_explanation(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    def send(i: int) -> httpx.Response:
        return explain(stack, [{**churn_row, "monthly_charges": 2000.0 + i}])  # distinct rows: no cache hits

    outcomes = across_a_replica_kill(stack, send, before=10, after=30)

    assert outcomes[200] > 30
    assert set(outcomes) == {200}, outcomes


def test_schemathesis_finds_no_5xx_on_the_explain_routes(stack: NativeStack) -> None:
    """Cases generated from the OpenAPI document, valid and invalid, for the served model and any other,
    current and pinned; and (half of them) bodies of rows typed after churn's schema with any values (huge
    numbers, nulls, unknown categories). Every answer below 500, and every 200 as the document says."""
    schema = schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.include(path_regex=r":explain$").get_all_operations()]
    assert len(operations) == 2
    served = {"model": "churn", "version": "1"}
    generated = st.one_of(
        operation.as_strategy(mode, path_parameters=parameters)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        for parameters in (served, None)  # None: any model and version, mostly unknown ones
    )
    manifest = httpx.get(f"{stack.gateway_url}/v1/models/churn", headers={"X-API-Key": stack.key("predict")})
    rows = st.lists(row_of(manifest.json()["inputs"]), min_size=1, max_size=4)
    typed = st.tuples(st.sampled_from(operations), rows).map(
        lambda pair: pair[0].Case(path_parameters=served, body={"instances": pair[1]}, media_type=JSON)
    )
    headers = {"X-API-Key": stack.key("predict")}
    statuses: list[int] = []

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.booleans().flatmap(lambda schema_only: generated if schema_only else typed))
    def no_server_error(case: schemathesis.Case) -> None:
        response = case.call(base_url=stack.gateway_url, headers=headers, timeout=20)
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    no_server_error()
    assert max(statuses) < 500
    assert {200, 404, 422} <= set(statuses)  # answered, and refused by the replicas' own checks


JSON = "application/json"


def row_of(features: list[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A row with every feature of the schema, of its type or null: mostly ordinary values, some extreme
    (any finite float, big integers), strings outside the categories where the schema allows them."""
    ordinary = st.floats(-1e6, 1e6)
    values = {
        "number": st.one_of(
            ordinary, ordinary, st.floats(allow_nan=False, allow_infinity=False), st.integers()
        ),
        "integer": st.one_of(st.integers(-1000, 1000), st.integers()),
        "boolean": st.booleans(),
    }
    drawn = {}
    for feature in features:
        strings = st.sampled_from(feature["categories"] or [""])
        if not feature["reject_unknown"]:  # an unknown category is served as none of the known ones
            strings |= st.text(max_size=8)
        value = values.get(feature["type"], strings)
        drawn[feature["name"]] = value | st.none() if feature["nullable"] else value
    return st.fixed_dictionaries(drawn)
