"""The Kubernetes overlays rendered once per test session (the pinned kubectl, as `make k8s` does), and
the ways into them the manifest, policy, consistency and smoke tests share."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from stack import kubernetes

Object = dict[str, Any]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")


def fresh_secrets() -> dict[str, str]:
    """What `make env` would write: fresh, so nothing secret is a constant of the repo."""
    predict, users = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    return {
        "GATEWAY_TOKEN": secrets.token_urlsafe(32),
        "GATEWAY_KEYS": f"k8s-client:predict:{predict},k8s-users:users:{users}",
        "GATEWAY_UI_USER": "k8s",
        "GATEWAY_UI_PASSWORD": secrets.token_urlsafe(12),
        "FRONTEND_API_KEY": predict,
        "FRONTEND_USERS_KEY": users,
    }


SECRETS = fresh_secrets()


@functools.cache
def rendered(overlay: str) -> tuple[Object, ...]:
    return tuple(o for o in yaml.safe_load_all(kubernetes.render(overlay, SECRETS)) if o)


@dataclass(frozen=True)
class Workload:
    """A Deployment, StatefulSet, Job or CronJob with its pod template found (CronJobs nest it twice)."""

    obj: Object

    @property
    def kind(self) -> str:
        return str(self.obj["kind"])

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.obj["metadata"].get("annotations", {}))

    @property
    def template(self) -> Object:
        spec = self.obj["spec"]
        return spec["jobTemplate"]["spec"]["template"] if self.kind == "CronJob" else spec["template"]

    @property
    def pod(self) -> Object:
        return self.template["spec"]  # type: ignore[no-any-return]  # parsed JSON or YAML is Any

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.template["metadata"].get("labels", {}))

    @property
    def containers(self) -> list[Object]:
        return [*self.pod.get("initContainers", []), *self.pod["containers"]]


def workloads(objects: tuple[Object, ...]) -> list[Workload]:
    return [Workload(o) for o in objects if o["kind"] in WORKLOAD_KINDS]


def workload(objects: tuple[Object, ...], name: str) -> Workload:
    return next(w for w in workloads(objects) if w.name == name)


def of_kind(objects: tuple[Object, ...], kind: str) -> Iterator[Object]:
    return (o for o in objects if o["kind"] == kind)


def named(objects: tuple[Object, ...], kind: str, name: str) -> Object:
    return next(o for o in of_kind(objects, kind) if o["metadata"]["name"] == name)


def config_map(objects: tuple[Object, ...], prefix: str) -> dict[str, str]:
    """The data of the generated ConfigMap whose name (before kustomize's hash) is `prefix`."""
    found = [o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].rsplit("-", 1)[0] == prefix]
    assert len(found) == 1, f"one ConfigMap {prefix}-<hash> expected, found {len(found)}"
    return dict(found[0].get("data", {}))
