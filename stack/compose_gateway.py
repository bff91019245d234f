"""The gateway container's entrypoint: render the nginx templates in Compose mode, then become nginx.

It runs inside the nginx image, where only python3 and Jinja2 (Debian packages) are installed, so it
reads its few GATEWAY_* variables itself instead of through pydantic-settings.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from stack import gateway
from stack.capacity import DEFAULT_WORKER_CONNECTIONS
from stack.keys import UiLogin, demo_keys, demo_login, parse_keys

CONF_DIR = Path("/etc/nginx/mlstack")
RESOLV_CONF = Path("/etc/resolv.conf")


def config_from_environment() -> gateway.GatewayConfig:
    env = os.environ
    keys = parse_keys(env.get("GATEWAY_KEYS", ""))
    if not keys:
        keys = demo_keys()
        for key in keys:
            print(
                f"gateway: no GATEWAY_KEYS set; generated {key.name} ({key.scope}): {key.secret}", flush=True
            )
    return gateway.GatewayConfig(
        mode="compose",
        listen="8080",
        keys=keys,
        gateway_token=env["GATEWAY_TOKEN"],
        backend_host=env.get("GATEWAY_BACKEND", "backend:8000"),
        ui_upstream=env.get("GATEWAY_UI") or None,
        ui_login=_ui_login(env),
        rate_per_s=int(env.get("GATEWAY_RATE_PER_S", "1000")),
        burst=int(env.get("GATEWAY_BURST", "2000")),
        max_body=env.get("GATEWAY_MAX_BODY", "1m"),
        docs_enabled=env.get("GATEWAY_DOCS", "true").lower() == "true",
        workers=int(env["GATEWAY_WORKERS"]) if env.get("GATEWAY_WORKERS") else None,
        worker_connections=int(env.get("GATEWAY_WORKER_CONNECTIONS") or DEFAULT_WORKER_CONNECTIONS),
        resolver=env.get("GATEWAY_RESOLVER") or container_resolver(),
    )


def container_resolver(resolv_conf: Path = RESOLV_CONF) -> str:
    """The engine's DNS server for service names: the first nameserver of the container's resolv.conf.

    Docker's embedded DNS is 127.0.0.11; podman's (aardvark-dns) listens on each network's gateway
    address and lists the host's servers after its own, so the first one is the one that knows `backend`.
    """
    try:
        lines = resolv_conf.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            return f"[{fields[1]}]" if ":" in fields[1] else fields[1]
    return "127.0.0.11"


def _ui_login(env: os._Environ[str]) -> UiLogin | None:
    if env.get("GATEWAY_UI_AUTH", "true").lower() == "false":
        return None
    if env.get("GATEWAY_UI_USER") and env.get("GATEWAY_UI_PASSWORD"):
        return UiLogin(env["GATEWAY_UI_USER"], env["GATEWAY_UI_PASSWORD"])
    login = demo_login()
    print(f"gateway: no UI login set; generated {login.user} / {login.password}", flush=True)
    return login


def announce(config: gateway.GatewayConfig) -> None:
    """What the container's limits do not allow of the asked capacity, in its log before nginx starts."""
    for shortfall in gateway.shortfalls(config):
        print(f"gateway: warning: {shortfall}", flush=True)


def main() -> None:
    config = config_from_environment()
    announce(config)
    paths = gateway.paths_for(config, CONF_DIR)
    Path(paths["temp"]).mkdir(parents=True, exist_ok=True)
    conf = gateway.render(config, CONF_DIR, paths)
    sys.stdout.flush()
    os.execvp("nginx", ["nginx", "-c", str(conf), "-e", "stderr", "-g", "daemon off;"])


if __name__ == "__main__":
    main()
