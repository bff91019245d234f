"""The dev overlay's workloads on the engine of `make engine`, with `podman kube play`: the pod specs start
as written (users, read-only root, dropped capabilities, volumes, settings from ConfigMaps and the Secret),
every probe the manifests declare answers, and a prediction comes through the gateway pod.

What this does not cover (no cluster can run here): Services, NetworkPolicies, the autoscaler, disruption
budgets, rolling updates, probes run by a kubelet, scheduling, and ReadWriteMany storage. Pods reach each
other by pod name on one podman network; tests/kube_play.py lists every change made for podman 4.3.
Skipped only where no engine can be had, as the Compose test is."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from test_compose_up import report

from k8s_objects import SECRETS, Object, rendered, workloads
from kube_play import PLAYED_KINDS, Playable, Probe, playable
from stack.procs import wait_for
from waiting import poll

pytestmark = [pytest.mark.kubernetes, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "scripts" / "engine.sh"
CONTAINERS_CONF = ROOT / ".run" / "engine" / "containers.conf"
# Images this project builds, as Compose names them (so both tests share the engine's build cache).
BUILT = {
    "mlstack-backend:dev": "backend/Dockerfile",
    "mlstack-gateway:dev": "nginx/Dockerfile",
    "mlstack-ui:dev": "frontend/Dockerfile",
}
READY_DEADLINE_S = 300  # a busy machine trains the first demo model (churn) in 30-60 s


def podman(*args: str, timeout: float = 120, check: bool = True) -> str:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


@dataclass
class PlayedPods:
    play: Playable
    network: str
    objects: tuple[Object, ...]

    def container(self, workload: str) -> str:
        """podman names a pod's container <pod>-<container>."""
        pod = self.play.names[workload]
        (spec,) = next(p for p in self.play.pods if p["metadata"]["name"] == pod)["spec"]["containers"]
        return f"{pod}-{spec['name']}"

    def address(self, pod: str) -> str:
        infra = podman("pod", "inspect", pod, "--format", "{{.InfraContainerID}}").strip()
        networks = json.loads(podman("inspect", infra, "--format", "{{json .NetworkSettings.Networks}}"))
        return str(networks[self.network]["IPAddress"])

    def logs(self) -> str:
        tails = []
        for pod in self.play.pods:
            for container in pod["spec"]["containers"]:
                name = f"{pod['metadata']['name']}-{container['name']}"
                out = podman("logs", "--tail", "15", name, check=False, timeout=30)
                tails.append(f"--- {name}\n{out}")
        return "\n".join(tails)


def engine_available() -> bool:
    if shutil.which("podman"):
        return True
    return os.uname().sysname == "Linux" and os.geteuid() == 0 and shutil.which("apt-get") is not None


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[PlayedPods]:
    if not engine_available():
        pytest.skip("no podman, and `make engine` needs Linux, root and apt to install it")
    started = time.monotonic()
    engine = subprocess.run([str(ENGINE), "standins"], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert engine.returncode == 0, f"scripts/engine.sh standins failed:\n{engine.stdout}\n{engine.stderr}"
    for image, dockerfile in BUILT.items():  # the build cache makes this seconds when nothing changed
        # Docker's image format, as Compose builds them: the same tags keep their HEALTHCHECK, and the
        # layers Compose built are reused instead of built again in OCI format
        tag = f"docker.io/library/{image}"
        podman("build", "-q", "--format", "docker", "-f", dockerfile, "-t", tag, ".", timeout=900)
    report(request, f"kubernetes smoke: engine and images ready in {time.monotonic() - started:.0f} s")
    objects = rendered("dev")
    run = f"mlstack-k8s-{os.getpid()}-"
    play = playable(list(objects), run, _images_without_path(objects))
    network, manifest = run + "net", tmp_path_factory.mktemp("kube") / "pods.yaml"
    manifest.write_text(yaml.safe_dump_all(play.pods))
    try:
        podman("network", "create", network)
        for volume, (uid, gid) in play.volumes.items():
            podman("volume", "create", "--opt", f"o=uid={uid},gid={gid}", volume)
        started = time.monotonic()
        podman("kube", "play", "--network", network, str(manifest), timeout=300)
        report(
            request, f"kubernetes smoke: {len(play.pods)} pods played in {time.monotonic() - started:.0f} s"
        )
        yield PlayedPods(play, network, objects)
    finally:
        podman("kube", "down", str(manifest), check=False, timeout=180)
        for volume in play.volumes:
            podman("volume", "rm", "-f", volume, check=False)
        podman("network", "rm", "-f", network, check=False)


def _images_without_path(objects: tuple[Object, ...]) -> set[str]:
    images = {c["image"] for w in workloads(objects) if w.kind in PLAYED_KINDS for c in w.containers}
    without = set()
    for image in images:
        env = json.loads(podman("image", "inspect", image, "--format", "{{json .Config.Env}}")) or []
        if not any(variable.startswith("PATH=") for variable in env):
            without.add(image)
    return without


@pytest.fixture(scope="module")
def gateway(played: PlayedPods, request: pytest.FixtureRequest) -> str:
    """The gateway pod's URL, once a replica behind it has a model (the trainer pod publishes churn)."""
    backend = f"http://{played.address(played.play.names['backend'])}:8000/v2/health/ready"
    started = time.monotonic()
    try:
        wait_for(lambda: _answers(backend), "a replica with a model", READY_DEADLINE_S)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{played.logs()}")
    report(
        request, f"kubernetes smoke: a replica ready (churn trained) after {time.monotonic() - started:.0f} s"
    )
    return f"http://{played.address(played.play.names['gateway'])}:8080"


def _answers(url: str, **kwargs: Any) -> bool:
    try:
        return httpx.get(url, timeout=3, **kwargs).status_code == 200
    except httpx.HTTPError:
        return False


def _keys() -> dict[str, str]:
    return {scope: key for _, scope, key in (e.split(":") for e in SECRETS["GATEWAY_KEYS"].split(","))}


def test_every_workload_runs_as_its_security_context_says(played: PlayedPods) -> None:
    for w in (w for w in workloads(played.objects) if w.name in played.play.names):
        (container,) = w.containers
        info = json.loads(podman("inspect", played.container(w.name)))[0]
        assert info["State"]["Status"] in ("running", "exited"), f"{w.name}: {info['State']}"
        assert info["Config"]["User"].split(":")[0] == str(w.pod["securityContext"]["runAsUser"]), w.name
        assert info["HostConfig"]["ReadonlyRootfs"] is True, w.name
        assert "no-new-privileges" in info["HostConfig"]["SecurityOpt"], w.name
        assert "CAP_NET_RAW" in info["HostConfig"]["CapDrop"], w.name  # dropped with ALL
        assert container["image"].split(":")[0] in info["ImageName"], w.name


def test_every_probe_the_manifests_declare_answers(played: PlayedPods, gateway: str) -> None:
    served = {played.play.names[name] for name in ("backend", "gateway", "ui", "redis", "redis-data")}
    assert {probe.pod for probe in played.play.probes} == served
    pending: list[Probe] = list(played.play.probes)

    def still_pending() -> list[Probe]:
        pending[:] = [p for p in pending if not _probe_passes(played, p)]
        return pending

    poll(still_pending, lambda left: not left, 120, every_s=1)  # the UI may take a while to import Streamlit

    assert pending == [], played.logs()


def _probe_passes(played: PlayedPods, probe: Probe) -> bool:
    if probe.kind == "http":
        port, path = probe.target
        return _answers(f"http://{played.address(probe.pod)}:{port}{path}")
    result = subprocess.run(
        ["podman", "exec", f"{probe.pod}-{probe.container}", *probe.target],
        capture_output=True,
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        timeout=30,
        check=False,
    )
    return result.returncode == 0


def test_a_prediction_through_the_gateway_pod_misses_then_hits_the_cache(gateway: str) -> None:
    key = {"X-API-Key": _keys()["predict"]}
    manifest = httpx.get(f"{gateway}/v1/models/churn", headers=key, timeout=10)
    assert manifest.status_code == 200, manifest.text
    row = {f["name"]: f["typical"] for f in manifest.json()["inputs"]}
    url = f"{gateway}/v1/models/churn:predict"

    assert httpx.post(url, json={"instances": [row]}, timeout=10).status_code == 401
    answers = [httpx.post(url, json={"instances": [row]}, headers=key, timeout=20) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert answers[0].json()["predictions"][0] in (0, 1)
    assert [a.headers["X-Cache"] for a in answers] == ["MISS", "HIT"]  # the replica reaches the cache pod


def test_user_data_reaches_the_durable_redis_pod_which_writes_to_its_volume(
    played: PlayedPods, gateway: str
) -> None:
    key = {"X-API-Key": _keys()["users"]}
    unknown = httpx.get(f"{gateway}/v1/users/k8s-{secrets.token_hex(4)}", headers=key, timeout=10)
    redis = played.container("redis-data")

    assert unknown.status_code == 404, unknown.text  # 503 if the replica could not reach the user-data pod
    assert podman("exec", redis, "redis-cli", "SET", "k8s-smoke", "1").strip() == "OK"  # fsynced to the AOF
    assert podman("exec", redis, "redis-cli", "CONFIG", "GET", "appendfsync").split() == [
        "appendfsync",
        "always",
    ]
    assert "appendonly" in podman("exec", redis, "ls", "/data/appendonlydir")


def test_the_ui_answers_behind_the_gateway_with_its_login(gateway: str) -> None:
    login = (SECRETS["GATEWAY_UI_USER"], SECRETS["GATEWAY_UI_PASSWORD"])
    wait_for(lambda: _answers(f"{gateway}/ui/_stcore/health", auth=login), "the UI through the gateway", 60)

    assert httpx.get(f"{gateway}/ui/", timeout=10).status_code == 401
