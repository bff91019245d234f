"""The load tests' configuration (LOADTEST_*): where the gateway is, which key, what counts as a pass."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class LoadtestSettings(BaseSettings):
    """Read once when Locust loads the locustfile; unset host and key come from the run-state file."""

    model_config = SettingsConfigDict(
        env_prefix="LOADTEST_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
        populate_by_name=True,
    )

    host: str | None = None
    """Gateway URL. Unset: Locust's --host, else gateway_url from the run-state file."""

    api_key: SecretStr | None = None
    """Key (scope predict) the simulated clients send. Unset: the first predict key of LOADTEST_KEYS,
    else the generated demo key in the run-state file."""

    keys: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("loadtest_keys", "gateway_keys")
    )
    """Keys as in GATEWAY_KEYS (name:scope:key, comma-separated); unset: GATEWAY_KEYS itself."""

    run_state: Path = Path(".run/stack.json")
    """The native stack's run-state file (docs/CONTRACT.md)."""

    model: str = "churn"
    """The model every user class calls; its manifest's input schema shapes the rows."""

    recommender: str = "recommend"
    """The recommendation model the Recommend user class asks (its catalogue gives the items)."""

    batch_rows: int = Field(default=100, ge=1, le=1000)
    """Rows per request of the Batch user."""

    hit_pool_rows: int = Field(default=8, ge=1)
    """Distinct rows the CacheHit user repeats (each is a miss once, then a hit)."""

    rate_per_user: float = Field(default=10.0, ge=0)
    """Requests per second each OneRow, Batch, CacheHit and V2Infer user aims at; 0: back to back (mind
    the gateway's per-key rate limit, GATEWAY_RATE_PER_S)."""

    think_min_s: float = Field(default=0.5, ge=0)
    """Shortest pause of the Mixed user between two requests."""

    think_max_s: float = Field(default=2.0, ge=0)
    """Longest pause of the Mixed user between two requests."""

    max_fail_ratio: float = Field(default=0.01, ge=0, le=1)
    """Largest share of failed requests a passing run may have."""

    p95_ms: float = Field(default=500.0, gt=0)
    """Largest 95th percentile response time (all requests) a passing run may have."""

    p99_ms: float = Field(default=1000.0, gt=0)
    """Largest 99th percentile response time (all requests) a passing run may have."""

    step_users: int = Field(default=10, ge=1)
    """StepLoad shape: users added at each step."""

    step_s: float = Field(default=10.0, gt=0)
    """StepLoad shape: how long each step lasts."""

    steps: int = Field(default=5, ge=1)
    """StepLoad shape: number of steps; the run stops after the last."""

    def gateway_url(self) -> str | None:
        return self.host or self._state().get("gateway_url")

    def predict_key(self) -> str | None:
        """The key to send: configured, else from LOADTEST_KEYS, else the run-state's generated one."""
        if self.api_key:
            return self.api_key.get_secret_value()
        return self.key_of_scope("predict")

    def key_of_scope(self, scope: str) -> str | None:
        """The first key of that scope in LOADTEST_KEYS, else the run-state's generated one."""
        for entry in (self.keys.get_secret_value() if self.keys else "").split(","):
            parts = entry.strip().split(":", 2)
            if len(parts) == 3 and parts[1] == scope:
                return parts[2]
        keys = self._state().get("credentials", {}).get("keys", [])
        return next((k["key"] for k in keys if k.get("scope") == scope), None)

    def _state(self) -> dict:
        try:
            return json.loads(self.run_state.read_text())
        except (FileNotFoundError, PermissionError, ValueError):
            return {}
