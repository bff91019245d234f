"""The Kubernetes overlays render with the pinned kubectl, validate strictly against the schemas of the oldest
and the newest Kubernetes we claim (offline: the schemas ship in the kubernetes-validate wheel), and have
the shape a zero-downtime rollout needs."""

from __future__ import annotations

import base64
import copy
import os
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

from k8s_objects import SECRETS, Object, config_map, named, of_kind, rendered, workload, workloads
from stack import kubernetes

ROOT = Path(__file__).resolve().parents[1]
OVERLAYS = kubernetes.OVERLAYS
# The oldest: `preStop: sleep` is on by default from 1.30 (the 1.29 schema has it, behind an alpha gate).
KUBERNETES_VERSIONS = ("1.30", "1.37")
INGRESS_EXAMPLE = ROOT / "deploy" / "kubernetes" / "overlays" / "prod" / "ingress.example.yaml"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_strictly(overlay: str, version: str) -> None:
    failures = []
    for obj in rendered(overlay):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except (ValidationError, SchemaNotFoundError) as exc:  # an unknown kind fails too: no CRDs here
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")

    assert failures == []


def test_the_ingress_example_validates_and_points_at_the_gateway_service() -> None:
    ingress = yaml.safe_load(INGRESS_EXAMPLE.read_text())
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    service = named(rendered("prod"), "Service", "gateway")

    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(ingress, version, strict=True)
    assert backend["name"] == "gateway"
    assert backend["port"]["number"] == service["spec"]["ports"][0]["port"]


def test_strict_validation_refuses_a_misspelt_field() -> None:
    deployment = copy.deepcopy(named(rendered("dev"), "Deployment", "backend"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")

    with pytest.raises(ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_secret_is_generated_from_the_env_file_and_referenced_by_its_hashed_name(overlay: str) -> None:
    objects = rendered(overlay)
    (secret,) = of_kind(objects, "Secret")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    referenced = {
        variable["valueFrom"]["secretKeyRef"]["name"]
        for w in workloads(objects)
        for c in w.containers
        for variable in c.get("env", [])
        if "secretKeyRef" in variable.get("valueFrom", {})
    }

    assert decoded == SECRETS
    assert secret["metadata"]["name"].startswith("mlstack-secrets-")  # the hash rolls pods on a new key
    assert referenced == {secret["metadata"]["name"]}


def test_nothing_secret_is_committed() -> None:
    files = [path for path in (ROOT / "deploy" / "kubernetes").rglob("*") if path.is_file()]

    assert files
    assert not [path for path in files if path.name == "secrets.env"]  # `make k8s` writes it elsewhere
    assert "kind: Secret" not in "".join(path.read_text() for path in files)


def test_make_k8s_renders_an_overlay_into_a_private_file(tmp_path: Path) -> None:
    env_file, out = tmp_path / "prod.env", tmp_path / "prod.yaml"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    result = subprocess.run(
        ["make", "-s", "k8s", "OVERLAY=prod", f"ENV_FILE={env_file}", f"OUT={out}", "TAG=1.2.3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    objects = list(yaml.safe_load_all(out.read_text()))

    assert result.returncode == 0, result.stderr
    assert os.stat(out).st_mode & 0o077 == 0
    assert named(tuple(objects), "Namespace", "mlstack")
    images = {c["image"] for w in workloads(tuple(objects)) for c in w.containers}
    assert "registry.example.com/mlstack/backend:1.2.3" in images


def test_make_k8s_refuses_an_env_file_without_the_gateway_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("GATEWAY_TOKEN=" + SECRETS["GATEWAY_TOKEN"] + "\n")

    with pytest.raises(kubernetes.RenderError, match="GATEWAY_KEYS, GATEWAY_UI_USER"):
        kubernetes.secrets_from(env_file)
    assert kubernetes.main(["--env-file", str(tmp_path / "missing.env")]) == 2


def test_a_registry_and_tag_rename_only_the_projects_images() -> None:
    text = kubernetes.render("dev", SECRETS, registry="reg.example/ml", tag="2.0")
    images = {c["image"] for w in workloads(tuple(yaml.safe_load_all(text))) for c in w.containers}

    assert images == {
        "reg.example/ml/backend:2.0",
        "reg.example/ml/gateway:2.0",
        "reg.example/ml/ui:2.0",
        "reg.example/ml/loadtest:2.0",
        "redis:7.0",
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rolling_updates_never_drop_below_the_ready_count(overlay: str) -> None:
    for name in ("backend", "gateway"):
        deployment = named(rendered(overlay), "Deployment", name)
        strategy = deployment["spec"]["strategy"]

        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0
        assert strategy["rollingUpdate"]["maxSurge"] >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_backend_has_startup_readiness_and_liveness_probes_and_spreads(overlay: str) -> None:
    backend = workload(rendered(overlay), "backend")
    container = backend.containers[0]
    spread = {c["topologyKey"] for c in backend.pod["topologySpreadConstraints"]}

    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    # the start-up budget is for the process; the model may come later (readiness waits for it)
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert spread == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_allow_a_drain_at_any_replica_count(overlay: str) -> None:
    budgets = {
        pdb["metadata"]["name"]: pdb["spec"] for pdb in of_kind(rendered(overlay), "PodDisruptionBudget")
    }

    assert set(budgets) == {"backend", "gateway"}
    for spec in budgets.values():
        assert spec["maxUnavailable"] == 1
        assert "minAvailable" not in spec


def test_prod_autoscales_the_replicas_and_leaves_their_count_to_the_autoscaler() -> None:
    objects = rendered("prod")
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    spec = hpa["spec"]
    cpu = spec["metrics"][0]["resource"]
    backend = named(objects, "Deployment", "backend")

    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 20)
    assert (cpu["name"], cpu["target"]["type"]) == ("cpu", "Utilization")
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300
    assert "replicas" not in backend["spec"]  # an applied count would undo the autoscaler's
    assert backend["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]


def test_dev_runs_one_of_each_with_small_requests() -> None:
    dev, prod = rendered("dev"), rendered("prod")

    assert not list(of_kind(dev, "HorizontalPodAutoscaler"))
    for deployment in of_kind(dev, "Deployment"):
        assert deployment["spec"]["replicas"] == 1
    for w in workloads(dev):
        for container in w.containers:
            prod_container = next(
                c for c in workload(prod, w.name).containers if c["name"] == container["name"]
            )
            dev_memory, prod_memory = (
                _bytes(c["resources"]["requests"]["memory"]) for c in (container, prod_container)
            )
            assert dev_memory <= prod_memory, w.name


def test_prod_runs_two_gateways_behind_a_load_balancer_and_everything_else_inside() -> None:
    objects = rendered("prod")
    types = {s["metadata"]["name"]: s["spec"].get("type", "ClusterIP") for s in of_kind(objects, "Service")}

    assert named(objects, "Deployment", "gateway")["spec"]["replicas"] >= 2
    assert types.pop("gateway") == "LoadBalancer"
    assert set(types.values()) == {"ClusterIP"}
    assert named(objects, "Service", "backend")["spec"]["clusterIP"] == "None"  # headless: nginx balances


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_resolves_full_names_in_its_own_namespace(overlay: str) -> None:
    """nginx's resolver ignores resolv.conf's search domains: a bare `backend` would never resolve."""
    objects = rendered(overlay)
    namespace = next(of_kind(objects, "Namespace"))["metadata"]["name"]
    gateway = config_map(objects, "gateway-config")

    assert gateway["GATEWAY_BACKEND"] == f"backend.{namespace}.svc.cluster.local:8000"
    assert gateway["GATEWAY_UI"] == f"ui.{namespace}.svc.cluster.local:8501"
    assert {o["metadata"].get("namespace", namespace) for o in objects} == {namespace}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_enforces_the_restricted_pod_security_standard(overlay: str) -> None:
    (namespace,) = of_kind(rendered(overlay), "Namespace")

    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_user_data_lives_on_a_claim_per_pod_and_models_on_a_shared_one(overlay: str) -> None:
    objects = rendered(overlay)
    (claim,) = of_kind(objects, "PersistentVolumeClaim")
    users = named(objects, "StatefulSet", "redis-data")
    claims = {w.name: _claims(w.pod) for w in workloads(objects)}

    assert claim["metadata"]["name"] == "model-store"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # replicas on any node, and the trainer
    assert {w for w, c in claims.items() if "model-store" in c} == {"backend", "trainer", "retrain"}
    assert users["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jobs_that_should_not_run_on_apply_are_suspended_templates(overlay: str) -> None:
    cronjobs = {c["metadata"]["name"]: c["spec"] for c in of_kind(rendered(overlay), "CronJob")}

    assert set(cronjobs) == {"retrain", "loadtest"}
    assert all(spec["suspend"] is True for spec in cronjobs.values())
    assert cronjobs["retrain"]["concurrencyPolicy"] == "Forbid"


def _claims(pod: Object) -> set[str]:
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod.get("volumes", [])
        if "persistentVolumeClaim" in v
    }


def _bytes(quantity: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity.removesuffix(suffix)) * factor
    return int(quantity)


def test_a_signing_key_in_the_env_file_reaches_the_trainers_as_a_file_and_never_the_replicas(
    tmp_path: Path,
) -> None:
    from mlstack.cli import main as mlstack

    assert (
        mlstack(
            [
                "keygen",
                "--key",
                str(tmp_path / "keys" / "signing.key"),
                "--store-dir",
                str(tmp_path / "store"),
            ]
        )
        == 0
    )
    public = (tmp_path / "keys" / "signing.pub").read_text().strip()
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in SECRETS.items())
        + f"BACKEND_SIGNING_KEY_FILE=keys/signing.key\nBACKEND_SIGNING_PUBLIC_KEY={public}\n"
    )
    objects = tuple(yaml.safe_load_all(kubernetes.render("prod", kubernetes.secrets_from(env_file))))
    (secret,) = of_kind(objects, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    assert data[kubernetes.SIGNING_KEY] == (tmp_path / "keys" / "signing.key").read_text()
    assert data["BACKEND_SIGNING_KEY_FILE"] == kubernetes.SIGNING_KEY_IN_POD
    assert data["BACKEND_SIGNING_PUBLIC_KEY"] == public
    for name in ("trainer", "retrain"):
        w = workload(objects, name)
        (volume,) = [
            v for v in w.pod["volumes"] if v.get("secret", {}).get("secretName") == secret["metadata"]["name"]
        ]
        (mount,) = [m for m in w.containers[0]["volumeMounts"] if m["name"] == volume["name"]]
        assert f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}" == kubernetes.SIGNING_KEY_IN_POD
    replica = workload(objects, "backend")
    refs = {v["valueFrom"]["secretKeyRef"]["key"] for v in replica.containers[0]["env"]}
    assert refs == {"GATEWAY_TOKEN", "BACKEND_SIGNING_PUBLIC_KEY"}  # no private key on a replica
    assert not [v for v in replica.pod["volumes"] if "secret" in v]
