"""The replica's configuration: every knob, read once from BACKEND_* variables or .env."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlstack.store.signing import parse_public_key


class Settings(BaseSettings):
    """Settings of one serving replica (and the training command's store location)."""

    model_config = SettingsConfigDict(
        env_prefix="BACKEND_",
        env_file=".env",
        extra="ignore",
        frozen=True,
        use_attribute_docstrings=True,
    )

    store_dir: Path = Path("model_store")
    """Root of the versioned model store: <model>/<version>/ and <model>/CURRENT."""

    max_artifact_bytes: int = Field(default=512 << 20, ge=1)
    """Largest model artifact a replica will open; a bigger file is refused before it is read."""

    signing_public_key: str | None = None
    """Ed25519 public key (one line, from `mlstack keygen`): replicas then refuse, before unpickling, any
    version whose model.sig is missing or wrong. Unset or empty: versions are not asked to be signed."""

    signing_key_file: Path | None = None
    """Private key that `mlstack train` and `mlstack sign` sign versions with; keep it outside the model
    store, and off replicas. Unset or empty: versions are published unsigned."""

    redis_url: str | None = None
    """Prediction cache shared by all replicas (redis://host:port/db). Unset: X-Cache says BYPASS."""

    redis_timeout_ms: int = Field(default=25, ge=1)
    """A cache call slower than this counts as failed and the request goes on without the cache."""

    cache_enabled: bool = True
    """Switch the prediction cache off without removing the Redis URL."""

    cache_ttl_s: int = Field(default=3600, ge=1)
    """How long a cached prediction lives."""

    cache_retry_after_s: float = Field(default=2.0, ge=0)
    """After a cache failure, skip Redis for this long before one call tries it again."""

    near_cache_entries: int = Field(default=20_000, ge=0)
    """Recent cache entries each replica also keeps in memory, so a hit skips Redis (0: none)."""

    near_cache_ttl_s: float = Field(default=30.0, gt=0)
    """How long a replica keeps its copy (at most the cache TTL); short, as FLUSHALL on Redis misses it."""

    users_redis_url: str | None = None
    """Durable Redis for user data (profiles, histories), not the cache's. Unset: /v1/users answers 503."""

    users_redis_timeout_ms: int = Field(default=2000, ge=1)
    """A user-data call slower than this fails with 503 (every write waits for an fsync)."""

    users_max_events: int = Field(default=500, ge=1)
    """Events kept per user; older ones are dropped when new ones arrive."""

    users_max_events_per_request: int = Field(default=100, ge=1)
    """Most events one request may post; more is 413."""

    recommender_model: str = "recommend"
    """The recommendation model whose catalogue user events are checked against."""

    recommend_max_k: int = Field(default=100, ge=1)
    """Largest `k` (recommendations per instance) a request may ask for."""

    store_poll_s: float = Field(default=2.0, ge=0)
    """How often a replica checks the store's CURRENT and CANARY files (0: only when told over Redis)."""

    microbatch_enabled: bool = True
    """Gather concurrent requests for the same model version into one pipeline call."""

    microbatch_max_rows: int = Field(default=256, ge=1)
    """Most rows one gathered call predicts; a request this large or larger is predicted alone."""

    microbatch_max_wait_ms: float = Field(default=2.0, ge=0)
    """Longest a request waits for others to join its call (0: merge only what is already waiting)."""

    max_in_flight: int = Field(default=32, ge=1)
    """Most prediction and user-data requests a replica works on at once. Past it a request waits for a
    place (max_waiting, max_wait_ms) or gets 503 with Retry-After: past capacity a queue adds only latency."""

    max_waiting: int = Field(default=1024, ge=0)
    """Most requests waiting for a place past max_in_flight; one more gets 503 at once."""

    max_wait_ms: float = Field(default=20.0, ge=0)
    """Longest a waiting request may have waited and still get a place (the newest waiter gets it first);
    5 ms at most once the waiting room has stayed occupied for 100 ms (sustained overload, not a burst).
    One that waited longer is not served: it gets 503 half a second after it arrived."""

    max_queued_rows: int = Field(default=4096, ge=1)
    """Most rows waiting for or in a prediction; a request that would pass it gets 503 with Retry-After
    at once (a request alone is always taken, whatever its size)."""

    onnx_enabled: bool = True
    """Serve a version with onnxruntime (one thread) when it has a verified ONNX export; else, or when
    false, with its joblib pipeline. A broken ONNX file is logged and the joblib pipeline serves."""

    explain_permutations: int = Field(default=10, ge=2)
    """Feature orderings per row for the sampling explanation method (models neither linear nor tree
    ensembles): each costs (features - 1) x 100 background rows of model evaluations. More is slower and
    nearer the exact Shapley values; the contributions add up to the output at any count."""

    drift_enabled: bool = True
    """Count the rows this replica serves into each version's training-profile bins, for the drift route
    and its gauges (flushed to the cache Redis in batches; a request never waits on it)."""

    drift_flush_s: float = Field(default=2.0, gt=0)
    """How often a replica sends its live counts to Redis, one pipeline for all versions."""

    drift_bucket_s: int = Field(default=60, ge=1)
    """Width of a time bucket of live counts in Redis; windows are read as whole buckets."""

    drift_retention_s: int = Field(default=86_400, ge=1)
    """How long a bucket is kept after it ends: the longest window the drift route reads."""

    drift_window_s: int = Field(default=900, ge=1)
    """The window of the drift route when none is asked for, and of the drift gauges."""

    drift_gauges_s: float = Field(default=15.0, ge=0)
    """How often a replica recomputes each model's current version's drift gauges from Redis (0: never)."""

    drift_min_rows: int = Field(default=200, ge=1)
    """Fewer rows in a window: the drift route reports `insufficient_data` and flags nothing."""

    drift_js_threshold: float = Field(default=0.1, gt=0, le=1)
    """A feature drifts when its Jensen-Shannon distance (base 2) passes this, or the window's chance value
    if higher."""

    drift_psi_threshold: float = Field(default=0.2, gt=0)
    """A feature drifts when its PSI passes this, or the window's chance value if higher."""

    drift_wasserstein_threshold: float = Field(default=0.1, gt=0)
    """A number drifts when its Wasserstein distance, in training standard deviations, passes this
    (only with at least 1,000 present values in training and in the window)."""

    drift_missing_threshold: float = Field(default=0.1, gt=0, le=1)
    """A feature drifts when its live missing share differs from training's by more than this."""

    drift_out_of_range_threshold: float = Field(default=0.05, gt=0, le=1)
    """A number drifts when more than this share of its live values lies outside the training range."""

    drift_unseen_threshold: float = Field(default=0.01, gt=0, le=1)
    """A category drifts when more than this share of live rows has a value never seen in training."""

    drift_refused_threshold: float = Field(default=0.01, gt=0, le=1)
    """A feature drifts when more than this share of the window's rows was refused (422) for its value."""

    drift_share_threshold: float = Field(default=0.5, gt=0, le=1)
    """The drift route reports dataset drift when at least this share of the features drifts."""

    drift_alpha: float = Field(default=0.01, gt=0, lt=1)
    """Chance of any false flag in a window without drift, shared among a version's features: sets the
    chance values that small windows' distances must pass."""

    max_instances: int = Field(default=1000, ge=1)
    """Largest number of instances in one request; more is 413."""

    explain_max_instances: int = Field(default=100, ge=1)
    """Largest number of instances in one `:explain` request; more is 413. An explanation costs more than
    a prediction: about 0.1 ms of CPU per row for the linear method, 1 ms for TreeSHAP, and
    (features - 1) x 100 x BACKEND_EXPLAIN_PERMUTATIONS model rows for the sampling method."""

    max_string_length: int = Field(default=256, ge=1)
    """Longest string a string feature takes; longer is 422."""

    gateway_token: SecretStr | None = None
    """Shared secret only the gateway sends (X-Gateway-Token); unset means no check (local development)."""

    host: str = "127.0.0.1"
    """Address `mlstack serve` listens on (0.0.0.0 in a container)."""

    port: int = Field(default=8000, ge=1, le=65535)
    """Port `mlstack serve` listens on."""

    keep_alive_s: float = Field(default=75.0, gt=0)
    """How long an idle connection stays open. Longer than the gateway's upstream keep-alive (60 s): a
    connection the replica closes first can meet a request on its way, which then fails."""

    graceful_shutdown_s: float = Field(default=10.0, ge=0)
    """On SIGTERM, how long requests in flight may finish before the replica exits."""

    replica_name: str = Field(default_factory=socket.gethostname)
    """How this replica names itself in logs and statistics."""

    docs_enabled: bool = True
    """Serve /docs and /openapi.json."""

    log_level: str = "INFO"
    """Python logging level of the replica."""

    @field_validator("signing_public_key", "signing_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`BACKEND_SIGNING_PUBLIC_KEY=` in .env (or from Compose) means no key, not a key named ''."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("signing_public_key")
    @classmethod
    def _is_a_public_key(cls, value: str | None) -> str | None:
        """A key that cannot be read stops the replica at start: it never serves unchecked versions."""
        if value is not None:
            parse_public_key(value)  # BadKey is a ValueError: pydantic names the field
        return value
