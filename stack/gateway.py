"""Renders the nginx templates (nginx/*.j2) for a native run or for Compose, checks them, reloads nginx.

Jinja2, not envsubst or string.Template: nginx's own `$variables` would collide with their `$` syntax.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from stack.capacity import DEFAULT_WORKER_CONNECTIONS, capacity
from stack.keys import ApiKey, UiLogin, htpasswd_line

TEMPLATES = Path(__file__).resolve().parents[1] / "nginx"
SECRET_FILES = {"api_keys.conf"}


def default_workers() -> int:
    """nginx workers when none are asked for: one per two cores, at least one. The gateway shares the
    machine with the replicas and Redis, and one worker proxies far more requests than a replica can
    answer; each extra process is one more to wake. On 2 cores one worker made 1-row misses 1.07× as
    fast as two (twice, side by side; 1.035× at 64 connections), the ceiling route even at 16
    connections and 0.92× at 64."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the templates need; `mode` decides how replicas are found."""

    mode: Literal["native", "compose"]
    listen: str
    keys: list[ApiKey]
    gateway_token: str
    replica_ports: list[int] = field(default_factory=list)
    backend_host: str = "backend:8000"
    resolver: str = "127.0.0.11"
    ui_upstream: str | None = None
    ui_login: UiLogin | None = None
    rate_per_s: int = 1000
    burst: int = 2000
    max_body: str = "1m"
    docs_enabled: bool = True
    workers: int | None = None
    """nginx worker processes; None: default_workers()."""
    worker_connections: int = DEFAULT_WORKER_CONNECTIONS
    """Connections each worker should hold; the open-files limit may allow fewer (shortfalls())."""
    worker_user: str | None = None
    """`user` for the worker processes; only meaningful when the master runs as root."""
    templates: Path = TEMPLATES
    """Where the templates are read from: another checkout's, when the benchmark compares two."""


def paths_for(config: GatewayConfig, conf_dir: Path, run_dir: Path | None = None) -> dict[str, str]:
    if config.mode == "compose":
        return {
            "conf_dir": str(conf_dir),
            "pid": "/tmp/nginx.pid",
            "error_log": "stderr",
            "access_log": "/dev/stdout",
            "temp": "/tmp/nginx",
            "htpasswd": f"{conf_dir}/htpasswd",
        }
    assert run_dir is not None
    return {
        "conf_dir": str(conf_dir),
        "pid": str(run_dir / "nginx.pid"),
        "error_log": str(run_dir / "logs/gateway-error.log"),
        "access_log": str(run_dir / "logs/gateway-access.log"),
        "temp": str(run_dir / "nginx-temp"),
        "htpasswd": str(conf_dir / "htpasswd"),
    }


def render(config: GatewayConfig, conf_dir: Path, paths: dict[str, str]) -> Path:
    """Write every template (and copy every plain file) into conf_dir; returns the main nginx.conf."""
    context = _context(config, paths)
    environment = Environment(
        loader=FileSystemLoader(config.templates),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    for source in sorted(config.templates.rglob("*")):
        if source.is_file():
            _write(environment, config.templates, source.relative_to(config.templates), conf_dir, context)
    if config.mode == "native":
        temp = Path(paths["temp"])
        temp.mkdir(parents=True, exist_ok=True)
        temp.chmod(0o1777)  # nginx workers drop root privileges and still need to write here
        Path(paths["access_log"]).parent.mkdir(parents=True, exist_ok=True)
    htpasswd = conf_dir / "htpasswd"
    htpasswd.write_text(htpasswd_line(config.ui_login) if config.ui_login else "")
    htpasswd.chmod(0o644)  # read by the worker processes; it holds a salted hash, not the password
    return conf_dir / "nginx.conf"


def render_keys(config: GatewayConfig, conf_dir: Path, paths: dict[str, str]) -> None:
    """Only the key file: rotating keys changes nothing else."""
    environment = Environment(
        loader=FileSystemLoader(config.templates),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    _write(environment, config.templates, Path("api_keys.conf.j2"), conf_dir, _context(config, paths))


def check(conf: Path, error_log: str) -> None:
    """`nginx -t`: raises with nginx's own message when the configuration is refused."""
    result = subprocess.run(
        [nginx_binary(), "-t", "-q", "-c", str(conf), "-e", error_log],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"nginx refused {conf.name}: {result.stderr.strip()}")


def shortfalls(config: GatewayConfig) -> list[str]:
    """What the machine does not allow of the gateway's asked capacity, for a warning at start."""
    return capacity(config.worker_connections).warnings


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _context(config: GatewayConfig, paths: dict[str, str]) -> dict[str, Any]:
    return {
        "mode": config.mode,
        "listen": config.listen,
        "keys": config.keys,
        "gateway_token": config.gateway_token,
        "replica_ports": config.replica_ports,
        "backend_host": config.backend_host,
        "resolver": config.resolver,
        "ui_upstream": config.ui_upstream,
        "ui_auth": config.ui_login is not None,
        "rate_per_s": config.rate_per_s,
        "burst": config.burst,
        "max_body": config.max_body,
        "docs_enabled": config.docs_enabled,
        "workers": config.workers or default_workers(),
        "capacity": capacity(config.worker_connections),
        "worker_user": config.worker_user,
        "paths": paths,
    }


def _write(
    environment: Environment, templates: Path, relative: Path, conf_dir: Path, context: dict[str, Any]
) -> None:
    """One template (or plain file) of the templates folder, rendered into conf_dir."""
    target = conf_dir / (str(relative).removesuffix(".j2"))
    target.parent.mkdir(parents=True, exist_ok=True)
    if relative.suffix == ".j2":
        text = environment.get_template(str(relative)).render(context)
    else:
        text = (templates / relative).read_text()
    tmp = target.with_suffix(target.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if target.name in SECRET_FILES else 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, target)
