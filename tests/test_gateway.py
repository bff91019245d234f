"""The gateway against real nginx, replicas and Redis: auth matrix, limits, JSON errors, ids, balance."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import socket
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from stack.native import NativeStack
from stacks import gateway_entries_of, gateway_entry, predict, running_stack

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
    assert gateway_entry(stack, "trace-abc-12345")["status"] == 200


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

    upstreams = Counter(e["upstream_addr"] for e in gateway_entries_of(stack, "spread-", 300))
    replica_addresses = {f"127.0.0.1:{replica.port}" for replica in stack.replicas}
    assert set(upstreams) == replica_addresses
    assert min(upstreams.values()) >= 100


def test_run_state_file_follows_the_contract(stack: NativeStack) -> None:
    path = stack.options.run_dir / "stack.json"
    state = json.loads(path.read_text())

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert state["gateway_url"] == stack.gateway_url
    assert {p["role"] for p in state["processes"]} >= {"gateway", "replica", "redis"}
    assert all({"role", "pid", "port", "log"} <= set(p) for p in state["processes"])  # more may be added
    assert all(p["state"] in ("running", "restarting") for p in state["processes"])  # supervision's


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


def test_x_api_key_wins_over_bearer(stack: NativeStack) -> None:
    url = f"{stack.gateway_url}/v1/models"
    good, bad = stack.key("predict"), "b" * 43

    assert httpx.get(url, headers={"X-API-Key": good, "Authorization": f"Bearer {bad}"}).status_code == 200
    assert_json_error(httpx.get(url, headers={"X-API-Key": bad, "Authorization": f"Bearer {good}"}), 401)


def test_user_data_needs_the_users_scope(stack: NativeStack) -> None:
    url = f"{stack.gateway_url}/v1/users/someone"
    for method in ("GET", "PUT", "DELETE"):
        assert_json_error(httpx.request(method, url, headers={"X-API-Key": stack.key("predict")}), 403)
    for scope in ("users", "admin"):
        response = httpx.get(url, headers={"X-API-Key": stack.key(scope)})
        assert response.status_code not in (401, 403), response.text  # reaches a replica


def test_deleting_a_version_needs_admin_but_reading_it_does_not(stack: NativeStack) -> None:
    url = f"{stack.gateway_url}/v1/models/churn/versions/1"

    assert httpx.get(url, headers={"X-API-Key": stack.key("predict")}).status_code == 200
    assert_json_error(httpx.delete(url, headers={"X-API-Key": stack.key("predict")}), 403)
    assert_json_error(httpx.post(f"{stack.gateway_url}/v1/models/churn:rollback"), 401)


def test_gateway_routes_refuse_other_methods_with_allow(stack: NativeStack) -> None:
    admin = {"X-API-Key": stack.key("admin")}
    for method, path in (("POST", "/healthz"), ("DELETE", "/gateway/status"), ("POST", "/")):
        response = httpx.request(method, stack.gateway_url + path, headers=admin)
        assert_json_error(response, 405)
        assert response.headers["Allow"] == "GET, HEAD", path
        assert response.headers["X-Request-ID"]


def test_malformed_requests_get_json_errors(stack: NativeStack) -> None:
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    garbage = raw_request(port, b"GARBAGE\r\n\r\n")
    huge_header = raw_request(
        port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    )
    long_uri = httpx.get(f"{stack.gateway_url}/{'a' * 9000}")

    for head in (garbage, huge_header):
        assert head.startswith(b"HTTP/1.1 400"), head[:200]
        assert b"Content-Type: application/json" in head
        assert b'{"error":' in head
    assert_json_error(long_uri, 414)


def test_ui_without_a_running_ui_is_a_json_503(stack: NativeStack) -> None:
    assert_json_error(httpx.get(f"{stack.gateway_url}/ui/"), 503)


def raw_request(port: int, data: bytes) -> bytes:
    """What nginx answers to bytes no HTTP client library would send."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("streamlit") is None, reason="Streamlit is not installed")
def test_ui_asks_for_a_login_and_upgrades_its_websocket(store_dir: Path, tmp_path: Path) -> None:
    with running_stack(tmp_path / "run", store_dir, replicas=1) as ui_stack:
        login = ui_stack.options.ui_login
        assert login is not None
        anonymous = httpx.get(f"{ui_stack.gateway_url}/ui/")
        page = httpx.get(f"{ui_stack.gateway_url}/ui/", auth=(login.user, login.password))
        port = int(ui_stack.gateway_url.rsplit(":", 1)[1])
        credentials = base64.b64encode(f"{login.user}:{login.password}".encode())
        upgrade = raw_head(
            port,
            b"GET /ui/_stcore/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Authorization: Basic " + credentials + b"\r\n\r\n",
        )

    assert_json_error(anonymous, 401)
    assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="mlstack"'
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert upgrade.startswith(b"HTTP/1.1 101"), upgrade


def raw_head(port: int, data: bytes) -> bytes:
    """The status line and headers of an answer whose connection stays open (a websocket)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    return answer


def test_access_log_has_the_sent_method_and_no_query_string(stack: NativeStack) -> None:
    rid = "log-check-0001"
    httpx.post(f"{stack.gateway_url}/v1/models/churn:predict?token=hidden", headers={"X-Request-ID": rid})
    entry = gateway_entry(stack, rid)

    assert (entry["method"], entry["uri"], entry["status"], entry["client"]) == (
        "POST",
        "/v1/models/churn:predict",
        401,
        "",
    )
    upstream = {"upstream_addr", "upstream_status", "upstream_response_time"}
    assert {"time", "request_time", *upstream} <= set(entry)
