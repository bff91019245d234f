"""`python -m stack up|down|status`: start the whole stack natively and supervise it, stop it, or show it.

`env` writes .env for Compose; `systemd-unit` prints a unit file that runs `up` under systemd.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from stack import pids, runstate, systemd
from stack.keys import demo_keys, demo_login
from stack.native import DEMO_MODELS, NativeStack, StackOptions
from stack.procs import http_ok
from stack.settings import StackSettings

SYSTEM_PACKAGES = {"nginx": "nginx-light", "redis-server": "redis-server"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "env", "systemd-unit"])
    parser.add_argument("--replicas", type=int, help="number of replicas (default: BACKEND_REPLICAS or 2)")
    parser.add_argument("--port", type=int, help="gateway port (default: GATEWAY_PORT or 8080)")
    parser.add_argument("--user", action="store_true", help="systemd-unit: a user unit (systemctl --user)")
    args = parser.parse_args(argv)
    settings = StackSettings()
    commands = {"up": _up, "down": _down, "status": _status, "env": _env, "systemd-unit": _systemd_unit}
    return commands[args.command](settings, args)


def _up(settings: StackSettings, args: argparse.Namespace) -> int:
    state = runstate.read(settings.stack_run_dir)
    if state is not None and _supervisor_alive(state):
        print(f"a stack is already running ({settings.stack_run_dir}/stack.json); `make stop` first")
        return 1
    if state is not None:
        print("the previous start command died without stopping its processes; stopping them first")
        _stop_processes(state)
        runstate.remove(settings.stack_run_dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
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
            pass  # the supervisor's thread keeps the processes up; this one waits to be asked to stop
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
    print(f"  run state: {options.run_dir / runstate.FILE_NAME} (`make status`); exited processes restart\n")
    print(f"  try:  curl -H 'X-API-Key: <key>' {stack.gateway_url}/v1/models/churn")


def _down(settings: StackSettings, _: argparse.Namespace) -> int:
    state = runstate.read(settings.stack_run_dir)
    if state is None:
        print("no stack recorded; nothing to stop")
        return 0
    if _supervisor_alive(state):
        # The start command stops its processes itself, in order, and supervision restarts none of them.
        _terminate(state["supervisor"]["pid"], timeout_s=60.0)
    if runstate.read(settings.stack_run_dir) is not None:  # it had died: stop what it left running
        _stop_processes(state)
        runstate.remove(settings.stack_run_dir)
    print("stack stopped")
    return 0


def _supervisor_alive(state: dict[str, Any]) -> bool:
    """Whether the start command that wrote the file still runs (never this process: tests call main())."""
    supervisor = state.get("supervisor", {})
    pid = supervisor.get("pid")
    return pid != os.getpid() and pids.is_ours(pid, runstate.unix_time(supervisor.get("started_at")))


def _stop_processes(state: dict[str, Any]) -> None:
    """Stop what a dead start command left running: only pids that are still the processes it started."""
    for process in reversed(state["processes"]):
        if pids.is_ours(process["pid"], runstate.unix_time(process.get("started_at"))):
            _terminate(process["pid"])
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process["pid"], signal.SIGKILL)  # what is left of its group (each leads its own)


def _terminate(pid: int, timeout_s: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pids.started_at(pid) is None:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
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
    supervisor = state.get("supervisor", {}).get("pid")
    alive = "up" if _supervisor_alive(state) else "gone (its processes are not supervised)"
    print(f"  supervisor pid {supervisor}: {alive}")
    for process in state["processes"]:
        started = runstate.unix_time(process.get("started_at"))
        condition = process.get("state", "running")
        if condition == "running" and not pids.is_ours(process["pid"], started):
            condition = "gone"
        uptime = _duration(time.time() - started) if started and condition == "running" else "-"
        print(
            f"  {process.get('name', process['role']):<10} pid {process['pid']:<7} port {process['port']:<6}"
            f" {condition:<10} up {uptime:<8} restarts {process.get('restarts', 0)}"
        )
        if "reason" in process:
            print(f"    {process['reason']}")
    return 0


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def _systemd_unit(_: StackSettings, args: argparse.Namespace) -> int:
    print(systemd.unit(user_unit=args.user), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
