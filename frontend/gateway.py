"""The UI's only HTTP code: calls to the gateway, and every failure turned into a plain sentence."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from settings import FrontendSettings

SENTENCES = {
    401: "The gateway does not accept the UI's API key (FRONTEND_API_KEY). Ask an operator for a valid key.",
    403: "The UI's API key is not allowed to do this (an admin or users key is needed).",
    404: "Not found: {error}",
    413: "Too much at once: {error}",
    415: "The request was not JSON: {error}",
    422: "{error}",
    429: "Too many requests for this key right now; wait a second and try again.",
    503: "No replica can answer right now ({error}). Try again in a moment.",
}


class GatewayError(Exception):
    """A failed call, worded for people; `status` is None when the gateway could not be reached."""

    def __init__(self, sentence: str, status: int | None = None) -> None:
        super().__init__(sentence)
        self.status = status


@dataclass(frozen=True)
class Answer:
    body: Any
    headers: httpx.Headers
    latency_ms: float


class GatewayClient:
    """One pooled HTTP client per UI process (cached by Streamlit); safe to share between sessions."""

    def __init__(self, settings: FrontendSettings) -> None:
        self.settings = settings
        self._http = httpx.Client(base_url=settings.gateway_url, timeout=settings.request_timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def is_admin(self) -> bool:
        return self.settings.admin_key is not None

    def models(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/models").body["models"]  # type: ignore[no-any-return]  # parsed JSON or YAML is Any

    def manifest(self, model: str, version: str | None = None) -> dict[str, Any]:
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "")
        return self._call("GET", path).body  # type: ignore[no-any-return]  # parsed JSON or YAML is Any

    def profile(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The training data's profile of a version (the current one when None)."""
        path = f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + "/profile"
        return self._call("GET", path).body  # type: ignore[no-any-return]  # parsed JSON or YAML is Any

    def drift(self, model: str, window: str, version: str | None = None) -> dict[str, Any]:
        """Live rows of every replica over `window` (e.g. 15m) against the version's training profile."""
        params = {"window": window, **({"version": version} if version else {})}
        return self._call("GET", f"/v1/models/{model}/drift", params=params).body  # type: ignore[no-any-return]  # parsed JSON or YAML is Any

    def predict(self, model: str, rows: list[dict[str, Any]], version: str | None = None) -> Answer:
        return self._call("POST", _verb_path(model, version, "predict"), json={"instances": rows})

    def explain(self, model: str, rows: list[dict[str, Any]], version: str | None = None) -> Answer:
        """The prediction with why: per row, each feature's contribution to the model's output."""
        return self._call("POST", _verb_path(model, version, "explain"), json={"instances": rows})

    @property
    def has_users_key(self) -> bool:
        return self.settings.users_key is not None

    def recommend(self, model: str, user_id: str, k: int = 10, explain: bool = False) -> Answer:
        """The user's top k; with `explain`, each item with the history items behind it."""
        path = _verb_path(model, None, "explain" if explain else "predict")
        return self._call("POST", path, json={"instances": [{"user_id": user_id, "k": k}]})

    def create_user(self, user_id: str, events: list[dict[str, Any]]) -> Answer:
        return self._call("POST", "/v1/users", users=True, json={"user_id": user_id, "events": events})

    def user(self, user_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/users/{user_id}", users=True).body  # type: ignore[no-any-return]  # parsed JSON or YAML is Any

    def add_events(self, user_id: str, events: list[dict[str, Any]]) -> Answer:
        return self._call("POST", f"/v1/users/{user_id}/events", users=True, json={"events": events})

    def clear_history(self, user_id: str) -> None:
        self._call("DELETE", f"/v1/users/{user_id}/history", users=True)

    def delete_user(self, user_id: str) -> None:
        self._call("DELETE", f"/v1/users/{user_id}", users=True)

    def stats(self) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/stats", admin=True).body["replicas"]  # type: ignore[no-any-return]  # parsed JSON or YAML is Any

    def promote(self, model: str, version: str) -> Answer:
        return self._call("PUT", f"/v1/models/{model}/current", admin=True, json={"version": version})

    def rollback(self, model: str) -> Answer:
        return self._call("POST", f"/v1/models/{model}:rollback", admin=True)

    def _call(
        self, method: str, path: str, admin: bool = False, users: bool = False, **kwargs: Any
    ) -> Answer:
        key = (
            self.settings.admin_key if admin else self.settings.users_key if users else self.settings.api_key
        )
        headers = {"X-API-Key": key.get_secret_value()} if key else {}
        started = time.perf_counter()
        try:
            response = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise GatewayError(
                f"The gateway at {self.settings.gateway_url} did not answer in time."
            ) from None
        except httpx.HTTPError:
            raise GatewayError(
                f"The gateway at {self.settings.gateway_url} cannot be reached. Is the stack up?"
            ) from None
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            raise GatewayError(_sentence(response), response.status_code)
        body = response.json() if response.content else None  # 204 has no body
        return Answer(body, response.headers, latency_ms)


def _verb_path(model: str, version: str | None, verb: str) -> str:
    return f"/v1/models/{model}" + (f"/versions/{version}" if version else "") + f":{verb}"


def _sentence(response: httpx.Response) -> str:
    try:
        error = str(response.json().get("error", ""))
    except ValueError:
        error = response.text[:200]
    template = SENTENCES.get(response.status_code, "The stack answered {status}: {error}")
    return template.format(error=error, status=response.status_code)
