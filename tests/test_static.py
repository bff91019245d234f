"""Checks that need no running stack: both gateway renderings pass `nginx -t`; settings are documented."""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.settings import LoadtestSettings
from mlstack.settings import Settings
from stack import gateway
from stack.compose_gateway import config_from_environment
from stack.keys import demo_keys, demo_login, parse_keys
from stack.native import StackOptions
from stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]


def config(mode: str) -> gateway.GatewayConfig:
    return gateway.GatewayConfig(
        mode=mode,  # type: ignore[arg-type]  # the test passes the two literal modes
        listen="127.0.0.1:18080" if mode == "native" else "8080",
        keys=demo_keys(),
        gateway_token="t" * 43,
        replica_ports=[18001, 18002],
        ui_upstream="127.0.0.1:18501" if mode == "native" else "ui:8501",
        ui_login=demo_login(),
    )


def test_native_rendering_passes_nginx_t(tmp_path: Path) -> None:
    cfg = config("native")
    paths = gateway.paths_for(cfg, tmp_path / "nginx", tmp_path)
    (tmp_path / "logs").mkdir()
    conf = gateway.render(cfg, tmp_path / "nginx", paths)

    gateway.check(conf, paths["error_log"])
    assert "server 127.0.0.1:18002 max_fails=3" in (tmp_path / "nginx" / "api_backends.conf").read_text()


def test_compose_rendering_passes_nginx_t_apart_from_dynamic_resolution(tmp_path: Path) -> None:
    """`resolve` in an upstream needs nginx >= 1.27.3 (the Compose image); Debian's 1.22 refuses just that."""
    cfg = config("compose")
    conf_dir = tmp_path / "nginx"
    paths = gateway.paths_for(cfg, conf_dir)
    conf = gateway.render(cfg, conf_dir, paths)
    backends = conf_dir / "api_backends.conf"
    text = backends.read_text()
    assert re.search(r"resolver 127\.0\.0\.11 valid=5s ipv6=off;", text)
    assert "server backend:8000 resolve max_fails=3 fail_timeout=5s;" in text

    static = re.sub(r"\n\s*resolver [^\n]*", "", text).replace("backend:8000 resolve", "127.0.0.1:8000")
    backends.write_text(static.replace("ui:8501 resolve", "127.0.0.1:8501"))
    local = conf.read_text().replace("/tmp/nginx.pid", str(tmp_path / "nginx.pid"))
    conf.write_text(local.replace("/tmp/nginx", str(tmp_path / "temp")))
    (tmp_path / "temp").mkdir()
    gateway.check(conf, str(tmp_path / "error.log"))


def test_nginx_runs_one_worker_per_two_cores_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def workers(cfg: gateway.GatewayConfig) -> str:
        conf = gateway.render(cfg, tmp_path, gateway.paths_for(cfg, tmp_path, tmp_path))
        return re.findall(r"^worker_processes (\w+);", conf.read_text(), re.M)[0]

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert workers(config("native")) == "1"  # the replicas need the other core
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert workers(config("native")) == "4"
    assert workers(dataclasses.replace(config("native"), workers=3)) == "3"
    store = tmp_path / "store"
    options = StackOptions.from_settings(StackSettings(gateway_workers=3, _env_file=None), store)
    assert options.gateway_workers == 3
    monkeypatch.setenv("GATEWAY_TOKEN", "t" * 43)
    monkeypatch.setenv("GATEWAY_RESOLVER", "127.0.0.11")
    monkeypatch.setenv("GATEWAY_WORKERS", "3")
    assert workers(config_from_environment()) == "3"
    monkeypatch.setenv("GATEWAY_WORKERS", "")  # docker-compose.yml passes it empty when unset
    assert workers(config_from_environment()) == "4"


def test_rendered_key_file_is_private(tmp_path: Path) -> None:
    cfg = config("native")
    gateway.render(cfg, tmp_path, gateway.paths_for(cfg, tmp_path, tmp_path))

    assert (tmp_path / "api_keys.conf").stat().st_mode & 0o077 == 0
    assert cfg.keys[0].secret in (tmp_path / "api_keys.conf").read_text()


@pytest.mark.parametrize(
    ("settings", "prefix"), [(Settings, "BACKEND_"), (StackSettings, ""), (LoadtestSettings, "LOADTEST_")]
)
def test_every_setting_is_documented_in_env_example(settings: type, prefix: str) -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.M))
    fields = {f"{prefix}{name.upper()}" for name in settings.model_fields}

    assert fields <= documented
    assert all(field.description for field in settings.model_fields.values())


def test_env_example_names_no_unknown_setting() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    known = (
        {f"BACKEND_{n.upper()}" for n in Settings.model_fields}
        | {n.upper() for n in StackSettings.model_fields}
        | {f"LOADTEST_{n.upper()}" for n in LoadtestSettings.model_fields}
    )
    frontend = {line.split("=")[0].lstrip("# ") for line in documented if line.startswith("FRONTEND_")}

    assert documented - known - frontend == set()


def test_nginx_is_installed_where_the_tests_run() -> None:
    assert shutil.which("nginx") or Path("/usr/sbin/nginx").exists()


@pytest.mark.parametrize(
    "entry",
    ["default:predict:" + "k" * 32, "ops:root:" + "k" * 32, "ops:admin:short", "ops:admin:~" + "k" * 32],
)
def test_a_key_nginx_would_misread_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="API key"):
        parse_keys(entry)


def test_user_data_writes_are_never_replayed_on_another_replica(tmp_path: Path) -> None:
    cfg = config("native")
    gateway.render(cfg, tmp_path, gateway.paths_for(cfg, tmp_path, tmp_path))
    users = (tmp_path / "api_conf.d" / "users.conf").read_text()

    assert "location ~ ^/v1/users(/|$)" in users
    assert "non_idempotent" not in users  # so a POST that reached one replica is never sent to another


@pytest.mark.parametrize("user_unit", [False, True])
def test_the_systemd_unit_runs_the_start_command_from_this_checkout(tmp_path: Path, user_unit: bool) -> None:
    command = [sys.executable, "-m", "stack", "systemd-unit", *(["--user"] if user_unit else [])]
    text = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60).stdout
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.read_string(text)
    service = unit["Service"]
    (tmp_path / "mlstack.service").write_text(text)

    assert service["ExecStart"] == f"{sys.executable} -m stack up"
    assert Path(service["WorkingDirectory"]) == ROOT
    assert (service["KillMode"], service["Restart"]) == ("mixed", "on-failure")
    assert ("User" in service) is not user_unit
    if shutil.which("systemd-analyze"):  # systemd's own check: syntax, directives, that the binary exists
        # (in system mode for both: --user needs a user session's manager, absent where tests run)
        verify = ["systemd-analyze", "verify", str(tmp_path / "mlstack.service")]
        checked = subprocess.run(verify, capture_output=True, text=True, timeout=60)
        assert (checked.returncode, checked.stderr) == (0, "")


def test_every_type_ignore_names_its_error_and_says_why() -> None:
    """In the checked code and in what mypy does not check yet (tests, UI, tools), for the day it does."""
    explained = re.compile(r"# type: ignore\[[a-z-]+(, [a-z-]+)*\]  # \w")
    unexplained = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("backend", "stack", "tests", "frontend", "bench", "loadtests", "scripts")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "type: ignore" in line and not explained.search(line) and "re.compile" not in line
    ]
    assert unexplained == []
