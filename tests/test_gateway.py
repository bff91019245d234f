"""The gateway against real nginx, replicas and Redis: auth matrix, limits, JSON errors, ids, balance."""

from __future__ import annotations

import json
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from stacks import predict, running_stack

from stack.native import NativeStack

pytestmark = pytest.mark.stack


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert list(response.json()) == ["error"]
    assert response.json()["error"]


def test_auth_matrix(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    url = stack.gateway_url
    body = {"instances": [churn_row]}
    predict_key, admin_key = stack.key("predict"), stack.key("admin")

    no_key = httpx.post(f"{url}/v1/models/churn:predict", json=body)
    unknown = httpx.post(f"{url}/v1/models/churn:predict", json=body, headers={"X-API-Key": "x" * 43})
    in_query = httpx.post(f"{url}/v1/models/churn:predict?api_key={predict_key}", json=body)
    header = httpx.post(f"{url}/v1/models/churn:predict", json=body, headers={"X-API-Key": predict_key})
    bearer = httpx.post(
        f"{url}/v1/models/churn:predict", json=body, headers={"Authorization": f"Bearer {predict_key}"}
    )
    lower = httpx.post(
        f"{url}/v1/models/churn:predict", json=body, headers={"Authorization": f"bearer {predict_key}"}
    )
    forbidden = httpx.post(f"{url}/v1/models/churn:reload", headers={"X-API-Key": predict_key})
    admin = httpx.post(f"{url}/v1/models/churn:reload", headers={"X-API-Key": admin_key})

    for refused in (no_key, unknown, in_query):
        assert_json_error(refused, 401)
        assert "ApiKey" in refused.headers["WWW-Authenticate"]
    assert [header.status_code, bearer.status_code, lower.status_code] == [200, 200, 200]
    assert_json_error(forbidden, 403)
    assert admin.status_code == 200
    assert admin.json()["version"] == "1"


def test_admin_routes_need_the_admin_scope(stack: NativeStack) -> None:
    for path in ("/metrics", "/v1/stats", "/gateway/status"):
        assert_json_error(
            httpx.get(stack.gateway_url + path, headers={"X-API-Key": stack.key("predict")}), 403
        )
        assert (
            httpx.get(stack.gateway_url + path, headers={"X-API-Key": stack.key("admin")}).status_code == 200
        )


def test_open_routes_need_no_key(stack: NativeStack) -> None:
    for path in ("/healthz", "/v2/health/live", "/v2/health/ready", "/docs", "/openapi.json"):
        assert httpx.get(stack.gateway_url + path).status_code == 200, path
    assert "/v1/models/{model}:predict" in httpx.get(f"{stack.gateway_url}/openapi.json").json()["paths"]


def test_root_redirects_to_the_ui(stack: NativeStack) -> None:
    response = httpx.get(f"{stack.gateway_url}/")

    assert (response.status_code, response.headers["Location"]) == (302, f"{stack.gateway_url}/ui/")


def test_oversized_body_is_a_json_413(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    padding = "x" * (1024 * 1024)
    body = json.dumps({"instances": [churn_row], "padding": padding}).encode()
    headers = {"X-API-Key": stack.key("predict"), "Content-Type": "application/json"}

    assert_json_error(
        httpx.post(f"{stack.gateway_url}/v1/models/churn:predict", content=body, headers=headers), 413
    )


def test_errors_from_gateway_and_replicas_are_json(stack: NativeStack) -> None:
    key = {"X-API-Key": stack.key("predict")}
    assert_json_error(httpx.get(f"{stack.gateway_url}/no/such/thing", headers=key), 404)
    assert_json_error(httpx.get(f"{stack.gateway_url}/v1/models/nosuch", headers=key), 404)
    wrong_method = httpx.get(f"{stack.gateway_url}/v1/models/churn:predict", headers=key)
    assert_json_error(wrong_method, 405)
    assert wrong_method.headers["Allow"] == "POST"
    assert_json_error(httpx.request("TRACE", f"{stack.gateway_url}/v1/models", headers=key), 405)
    bad = httpx.post(f"{stack.gateway_url}/v1/models/churn:predict", json={"instances": [{}]}, headers=key)
    assert_json_error(bad, 422)
    assert "instances[0]" in bad.json()["error"]


def test_request_id_is_kept_or_made_and_logged(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    kept = predict(stack, [churn_row], headers={"X-Request-ID": "trace-abc-12345"})
    made = predict(stack, [churn_row], headers={"X-Request-ID": "bad id <script>"})
    refused = httpx.get(f"{stack.gateway_url}/v1/models", headers={"X-Request-ID": "trace-refused-1"})

    assert kept.headers["X-Request-ID"] == "trace-abc-12345"
    assert len(made.headers["X-Request-ID"]) == 32
    assert refused.headers["X-Request-ID"] == "trace-refused-1"
    assert "trace-abc-12345" in gateway_log(stack)


def test_keys_never_reach_a_log(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    predict(stack, [churn_row])
    httpx.get(f"{stack.gateway_url}/v1/models?api_key={stack.key('admin')}")
    logs = "".join(p.read_text(errors="replace") for p in stack.logs.glob("*.log"))

    assert all(key.secret not in logs for key in stack.options.keys)
    assert '"client":"demo"' in logs


def test_predictions_are_spread_over_every_replica(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    with httpx.Client(headers={"X-API-Key": stack.key("predict")}) as client:
        for i in range(300):
            row = {**churn_row, "monthly_charges": 20.0 + i}  # distinct rows: every one reaches a replica
            response = client.post(
                f"{stack.gateway_url}/v1/models/churn:predict",
                json={"instances": [row]},
                headers={"X-Request-ID": f"spread-{i:05d}"},
            )
            assert response.status_code == 200

    upstreams = Counter(
        e["upstream"] for e in gateway_entries(stack) if e["request_id"].startswith("spread-")
    )
    replica_addresses = {f"127.0.0.1:{replica.port}" for replica in stack.replicas}
    assert set(upstreams) == replica_addresses
    assert min(upstreams.values()) >= 100


def test_run_state_file_follows_the_contract(stack: NativeStack) -> None:
    path = stack.options.run_dir / "stack.json"
    state = json.loads(path.read_text())

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert state["gateway_url"] == stack.gateway_url
    assert {p["role"] for p in state["processes"]} >= {"gateway", "replica", "redis"}
    assert all({"role", "pid", "port", "log"} == set(p) for p in state["processes"])


def test_rate_limit_answers_429_with_retry_after(
    store_dir: Path, tmp_path: Path, churn_row: dict[str, Any]
) -> None:
    with running_stack(tmp_path / "run", store_dir, replicas=1, rate_per_s=2, burst=3) as limited:
        statuses = [predict(limited, [churn_row]).status_code for _ in range(12)]
        other_key = predict(limited, [churn_row], key=limited.key("admin"))
        refused = predict(limited, [churn_row])

    assert statuses.count(200) >= 4
    assert 429 in statuses
    assert other_key.status_code == 200  # the limit is per key, not per address
    assert_json_error(refused, 429)
    assert refused.headers["Retry-After"] == "1"


def gateway_log(stack: NativeStack) -> str:
    return (stack.logs / "gateway-access.log").read_text()


def gateway_entries(stack: NativeStack) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gateway_log(stack).splitlines() if line.strip()]
