"""Security and operability rules on every rendered workload, and the NetworkPolicies' reachability.

Our own rules rather than checkov's: checkov 3.3 pins packaging<24, which pytest 9 cannot live with, and a
separate environment for it would add about 460 MB to every clean CI machine. The rules are checkov's
Kubernetes checks that apply here (the CKV_K8S ids are given). A workload may skip a rule only with an
annotation on its own metadata that carries the reason on the same line:

    policy.mlstack.dev/skip-liveness-probe: runs to completion; activeDeadlineSeconds bounds it
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from k8s_objects import Object, Workload, of_kind, rendered, workload, workloads
from stack import kubernetes

SKIP = "policy.mlstack.dev/skip-"
Rule = Callable[[Object, Object], bool]  # (pod spec, container) -> holds


def _pod_or_container(pod: Object, container: Object, key: str) -> Any:
    return container.get("securityContext", {}).get(key, pod.get("securityContext", {}).get(key))


def _tagged(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return "@sha256:" in image or bool(name and tag and tag != "latest" and "/" not in tag)


RULES: dict[str, Rule] = {
    # CKV_K8S_8, CKV_K8S_9
    "liveness-probe": lambda pod, c: "livenessProbe" in c,
    "readiness-probe": lambda pod, c: "readinessProbe" in c,
    # CKV_K8S_10, 12, 13: requests for the scheduler and the autoscaler, a memory limit against leaks.
    # No CPU limit (CKV_K8S_11): CFS throttling turns into tail latency; requests reserve the cores.
    "resources": lambda pod, c: (
        {"cpu", "memory"} <= set(c.get("resources", {}).get("requests", {}))
        and "memory" in c["resources"].get("limits", {})
    ),
    # CKV_K8S_23, CKV_K8S_40 (a numeric user, not root)
    "non-root": lambda pod, c: (
        _pod_or_container(pod, c, "runAsNonRoot") is True
        and (_pod_or_container(pod, c, "runAsUser") or 0) > 0
    ),
    # CKV_K8S_22
    "read-only-root": lambda pod, c: c.get("securityContext", {}).get("readOnlyRootFilesystem") is True,
    # CKV_K8S_20, CKV_K8S_16
    "no-privilege-escalation": lambda pod, c: (
        c.get("securityContext", {}).get("allowPrivilegeEscalation") is False
        and not c.get("securityContext", {}).get("privileged", False)
    ),
    # CKV_K8S_28, CKV_K8S_37
    "drop-all-capabilities": lambda pod, c: (
        c.get("securityContext", {}).get("capabilities", {}).get("drop") == ["ALL"]
        and not c["securityContext"]["capabilities"].get("add")
    ),
    # CKV_K8S_31
    "seccomp-runtime-default": lambda pod, c: (
        (_pod_or_container(pod, c, "seccompProfile") or {}).get("type") == "RuntimeDefault"
    ),
    # CKV_K8S_38
    "no-service-account-token": lambda pod, c: pod.get("automountServiceAccountToken") is False,
    # CKV_K8S_14 (a tag, never latest), CKV_K8S_17-19 and 27 (no host namespaces, host paths)
    "pinned-image": lambda pod, c: _tagged(c["image"]),
    "no-host-access": lambda pod, c: (
        not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
        and not any("hostPath" in v for v in pod.get("volumes", []))
    ),
}


def violations(w: Workload) -> dict[str, list[str]]:
    """rule -> the containers that break it."""
    found: dict[str, list[str]] = {}
    for rule, holds in RULES.items():
        broken = [c["name"] for c in w.containers if not holds(w.pod, c)]
        if broken:
            found[rule] = broken
    return found


def skips(w: Workload) -> dict[str, str]:
    return {k.removeprefix(SKIP): v for k, v in w.annotations.items() if k.startswith(SKIP)}


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_every_workload_keeps_every_rule_or_says_why_not(overlay: str) -> None:
    unexplained = {}
    for w in workloads(rendered(overlay)):
        broken = {rule: containers for rule, containers in violations(w).items() if rule not in skips(w)}
        if broken:
            unexplained[f"{w.kind}/{w.name}"] = broken

    assert unexplained == {}


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_every_skip_names_a_rule_that_it_needs_and_gives_a_reason(overlay: str) -> None:
    for w in workloads(rendered(overlay)):
        for rule, reason in skips(w).items():
            assert rule in RULES, f"{w.name}: no rule {rule}"
            assert rule in violations(w), f"{w.name}: skips {rule}, which it keeps; drop the skip"
            assert len(reason.split()) >= 3, f"{w.name}: skipping {rule} needs a reason, not {reason!r}"


def test_only_run_to_completion_jobs_skip_a_rule() -> None:
    skipped = {w.name: set(skips(w)) for w in workloads(rendered("prod")) if skips(w)}

    assert skipped == {
        name: {"liveness-probe", "readiness-probe"} for name in ("trainer", "retrain", "loadtest")
    }


BREAKS: dict[str, Callable[[Object, Object], None]] = {
    "liveness-probe": lambda pod, c: c.pop("livenessProbe"),
    "readiness-probe": lambda pod, c: c.pop("readinessProbe"),
    "resources": lambda pod, c: c["resources"].pop("limits"),
    "non-root": lambda pod, c: pod["securityContext"].update(runAsUser=0),
    "read-only-root": lambda pod, c: c["securityContext"].pop("readOnlyRootFilesystem"),
    "no-privilege-escalation": lambda pod, c: c["securityContext"].update(privileged=True),
    "drop-all-capabilities": lambda pod, c: c["securityContext"]["capabilities"].update(add=["NET_ADMIN"]),
    "seccomp-runtime-default": lambda pod, c: pod["securityContext"].pop("seccompProfile"),
    "no-service-account-token": lambda pod, c: pod.pop("automountServiceAccountToken"),
    "pinned-image": lambda pod, c: c.update(image="mlstack-backend:latest"),
    "no-host-access": lambda pod, c: pod.update(hostNetwork=True),
}


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_catches_what_it_is_about(rule: str) -> None:
    broken = copy.deepcopy(workload(rendered("prod"), "backend").obj)
    pod = broken["spec"]["template"]["spec"]
    BREAKS[rule](pod, pod["containers"][0])

    assert rule not in violations(workload(rendered("prod"), "backend"))
    assert rule in violations(Workload(broken))


def reachability(objects: tuple[Object, ...]) -> dict[str, set[tuple[str, int]]]:
    """workload -> {(who may connect, port)}; "*" is anyone. Default-deny: no policy, no entry."""
    allowed: dict[str, set[tuple[str, int]]] = {}
    names = {w.name: w.labels for w in workloads(objects)}
    for policy in of_kind(objects, "NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        for target, labels in names.items():
            if not selector or not selector.items() <= labels.items():
                continue
            for rule in policy["spec"].get("ingress", []):
                sources = ["*"] if "from" not in rule else [_selected(p, names) for p in rule["from"]]
                for port in rule["ports"]:
                    allowed.setdefault(target, set()).update((s, port["port"]) for s in sources)
    return allowed


def _selected(peer: Object, names: dict[str, dict[str, str]]) -> str:
    assert set(peer) == {"podSelector"}, "only pods of this namespace may be named as sources"
    labels = peer["podSelector"]["matchLabels"]
    (name,) = [n for n, pod_labels in names.items() if labels.items() <= pod_labels.items()]
    return name


@pytest.mark.parametrize("overlay", kubernetes.OVERLAYS)
def test_network_policies_let_in_only_what_the_stack_needs(overlay: str) -> None:
    objects = rendered(overlay)
    deny = [p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"] == "default-deny-ingress"]

    assert deny
    assert deny[0]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert reachability(objects) == {
        "gateway": {("*", 8080)},  # the only thing reachable from outside
        "backend": {("gateway", 8000)},
        "ui": {("gateway", 8501)},
        "redis": {("backend", 6379)},
        "redis-data": {("backend", 6379), ("retrain", 6379)},  # retraining reads the interactions
    }
