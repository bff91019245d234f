"""The UI's configuration, read once from FRONTEND_* variables or .env."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontendSettings(BaseSettings):
    """Where the gateway is and which keys the UI uses; the UI talks to nothing else."""

    model_config = SettingsConfigDict(
        env_prefix="FRONTEND_", env_file=".env", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    gateway_url: str = "http://127.0.0.1:8080"
    """The gateway the UI calls (the same public API as every client)."""

    api_key: SecretStr | None = None
    """The UI's own API key (scope predict) for models and predictions."""

    admin_key: SecretStr | None = None
    """Optional admin key: shows promote/rollback and the per-replica monitor."""

    users_key: SecretStr | None = None
    """Optional key of scope users: the Recommend page creates, changes and deletes users with it."""

    request_timeout_s: float = Field(default=30.0, gt=0)
    """How long one API call may take before the UI says the gateway did not answer."""

    batch_rows: int = Field(default=1000, ge=1)
    """Rows per request on the batch page (the API's batch limit)."""

    refresh_s: float = Field(default=2.0, gt=0)
    """How often the monitor page refreshes itself."""
