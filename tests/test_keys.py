"""Key rotation: a key added and one revoked by re-rendering the key file and reloading nginx, live."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from stack.keys import ApiKey
from stack.native import NativeStack
from stacks import predict, steady_stream
from waiting import wait_for, wait_until

pytestmark = pytest.mark.stack


def test_keys_rotate_without_failing_a_request(stack: NativeStack, churn_row: dict[str, Any]) -> None:
    keys = list(stack.options.keys)
    revoked = ApiKey("to-revoke", "predict", "r" * 40)
    added = ApiKey("added-later", "predict", "a" * 40)
    stack.reload_gateway(keys=[*keys, revoked])
    wait_until(lambda: predict(stack, [churn_row], key=revoked.secret).status_code == 200, what="key added")

    with steady_stream(lambda i: predict(stack, [churn_row]), clients=2) as outcomes:
        wait_until(lambda: outcomes.total() >= 10, what="a stream under way")
        stack.reload_gateway(keys=[*keys, added])
        # the old workers finish what they hold, new ones take over: then the new key is in, the old out
        wait_for(
            lambda: (
                predict(stack, [churn_row], key=added.secret).status_code,
                predict(stack, [churn_row], key=revoked.secret).status_code,
            ),
            lambda statuses: statuses == (200, 401),
            what="the new key taken and the old refused",
        )
        switched = outcomes.total()
        wait_until(lambda: outcomes.total() >= switched + 10, what="the stream going on after the switch")
    stack.reload_gateway(keys=keys)

    assert outcomes[200] > 20
    assert set(outcomes) == {200}, outcomes


def test_a_revoked_key_is_refused_on_every_route(stack: NativeStack) -> None:
    keys = list(stack.options.keys)
    admin = ApiKey("short-lived-admin", "admin", "s" * 40)
    stack.reload_gateway(keys=[*keys, admin])
    wait_until(lambda: stack_get(stack, "/v1/stats", admin.secret) == 200, what="the admin key granted")
    stack.reload_gateway(keys=keys)

    wait_for(
        lambda: [stack_get(stack, p, admin.secret) for p in ("/v1/stats", "/v1/models", "/gateway/status")],
        lambda statuses: statuses == [401] * 3,
        what="the revoked key refused on every route",
    )


def stack_get(stack: NativeStack, path: str, key: str) -> int:
    return httpx.get(stack.gateway_url + path, headers={"X-API-Key": key}).status_code
