"""The Kubernetes manifests against the rest of the project, so that they run the same images with the same
settings and cannot drift: every variable they set is a setting of .env.example, every setting has a place
in them (or a reason why not), values are the defaults or what docker-compose.yml says, and images, ports,
health checks, commands and users are the Dockerfiles' and docker-compose.yml's."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from test_compose import resolved

from k8s_objects import Object, Workload, config_map, of_kind, rendered, workload, workloads
from loadtests.settings import LoadtestSettings
from mlstack.settings import Settings as BackendSettings  # the one place that knows the backend's module
from settings import FrontendSettings
from stack import kubernetes
from stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS: dict[str, type[BaseSettings]] = {
    "BACKEND_": BackendSettings,
    "": StackSettings,
    "FRONTEND_": FrontendSettings,
    "LOADTEST_": LoadtestSettings,
}
# Settings of .env.example that the manifests leave out on purpose.
SUPERVISION = "the native launcher's restarts; in Kubernetes the kubelet restarts containers"
NOT_IN_KUBERNETES = {
    "GATEWAY_PORT": "the port Compose publishes on the host; here the gateway Service's port",
    "GATEWAY_HOST": "where the native gateway listens; a pod listens on its own address",
    "GATEWAY_KEYS_FILE": "native key rotation from a file; here the keys are in the Secret",
    "GATEWAY_RESOLVER": "the gateway reads the cluster DNS from the pod's resolv.conf by itself",
    "BACKEND_REPLICAS": "the native launcher's count; here `replicas:` and the autoscaler count",
    "BACKEND_REPLICA_NAME": "its default, the host name, is the pod's name",
    "BACKEND_HOST": "the image's CMD says `mlstack serve --host 0.0.0.0`",
    "BACKEND_PORT": "the image's CMD says `--port 8000`, which the probes and Services use",
    "STACK_RUN_DIR": "the native launcher's run directory",
    "STACK_UI_PORT": "the native launcher's loopback port for the UI",
    "STACK_RESTART_DELAY_S": SUPERVISION,
    "STACK_RESTART_MAX_DELAY_S": SUPERVISION,
    "STACK_RESTART_LIMIT": SUPERVISION,
    "STACK_RESTART_WINDOW_S": SUPERVISION,
    "LOADTEST_RUN_STATE": "the native stack's run-state file; the job is given LOADTEST_HOST",
}
# Kubernetes workload -> the docker-compose.yml service it runs as (retrain: the trainer's image).
COMPOSE_SERVICE = {
    "backend": "backend",
    "gateway": "gateway",
    "ui": "ui",
    "redis": "redis",
    "redis-data": "redis-data",
    "trainer": "trainer",
    "loadtest": "loadtest",
    "retrain": "trainer",
}
CLUSTER_DNS_TTL_S = 5  # CoreDNS's kubernetes plugin default


def settings_fields() -> dict[str, FieldInfo]:
    return {
        f"{prefix}{name.upper()}": f
        for prefix, cls in SETTINGS.items()
        for name, f in cls.model_fields.items()
    }


def documented() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))


def variables(w: Workload, objects: tuple[Object, ...]) -> dict[str, str]:
    """Every variable a workload's containers get -> where from ("configmap" or "secret:<key>")."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in of_kind(objects, "ConfigMap")}
    found = {}
    for container in w.containers:
        for source in container.get("envFrom", []):
            assert "configMapRef" in source, "a whole Secret as variables would hide which keys a pod gets"
            found.update(dict.fromkeys(maps[source["configMapRef"]["name"]], "configmap"))
        for variable in container.get("env", []):
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            found[variable["name"]] = f"secret:{ref['key']}" if ref else "literal"
    return found


def all_variables(overlay: str) -> dict[str, str]:
    objects = rendered(overlay)
    return {k: v for w in workloads(objects) for k, v in variables(w, objects).items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return resolved(GATEWAY_TOKEN="t" * 43, COMPOSE_PROFILES="loadtest")["services"]  # type: ignore[no-any-return]  # parsed JSON or YAML is Any


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_every_variable_the_manifests_set_is_a_documented_setting(overlay: str) -> None:
    names = set(all_variables(overlay))

    assert names - set(settings_fields()) == set()
    assert names - documented() == set()


def test_every_documented_setting_has_a_place_in_the_manifests_or_a_reason() -> None:
    names = set(all_variables("dev")) | set(all_variables("prod"))

    assert documented() - names - set(NOT_IN_KUBERNETES) == set()
    assert set(NOT_IN_KUBERNETES) - documented() == set(), "a setting listed here is gone from .env.example"
    assert set(NOT_IN_KUBERNETES) & names == set(), "a setting listed here is set in the manifests after all"


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_secrets_come_from_the_secret_and_only_from_it(overlay: str) -> None:
    fields = settings_fields()
    secret_settings = {n for n, f in fields.items() if "SecretStr" in str(f.annotation)}
    found = all_variables(overlay)
    keys = {source.removeprefix("secret:") for source in found.values() if source.startswith("secret:")}

    assert {n for n in secret_settings & set(found) if not found[n].startswith("secret:")} == set()
    assert keys <= set(kubernetes.REQUIRED_SECRETS + kubernetes.OPTIONAL_SECRETS)
    assert set(kubernetes.REQUIRED_SECRETS + kubernetes.OPTIONAL_SECRETS) <= documented()


def test_make_env_writes_every_secret_the_manifests_require(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # `make env` writes .env into the working directory
    subprocess.run(
        [sys.executable, "-m", "stack", "env"], cwd=tmp_path, env=env, capture_output=True, check=True
    )
    chosen = kubernetes.secrets_from(tmp_path / ".env")

    assert set(kubernetes.REQUIRED_SECRETS) <= set(chosen)
    assert {"FRONTEND_API_KEY", "FRONTEND_ADMIN_KEY", "FRONTEND_USERS_KEY"} <= set(chosen)


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_settings_are_compose_values_or_defaults(overlay: str, compose: dict[str, Any]) -> None:
    objects = rendered(overlay)
    namespace = next(of_kind(objects, "Namespace"))["metadata"]["name"]
    fields = settings_fields()
    in_compose = {n: v for s in compose.values() for n, v in (s.get("environment") or {}).items() if v}
    configured = {n: v for o in of_kind(objects, "ConfigMap") for n, v in o.get("data", {}).items()}
    for name, value in configured.items():
        wanted = in_compose.get(name)
        if name in ("GATEWAY_BACKEND", "GATEWAY_UI"):  # nginx needs the full name (no search domains)
            host, port = (wanted or fields[name].default).split(":")
            assert value == f"{host}.{namespace}.svc.cluster.local:{port}", name
        elif name == "GATEWAY_WORKERS":  # the node's core count is no guide in a pod
            cpu = workload(objects, "gateway").containers[0]["resources"]["requests"]["cpu"]
            assert int(value) == max(1, int(_cores(cpu))), "one nginx worker per requested core"
        elif wanted:
            assert value == wanted, f"{name} is {value!r}, docker-compose.yml says {wanted!r}"
        else:
            parsed = TypeAdapter(fields[name].annotation).validate_python(value)
            assert parsed == fields[name].get_default(call_default_factory=True), f"{name}={value!r}"


@pytest.mark.parametrize("name", sorted(COMPOSE_SERVICE))
def test_images_commands_and_volumes_are_those_of_compose(name: str, compose: dict[str, Any]) -> None:
    w, service = workload(rendered("dev"), name), compose[COMPOSE_SERVICE[name]]
    (container,) = w.containers

    assert container["image"] == service["image"]
    assert "command" not in container  # the image's ENTRYPOINT stays, as in Compose
    if name != "retrain":  # the retraining example is this directory's own command
        assert container.get("args") == service.get("command")  # Compose's `command` is Kubernetes' args
    mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
    assert {
        v["target"] for v in service.get("volumes", []) if v["source"] != str(ROOT / "artifacts/loadtest")
    } <= mounts


@pytest.mark.parametrize("name", ["backend", "gateway", "ui", "loadtest"])
def test_ports_health_checks_and_users_are_those_of_the_dockerfile(
    name: str, compose: dict[str, Any]
) -> None:
    dockerfile = ROOT / compose[name]["build"]["dockerfile"]
    text = dockerfile.read_text()
    w = workload(rendered("dev"), name)
    (container,) = w.containers
    user = re.findall(r"^USER\s+(\d+)", text, re.M)[-1]

    assert (
        str(container.get("securityContext", {}).get("runAsUser", w.pod["securityContext"]["runAsUser"]))
        == user
    )
    exposed = re.findall(r"^EXPOSE\s+(\d+)", text, re.M)
    assert [str(p["containerPort"]) for p in container.get("ports", [])] == exposed
    health = re.search(r"urlopen\('http://127\.0\.0\.1:(\d+)(/[^']*)'", text)
    if health:  # the image's HEALTHCHECK is what tells ready; the readiness probe asks the same
        probe = container["readinessProbe"]["httpGet"]
        assert (str(probe["port"]), probe["path"]) == health.groups()


@pytest.mark.parametrize("name", ["redis", "redis-data"])
def test_redis_probes_are_compose_health_checks(name: str, compose: dict[str, Any]) -> None:
    (container,) = workload(rendered("dev"), name).containers
    test = compose[name]["healthcheck"]["test"]

    assert test[0] == "CMD"
    assert container["readinessProbe"]["exec"]["command"] == test[1:]
    assert container["livenessProbe"]["exec"]["command"] == test[1:]


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_every_service_targets_a_port_its_pods_open(overlay: str) -> None:
    objects = rendered(overlay)
    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        (w,) = [w for w in workloads(objects) if selector.items() <= w.labels.items()]
        opened = {p["containerPort"] for c in w.containers for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= opened, service["metadata"]["name"]


def replica_graceful_shutdown_s(objects: tuple[Object, ...]) -> float:
    """How long a replica lets requests finish after SIGTERM: the image's CMD, `mlstack serve`, drains for
    BACKEND_GRACEFUL_SHUTDOWN_S, as the pod's settings give it."""
    cmd = _dockerfile_json(ROOT / "backend" / "Dockerfile", "CMD")
    assert cmd[:2] == ["mlstack", "serve"], f"the image runs {cmd}: say here where its drain time comes from"
    configured = config_map(objects, "backend-config").get("BACKEND_GRACEFUL_SHUTDOWN_S")
    return float(configured or BackendSettings.model_fields["graceful_shutdown_s"].default)


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_termination_grace_covers_the_drain_and_the_replicas_graceful_shutdown(overlay: str) -> None:
    objects = rendered(overlay)
    backend = workload(objects, "backend")
    drain_s = backend.containers[0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    backends_conf = (ROOT / "nginx" / "api_backends.conf.j2").read_text()
    nginx_valid_s = int(re.search(r"resolver \{\{ resolver \}\} valid=(\d+)s", backends_conf)[1])  # type: ignore[index]  # no match fails the test, as it should

    # the pod leaves DNS while it still serves: nginx's re-resolution plus the cluster DNS's cache
    assert drain_s >= nginx_valid_s + CLUSTER_DNS_TTL_S
    assert backend.pod["terminationGracePeriodSeconds"] >= drain_s + replica_graceful_shutdown_s(objects)


def test_the_store_is_mounted_where_the_replicas_look_for_it() -> None:
    objects = rendered("prod")
    store_dir = config_map(objects, "backend-config")["BACKEND_STORE_DIR"]
    for name in ("backend", "trainer", "retrain"):
        w = workload(objects, name)
        (volume,) = [
            v["name"]
            for v in w.pod["volumes"]
            if v.get("persistentVolumeClaim", {}).get("claimName") == "model-store"
        ]
        assert {m["mountPath"] for m in w.containers[0]["volumeMounts"] if m["name"] == volume} == {store_dir}


def test_the_gateway_container_reads_only_variables_that_are_settings() -> None:
    source = (ROOT / "stack" / "compose_gateway.py").read_text()
    read = set(re.findall(r"env(?:\.get\(|\[)\"([A-Z_]+)\"", source))

    assert read
    assert read - {n.upper() for n in StackSettings.model_fields} == set()


def _cores(cpu: str) -> float:
    return int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def _dockerfile_json(dockerfile: Path, instruction: str) -> list[str]:
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = re.findall(rf"^{instruction}\s+(\[.*\])\s*$", text, re.M)
    return json.loads(lines[-1])  # type: ignore[no-any-return]  # parsed JSON or YAML is Any
