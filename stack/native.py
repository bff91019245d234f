"""The whole stack as local processes: redis-server, N uvicorn replicas, Streamlit, nginx in front.

`NativeStack` is what `python -m stack up` runs and what the whole-stack tests start, on free ports in a
temporary directory; the same code path both ways, supervision included (stack/supervise.py).
"""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack import gateway, pids, runstate
from stack.capacity import DEFAULT_WORKER_CONNECTIONS
from stack.keys import ApiKey, UiLogin, demo_keys, demo_login, load_keys
from stack.procs import (
    Process,
    free_port,
    http_ok,
    redis_cache_command,
    redis_data_command,
    redis_ping,
    stop_all,
    wait_for,
)
from stack.settings import StackSettings
from stack.supervise import RestartPolicy, Supervisor

ROOT = Path(__file__).resolve().parents[1]
DEMO_MODELS = (
    ["--demo", "churn"],
    ["--demo", "fraud", "--search", "fast"],
    ["--demo", "maintenance", "--search", "fast"],
    ["--demo", "recommend"],
)


def new_gateway_token() -> str:
    """The secret nginx adds to what it forwards, when the settings give none."""
    return secrets.token_urlsafe(32)


@dataclass
class StackOptions:
    """What one stack is made of; defaults come from StackSettings (environment and .env)."""

    run_dir: Path
    store_dir: Path
    gateway_port: int
    replicas: int = 2
    keys: list[ApiKey] = field(default_factory=list)
    ui_login: UiLogin | None = None
    generated: dict[str, Any] = field(default_factory=dict)
    rate_per_s: int = 1000
    burst: int = 2000
    max_body: str = "1m"
    docs_enabled: bool = True
    gateway_workers: int | None = None
    gateway_worker_connections: int = DEFAULT_WORKER_CONNECTIONS
    with_ui: bool = True
    ui_port: int = 8501
    host: str = "127.0.0.1"
    replica_env: dict[str, str] = field(default_factory=dict)
    replica_env_of: dict[int, dict[str, str]] = field(default_factory=dict)
    """Settings of one replica only, by its number (1-based), on top of replica_env."""
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    gateway_templates: Path = gateway.TEMPLATES
    replica_command: Callable[[int], list[str]] | None = None
    """How a replica on a port is started, when not with this checkout's `mlstack serve` (the benchmark
    runs an older checkout's replicas)."""
    gateway_token: str = field(default_factory=new_gateway_token)

    @classmethod
    def from_settings(cls, settings: StackSettings, store_dir: Path) -> StackOptions:
        keys = load_keys(
            settings.gateway_keys.get_secret_value() if settings.gateway_keys else None,
            settings.gateway_keys_file,
        )
        generated: dict[str, Any] = {}
        if not keys:
            keys = demo_keys()
            generated["keys"] = [k.public() for k in keys]
        login = None
        if settings.gateway_ui_auth:
            login = _ui_login(settings, generated)
        return cls(
            run_dir=settings.stack_run_dir.resolve(),
            store_dir=store_dir.resolve(),
            gateway_port=settings.gateway_port,
            replicas=settings.backend_replicas,
            keys=keys,
            ui_login=login,
            generated=generated,
            rate_per_s=settings.gateway_rate_per_s,
            burst=settings.gateway_burst,
            max_body=settings.gateway_max_body,
            docs_enabled=settings.gateway_docs,
            gateway_workers=settings.gateway_workers,
            gateway_worker_connections=settings.gateway_worker_connections,
            ui_port=settings.stack_ui_port,
            host=settings.gateway_host,
            restart=RestartPolicy(
                settings.stack_restart_delay_s,
                settings.stack_restart_max_delay_s,
                settings.stack_restart_limit,
                settings.stack_restart_window_s,
            ),
            gateway_token=(
                settings.gateway_token.get_secret_value() if settings.gateway_token else new_gateway_token()
            ),
        )


def _ui_login(settings: StackSettings, generated: dict[str, Any]) -> UiLogin:
    if settings.gateway_ui_user and settings.gateway_ui_password:
        return UiLogin(settings.gateway_ui_user, settings.gateway_ui_password.get_secret_value())
    login = demo_login()
    generated["ui"] = {"user": login.user, "password": login.password}
    return login


class NativeStack:
    """Start, inspect, hurt and stop one native stack. Use as a context manager or call up()/down().

    Every process is supervised from its start: one that exits unasked is started again on the same
    port (options.restart), and the run-state file follows (new pid, `restarts`, `state`)."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.token = options.gateway_token
        self.redis_port = free_port()
        self.data_redis_port = free_port()
        self.replicas: list[Process] = []
        self.processes: list[Process] = []
        self.logs = options.run_dir / "logs"
        self.supervisor = Supervisor(options.restart, self.logs / "supervisor.log", self._publish)
        self._published = False  # the run-state file appears once the stack serves

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> NativeStack:
        self.up()
        return self

    def __exit__(self, *_: object) -> None:
        self.down()

    @property
    def gateway_url(self) -> str:
        return f"http://{self.options.host}:{self.options.gateway_port}"

    def up(self, timeout_s: float = 60.0) -> None:
        self.options.run_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor.begin()
        try:
            self._launch(self._redis_process(), timeout_s)
            self._launch(self._data_redis_process(), timeout_s)
            self._start_replicas(timeout_s)
            if self._ui_available():
                self._launch(self._ui_process(), timeout_s)
            self._render()
            self._launch(self._nginx_process(), timeout_s)
            wait_for(lambda: http_ok(f"{self.gateway_url}/v2/health/ready"), "gateway → replicas", timeout_s)
            self._published = True
            self._publish()
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        self.supervisor.close()  # first: nothing is started again while the stack stops
        self._published = False
        stop_all(self.processes)
        self.processes.clear()
        runstate.remove(self.options.run_dir)

    # -- what tests and operators use ------------------------------------------------------------

    def key(self, scope: str) -> str:
        return next(k.secret for k in self.options.keys if k.scope == scope)

    def process(self, role: str, index: int = 0) -> Process:
        return [p for p in self.processes if p.role == role][index]

    def stop(self, process: Process) -> None:
        """Stop a process on purpose: supervision leaves it down until `start`."""
        self.supervisor.stop(process)

    def start(self, process: Process, timeout_s: float = 30.0) -> None:
        """Start a process stopped on purpose (or marked failed) and wait until it is ready."""
        self.supervisor.start(process)
        self.supervisor.wait_ready(process, self._ready_check(process), timeout_s)

    def restart(self, process: Process, timeout_s: float = 30.0) -> None:
        self.stop(process)
        self.start(process, timeout_s)

    def kill_replica(self, index: int, signum: int = signal.SIGKILL) -> Process:
        """Send a signal to replica `index` (0-based), as a crash would: supervision starts it again."""
        replica = self.replicas[index]
        replica.signal(signum)
        return replica

    def stop_redis(self) -> None:
        self.stop(self.process("redis"))

    def start_redis(self) -> None:
        self.start(self.process("redis"))

    def reload_gateway(self, keys: list[ApiKey] | None = None) -> None:
        """Rotate keys live: render the key file only, check the config, then HUP the master (a reload:
        new workers take the new keys while the old ones finish the requests they hold)."""
        if keys is not None:
            self.options.keys = keys
        config = self._gateway_config()
        conf_dir = self.options.run_dir / "nginx"
        paths = gateway.paths_for(config, conf_dir, self.options.run_dir)
        gateway.render_keys(config, conf_dir, paths)
        gateway.check(conf_dir / "nginx.conf", paths["error_log"])
        self.process("gateway").signal(signal.SIGHUP)

    def state(self) -> dict[str, Any]:
        """The run-state file's content: the contract's shape, plus what supervision knows."""
        state: dict[str, Any] = {
            "gateway_url": self.gateway_url,
            "supervisor": {
                "pid": os.getpid(),
                "started_at": runstate.timestamp(pids.started_at(os.getpid()) or time.time()),
                "log": _relative(self.supervisor.events_log),
            },
            "processes": [
                {
                    "role": p.role,
                    "name": p.name,
                    "pid": p.pid,
                    "port": p.port,
                    "log": _relative(p.log),
                    **self.supervisor.status(p),
                }
                for p in self.processes
            ],
        }
        if self.options.generated:
            state["credentials"] = self.options.generated
        return state

    # -- internals -------------------------------------------------------------------------------

    def _publish(self) -> None:
        """Rewrite the run-state file (supervision calls this after every start, exit and restart)."""
        if self._published:
            runstate.write(self.options.run_dir, self.state())

    def _launch(self, process: Process, timeout_s: float) -> None:
        self.processes.append(process)
        self.supervisor.watch(process)
        self.supervisor.wait_ready(process, self._ready_check(process), timeout_s)

    def _ready_check(self, process: Process) -> Callable[[], bool]:
        port = process.port or 0
        urls = {
            "replica": f"http://127.0.0.1:{port}/v2/health/ready",
            "ui": f"http://127.0.0.1:{port}/ui/_stcore/health",
            "gateway": f"{self.gateway_url}/healthz",
        }
        if process.role in urls:
            return lambda: http_ok(urls[process.role])
        return lambda: redis_ping(port)

    def _start_replicas(self, timeout_s: float) -> None:
        """Start them all, then wait until each is ready or failed: the stack serves with fewer replicas
        (the failed one named in the run-state file), not with none."""
        for index in range(1, self.options.replicas + 1):
            replica = self._replica_process(index)
            self.replicas.append(replica)
            self.processes.append(replica)
            self.supervisor.watch(replica)
        pending, ready = list(self.replicas), []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for replica in list(pending):
                if self.supervisor.status(replica)["state"] == "failed":
                    pending.remove(replica)
                elif self._ready_check(replica)():
                    pending.remove(replica)
                    ready.append(replica)
            time.sleep(0.05)
        if not ready:
            why = [f"{r.name}: {self.supervisor.status(r).get('reason', 'not ready')}" for r in self.replicas]
            raise RuntimeError(f"no replica became ready within {timeout_s:.0f}s; " + "; ".join(why))

    def _redis_process(self) -> Process:
        workdir = self.options.run_dir / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        return Process(
            "redis",
            "redis",
            redis_cache_command(self.redis_port, workdir),
            self.logs / "redis.log",
            port=self.redis_port,
        )

    def _data_redis_process(self) -> Process:
        workdir = self.options.run_dir / "redis-data"  # the append-only file: kept across restarts
        workdir.mkdir(parents=True, exist_ok=True)
        return Process(
            "redis-data",
            "redis-data",
            redis_data_command(self.data_redis_port, workdir),
            self.logs / "redis-data.log",
            port=self.data_redis_port,
        )

    def _replica_process(self, index: int) -> Process:
        port = free_port()
        command = (self.options.replica_command or serve_command)(port)
        env = {
            "BACKEND_STORE_DIR": str(self.options.store_dir),
            "BACKEND_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "BACKEND_USERS_REDIS_URL": f"redis://127.0.0.1:{self.data_redis_port}/0",
            "BACKEND_GATEWAY_TOKEN": self.token,
            "BACKEND_REPLICA_NAME": f"replica-{index}",
            **self.options.replica_env,
            **self.options.replica_env_of.get(index, {}),
        }
        return Process(
            "replica", f"replica-{index}", command, self.logs / f"replica-{index}.log", port=port, env=env
        )

    def _ui_available(self) -> bool:
        # The UI is optional: without its app or without Streamlit installed, /ui/ answers 503 JSON.
        has_app = (ROOT / "frontend" / "app.py").is_file()
        return self.options.with_ui and has_app and importlib.util.find_spec("streamlit") is not None

    def _ui_process(self) -> Process:
        port = self.options.ui_port
        command = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "frontend" / "app.py"),
            "--server.baseUrlPath",
            "ui",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ]
        env = {"FRONTEND_GATEWAY_URL": self.gateway_url, "FRONTEND_API_KEY": self.key("predict")}
        admin = [k for k in self.options.keys if k.scope == "admin"]
        if admin:
            env["FRONTEND_ADMIN_KEY"] = admin[0].secret
        users = [k for k in self.options.keys if k.scope == "users"]
        if users:
            env["FRONTEND_USERS_KEY"] = users[0].secret
        # cwd: Streamlit reads .streamlit/config.toml from the working directory
        return Process("ui", "ui", command, self.logs / "ui.log", port=port, env=env, cwd=ROOT / "frontend")

    def _gateway_config(self) -> gateway.GatewayConfig:
        options = self.options
        ui = [p for p in self.processes if p.role == "ui"]
        return gateway.GatewayConfig(
            mode="native",
            listen=f"{options.host}:{options.gateway_port}",
            keys=options.keys,
            gateway_token=self.token,
            replica_ports=[r.port for r in self.replicas if r.port],
            ui_upstream=f"127.0.0.1:{ui[0].port}" if ui else None,
            ui_login=options.ui_login,
            rate_per_s=options.rate_per_s,
            burst=options.burst,
            max_body=options.max_body,
            docs_enabled=options.docs_enabled,
            workers=options.gateway_workers,
            worker_connections=options.gateway_worker_connections,
            worker_user=_run_dir_owner(options.run_dir),
            templates=options.gateway_templates,
        )

    def _render(self) -> None:
        config = self._gateway_config()
        for shortfall in gateway.shortfalls(config):
            print(f"warning: {shortfall}", file=sys.stderr, flush=True)
        conf_dir = self.options.run_dir / "nginx"
        paths = gateway.paths_for(config, conf_dir, self.options.run_dir)
        gateway.check(gateway.render(config, conf_dir, paths), paths["error_log"])

    def _nginx_process(self) -> Process:
        conf_dir = self.options.run_dir / "nginx"
        error_log = str(self.logs / "gateway-error.log")
        prefix = str(self.options.run_dir)
        # In the foreground (daemon off), so the PID we hold is the master's: SIGHUP reloads, SIGTERM stops.
        command = [gateway.nginx_binary(), "-c", str(conf_dir / "nginx.conf"), "-p", prefix, "-e", error_log]
        command += ["-g", "daemon off;"]
        return Process(
            "gateway", "gateway", command, self.logs / "gateway.log", port=self.options.gateway_port
        )


def serve_command(port: int) -> list[str]:
    return [sys.executable, "-m", "mlstack", "serve", "--host", "127.0.0.1", "--port", str(port)]


def _run_dir_owner(run_dir: Path) -> str | None:
    """As root, nginx would run its workers as `nobody`, who cannot read a run dir inside a private
    directory (a 0700 home or pytest's tmp): the workers then run as the run dir's owner instead."""
    if os.geteuid() != 0:
        return None  # the workers run as the invoking user anyway
    info = run_dir.stat()
    return f"{pwd.getpwuid(info.st_uid).pw_name} {grp.getgrgid(info.st_gid).gr_name}"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
