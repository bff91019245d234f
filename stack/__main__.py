"""`python -m stack up|down|status`: start the whole stack natively and wait, stop it, or show it."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from stack import runstate
from stack.keys import demo_keys, demo_login
from stack.native import DEMO_MODELS, NativeStack, StackOptions
from stack.procs import http_ok
from stack.settings import StackSettings

SYSTEM_PACKAGES = {"nginx": "nginx-light", "redis-server": "redis-server"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--replicas", type=int, help="number of replicas (default: BACKEND_REPLICAS or 2)")
    parser.add_argument("--port", type=int, help="gateway port (default: GATEWAY_PORT or 8080)")
    args = parser.parse_args(argv)
    settings = StackSettings()
    return {"up": _up, "down": _down, "status": _status, "env": _env}[args.command](settings, args)


def _up(settings: StackSettings, args: argparse.Namespace) -> int:
    if runstate.read(settings.stack_run_dir) is not None:
        print(f"a stack is already recorded in {settings.stack_run_dir}/stack.json; `make stop` first")
        return 1
    require_system_packages()
    from mlstack.settings import Settings  # the store is the replicas' setting, BACKEND_STORE_DIR

    store_dir = Settings().store_dir
    train_demo_models(store_dir)
    options = StackOptions.from_settings(settings, store_dir)
    options.replicas = args.replicas or options.replicas
    options.gateway_port = args.port or options.gateway_port
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with NativeStack(options) as stack:
        _announce(stack)
        while not stop.wait(1.0):
            if not all(p.running for p in stack.processes):
                dead = [p.name for p in stack.processes if not p.running]
                print(f"stopping: {', '.join(dead)} exited (see {stack.logs})")
                break
    print("stack stopped")
    return 0


def require_system_packages() -> None:
    missing = [
        pkg
        for binary, pkg in SYSTEM_PACKAGES.items()
        if shutil.which(binary) is None and not Path(f"/usr/sbin/{binary}").exists()
    ]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        sys.exit(
            f"missing {', '.join(missing)}; install them with: sudo apt-get install -y {' '.join(missing)}"
        )
    print(f"installing {', '.join(missing)} with apt-get")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def train_demo_models(store_dir: Path) -> None:
    """An empty store gets the demo models first (each command does nothing if its model exists)."""
    for args in DEMO_MODELS:
        command = [
            sys.executable,
            "-m",
            "mlstack.cli",
            "train",
            *args,
            "--if-empty",
            "--store-dir",
            str(store_dir),
        ]
        subprocess.run(command, check=True)


def _announce(stack: NativeStack) -> None:
    options = stack.options
    print(f"\nmlstack is up: {stack.gateway_url}  ({options.replicas} replicas; Ctrl-C stops everything)")
    print(f"  UI:   {stack.gateway_url}/ui/")
    print(f"  docs: {stack.gateway_url}/docs")
    generated = options.generated
    for key in generated.get("keys", []):
        print(f"  API key {key['name']:<11} ({key['scope']}): {key['key']}")
    if "ui" in generated:
        print(f"  UI login: {generated['ui']['user']} / {generated['ui']['password']}")
    if not generated:
        print("  API keys and UI login: as configured in .env")
    print(f"  run state: {options.run_dir / runstate.FILE_NAME}\n")
    print(f"  try:  curl -H 'X-API-Key: <key>' {stack.gateway_url}/v1/models/churn")


def _down(settings: StackSettings, _: argparse.Namespace) -> int:
    state = runstate.read(settings.stack_run_dir)
    if state is None:
        print("no stack recorded; nothing to stop")
        return 0
    for process in reversed(state["processes"]):
        _terminate(process["pid"])
    runstate.remove(settings.stack_run_dir)
    print("stack stopped")
    return 0


def _terminate(pid: int, timeout_s: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _env(_: StackSettings, __: argparse.Namespace) -> int:
    """Write .env with generated secrets for Compose (gateway token, demo keys, UI login); never overwrite."""
    path = Path(".env")
    if path.exists():
        print(".env exists; not touching it (Compose needs GATEWAY_TOKEN and GATEWAY_KEYS in it)")
        return 0
    keys, login = demo_keys(), demo_login()
    lines = [
        "# Generated by `make env`. Secrets: keep this file out of git (.gitignore has it).",
        f"GATEWAY_TOKEN={secrets.token_urlsafe(32)}",
        "GATEWAY_KEYS=" + ",".join(f"{k.name}:{k.scope}:{k.secret}" for k in keys),
        f"GATEWAY_UI_USER={login.user}",
        f"GATEWAY_UI_PASSWORD={login.password}",
        # the UI container's own keys (it calls the gateway like any client)
        "FRONTEND_API_KEY=" + next(k.secret for k in keys if k.scope == "predict"),
        "FRONTEND_ADMIN_KEY=" + next(k.secret for k in keys if k.scope == "admin"),
        "FRONTEND_USERS_KEY=" + next(k.secret for k in keys if k.scope == "users"),
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    for key in keys:
        print(f"  API key {key.name:<11} ({key.scope}): {key.secret}")
    print(f"  UI login: {login.user} / {login.password}\nwritten to .env")
    return 0


def _status(settings: StackSettings, _: argparse.Namespace) -> int:
    state = runstate.read(settings.stack_run_dir)
    if state is None:
        print("no stack running (no run-state file)")
        return 1
    print(f"gateway {state['gateway_url']}: {'up' if http_ok(state['gateway_url'] + '/healthz') else 'DOWN'}")
    for process in state["processes"]:
        alive = "up" if Path(f"/proc/{process['pid']}").exists() else "gone"
        print(f"  {process['role']:<8} pid {process['pid']:<7} port {process['port']}  {alive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
