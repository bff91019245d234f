"""Key rotation: a key added and one revoked by re-rendering the key file and reloading nginx, live."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from stack.keys import ApiKey
from stack.native import NativeStack
from stacks import predict, steady_stream

pytestmark = pytest.mark.stack


def test_keys_rotate_without_failing_a_request(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    keys = list(stack.options.keys)
    revoked = ApiKey("to-revoke", "predict", "r" * 40)
    added = ApiKey("added-later", "predict", "a" * 40)
    stack.reload_gateway(keys=[*keys, revoked])
    time.sleep(0.5)
    before = predict(stack, [churn_row], key=revoked.secret)

    with steady_stream(lambda i: predict(stack, [churn_row]), clients=2) as outcomes:
        time.sleep(1.0)
        stack.reload_gateway(keys=[*keys, added])
        time.sleep(1.5)  # the old workers finish what they hold, new ones take over
        new_key = predict(stack, [churn_row], key=added.secret)
        old_key = predict(stack, [churn_row], key=revoked.secret)
        time.sleep(0.5)
    stack.reload_gateway(keys=keys)

    assert before.status_code == 200
    assert new_key.status_code == 200
    assert old_key.status_code == 401
    assert outcomes[200] > 20
    assert set(outcomes) == {200}, outcomes


def test_a_revoked_key_is_refused_on_every_route(stack: NativeStack) -> None:
    keys = list(stack.options.keys)
    admin = ApiKey("short-lived-admin", "admin", "s" * 40)
    stack.reload_gateway(keys=[*keys, admin])
    time.sleep(0.5)
    granted = stack_get(stack, "/v1/stats", admin.secret)
    stack.reload_gateway(keys=keys)
    time.sleep(0.5)

    assert granted == 200
    assert [stack_get(stack, p, admin.secret) for p in ("/v1/stats", "/v1/models", "/gateway/status")] == [
        401
    ] * 3


def stack_get(stack: NativeStack, path: str, key: str) -> int:
    return httpx.get(stack.gateway_url + path, headers={"X-API-Key": key}).status_code
