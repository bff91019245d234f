"""Rendered Kubernetes objects made playable by `podman kube play` 4.3 (Debian bookworm's podman).

Generated from the rendered overlay on every run, never kept by hand. Each change answers a gap of that
podman (docs/KUBERNETES.md lists them with their podman issues):
- Deployments, StatefulSets and Jobs become bare Pods (4.3 ignores StatefulSets and Jobs). A Pod is named
  after the Service that selects it, with a prefix: podman's DNS answers pod names and knows no Services.
  Host names in the settings follow (a cluster name `x.<ns>.svc.cluster.local` or a bare `x`).
- Secret and ConfigMap references become literal values (4.3 misreads a Secret, podman #16269); an
  optional Secret volume with none of its keys (the signing key, when none is configured) is left out.
- Ports go (4.3 publishes every containerPort on the host, podman #17028). Probes and lifecycle hooks go
  (httpGet probes need curl in the image, readiness is not run, liveness needs systemd timers): the test
  asks each probe's URL itself.
- PersistentVolumeClaims and a StatefulSet's volumeClaimTemplates become named volumes, made beforehand
  and owned by the pod's user and fsGroup (4.3 ignores fsGroup; the kubelet would chown the volume).
- PATH is set where the image has none (the engine's stand-in base images), as kube play adds no default.
"""

from __future__ import annotations

import base64
import copy
import re
from dataclasses import dataclass, field
from typing import Any

Object = dict[str, Any]
PLAYED_KINDS = ("Deployment", "StatefulSet", "Job")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Probe:
    pod: str
    container: str
    kind: str  # "http" or "exec"
    target: Any  # (port, path) or the command


@dataclass
class Playable:
    pods: list[Object] = field(default_factory=list)
    volumes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> owner (uid, gid)
    probes: list[Probe] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # workload -> pod name


def playable(objects: list[Object], prefix: str, images_without_path: set[str]) -> Playable:
    namespace = next(o["metadata"]["name"] for o in objects if o["kind"] == "Namespace")
    values = _referenced_values(objects)
    play = Playable()
    for workload in (o for o in objects if o["kind"] in PLAYED_KINDS):
        play.names[workload["metadata"]["name"]] = prefix + _service_name(workload, objects)
    rename = _host_renamer(namespace, {n.removeprefix(prefix): n for n in play.names.values()})
    for workload in (o for o in objects if o["kind"] in PLAYED_KINDS):
        pod_name = play.names[workload["metadata"]["name"]]
        spec = copy.deepcopy(workload["spec"]["template"]["spec"])
        if workload["kind"] == "Job":
            spec["restartPolicy"] = "Never"
        for template in workload["spec"].get("volumeClaimTemplates", []):
            claim = f"{template['metadata']['name']}-{workload['metadata']['name']}-0"
            spec["volumes"] = [
                *spec.get("volumes", []),
                {"name": template["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}},
            ]
        context = spec.get("securityContext", {})
        owner = (context["runAsUser"], context.get("fsGroup", context["runAsGroup"]))
        for volume in spec.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                name = prefix + volume["persistentVolumeClaim"]["claimName"]
                volume["persistentVolumeClaim"]["claimName"] = name
                assert play.volumes.setdefault(name, owner) == owner, f"{name}: pods of two owners"
        _drop_absent_secret_files(spec, values)
        for container in spec["containers"]:
            play.probes += _probes(pod_name, container)
            _adapt_container(container, values, rename, container["image"] in images_without_path)
        play.pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod_name, "labels": workload["spec"]["template"]["metadata"]["labels"]},
                "spec": spec,
            }
        )
    return play


def _service_name(workload: Object, objects: list[Object]) -> str:
    """The Service whose selector matches the workload's pods, else the workload's own name."""
    labels = workload["spec"]["template"]["metadata"].get("labels", {})
    for service in (o for o in objects if o["kind"] == "Service"):
        selector = service["spec"].get("selector", {})
        if selector and selector.items() <= labels.items():
            return str(service["metadata"]["name"])
    return str(workload["metadata"]["name"])


def _referenced_values(objects: list[Object]) -> dict[tuple[str, str], dict[str, str]]:
    """(kind, name) -> data of every ConfigMap and Secret (decoded)."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap":
            found[("configMap", obj["metadata"]["name"])] = dict(obj.get("data", {}))
        elif obj["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in obj.get("data", {}).items()}
            found[("secret", obj["metadata"]["name"])] = data
    return found


def _drop_absent_secret_files(spec: Object, values: dict[tuple[str, str], dict[str, str]]) -> None:
    """An optional Secret volume whose keys are absent mounts as an empty directory: leave it out.
    (A present one would need podman secrets, which 4.3 misreads; no test here signs models.)"""
    for volume in [v for v in spec.get("volumes", []) if "secret" in v]:
        data = values[("secret", volume["secret"]["secretName"])]
        if any(item["key"] in data for item in volume["secret"].get("items", [])):
            raise NotImplementedError(f"volume {volume['name']}: Secret files are not played")
        spec["volumes"].remove(volume)
        for container in spec["containers"]:
            mounts = container.get("volumeMounts", [])
            container["volumeMounts"] = [m for m in mounts if m["name"] != volume["name"]]


def _host_renamer(namespace: str, pods: dict[str, str]) -> Any:
    """A function that rewrites Service host names in a setting's value into the pods' names."""
    cluster = re.compile(rf"\b([a-z0-9-]+)\.{re.escape(namespace)}\.svc\.cluster\.local\b")
    bare = re.compile(r"(?<=//)([a-z0-9-]+)(?=[:/]|$)|^([a-z0-9-]+)(?=:\d)")  # in a URL, or host:port

    def rename(value: str) -> str:
        value = cluster.sub(lambda m: pods.get(m[1], m[0]), value)
        return bare.sub(lambda m: pods.get(m[1] or m[2], m[0]), value)

    return rename


def _adapt_container(
    container: Object, values: dict[tuple[str, str], dict[str, str]], rename: Any, needs_path: bool
) -> None:
    env: list[Object] = []
    for source in container.pop("envFrom", []):
        kind = "configMap" if "configMapRef" in source else "secret"
        ref = source.get("configMapRef") or source["secretRef"]
        env += [{"name": k, "value": v} for k, v in values[(kind, ref["name"])].items()]
    for variable in container.get("env", []):
        if "value" in variable:
            env.append(variable)
            continue
        source = variable["valueFrom"]
        kind = "configMap" if "configMapKeyRef" in source else "secret"
        ref = source.get("configMapKeyRef") or source["secretKeyRef"]
        value = values[(kind, ref["name"])].get(ref["key"])
        if value is None and not ref.get("optional"):
            raise KeyError(f"{variable['name']}: {ref['name']} has no key {ref['key']}")
        if value is not None:
            env.append({"name": variable["name"], "value": value})
    env = [{"name": v["name"], "value": rename(v["value"])} for v in env]
    if needs_path and not any(v["name"] == "PATH" for v in env):
        env.append({"name": "PATH", "value": DEFAULT_PATH})
    container["env"] = env
    for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
        container.pop(key, None)


def _probes(pod: str, container: Object) -> list[Probe]:
    probes = []
    for key in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(key)
        if probe and "httpGet" in probe:
            target = (probe["httpGet"]["port"], probe["httpGet"]["path"])
            probes.append(Probe(pod, container["name"], "http", target))
        elif probe and "exec" in probe:
            probes.append(Probe(pod, container["name"], "exec", tuple(probe["exec"]["command"])))
    return list(dict.fromkeys(probes))
