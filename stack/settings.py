"""The stack's own configuration (gateway, replica count, run dir), read once from the environment or .env."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class StackSettings(BaseSettings):
    """Settings of the gateway and of the native launcher. Variable names are the field names in capitals."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    gateway_port: int = Field(default=8080, ge=1, le=65535)
    """The one port clients, the UI and load tests use."""

    gateway_host: str = "127.0.0.1"
    """Address the native gateway listens on (Compose publishes the port instead)."""

    gateway_keys: SecretStr | None = None
    """API keys as name:scope:key, comma-separated; scope: predict, users or admin. Unset: demo keys."""

    gateway_keys_file: Path | None = None
    """A file with one name:scope:key per line (# comments); read on start and on key rotation."""

    gateway_rate_per_s: int = Field(default=1000, ge=1)
    """Requests per second each API key may send (nginx limit_req, per client name)."""

    gateway_burst: int = Field(default=2000, ge=0)
    """Requests a key may send above its rate before getting 429."""

    gateway_max_body: str = Field(default="1m", pattern=r"^[0-9]+[km]?$")
    """Largest request body (nginx size: 1m, 512k); larger is 413."""

    gateway_token: SecretStr | None = None
    """Secret the gateway sends to replicas (X-Gateway-Token). Native: made at each start when unset."""

    gateway_workers: int | None = Field(default=None, ge=1, le=64)
    """nginx worker processes. Unset: one per two cores, at least one (the replicas need the rest)."""

    gateway_worker_connections: int = Field(default=16384, ge=64)
    """Connections each nginx worker holds (idle keep-alive clients count, and so does each request's
    connection to a replica). The open-files limit may allow fewer: the start command then says so."""

    gateway_docs: bool = True
    """Serve /docs and /openapi.json through the gateway without a key."""

    gateway_ui_auth: bool = True
    """Ask for a login at /ui/ (HTTP basic auth); false switches it off explicitly."""

    gateway_ui_user: str | None = None
    """UI login name. Unset: the start command makes one and prints it."""

    gateway_ui_password: SecretStr | None = None
    """UI login password. Unset: the start command makes one and prints it."""

    gateway_backend: str = "backend:8000"
    """Containers only: the replicas' DNS name and port, re-resolved every 5 s. Kubernetes: a full name."""

    gateway_ui: str | None = None
    """Containers only: the UI's DNS name and port behind /ui/. Unset: no /ui/ route."""

    gateway_resolver: str | None = None
    """Containers only: the DNS server nginx asks. Unset: the first nameserver of /etc/resolv.conf."""

    backend_replicas: int = Field(default=2, ge=1, le=16)
    """How many replicas to run (natively: uvicorn processes on loopback ports)."""

    stack_run_dir: Path = Path(".run")
    """Where the native stack keeps rendered config, logs, pid files and the run-state file stack.json."""

    stack_ui_port: int = Field(default=8501, ge=1, le=65535)
    """Loopback port of the Streamlit process behind the gateway."""

    stack_restart_delay_s: float = Field(default=0.5, gt=0)
    """Native: wait before a process that exited unasked starts again; doubles with each exit in a row."""

    stack_restart_max_delay_s: float = Field(default=30.0, gt=0)
    """Native: the longest wait between two starts of a process that keeps exiting."""

    stack_restart_limit: int = Field(default=5, ge=1)
    """Native: this many exits within STACK_RESTART_WINDOW_S mark a process failed; it is left down."""

    stack_restart_window_s: float = Field(default=60.0, gt=0)
    """Native: the span exits are counted over; a process up this long starts its backoff afresh."""
