"""Alert routing: which MonitoredService claims an alert, by which rule, and its incident's severity.

Pure: the caller reads the services (and, for an alert naming only a pod, the pod's
owner) and hands them in; the tie-breaks make every receiver replica decide alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .alert import DEFAULT_SEVERITY, SEVERITIES, Alert
from .resources import Resource, Service, sequence


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics, except that an empty selector matches nothing.

    (An empty selector matching every alert would make one MonitoredService
    swallow all alerts of its namespace.)
    """
    if not selector:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    for key, value in match_labels.items():
        if labels.get(key) != value:
            return False
    for expr in expressions:
        key = expr.get("key", "")
        op = expr.get("operator")
        values = expr.get("values") or []
        present = key in labels
        if op == "In":
            if not present or labels[key] not in values:
                return False
        elif op == "NotIn":
            if present and labels[key] in values:
                return False
        elif op == "Exists":
            if not present:
                return False
        elif op == "DoesNotExist":
            if present:
                return False
        else:
            return False  # unknown operator: fail closed
    return True


# A MonitoredService claims an alert of its namespace by, in this order (the first
# rule that claims it decides; within a rule the smallest service name wins, so
# every receiver replica decides alike):
#   1. its alertSelector matching the alert's labels;
#   2. the alert's `service` label equal to the service's name;
#   3. the alert's `deployment`, `statefulset` or `daemonset` label equal to its target's
#      name (and the label naming the target's kind), as kube-state-metrics' rules carry;
#   4. the alert's `pod` label naming a pod its target owns (Deployment → ReplicaSet → Pod,
#      StatefulSet → Pod, DaemonSet → Pod), or, once that pod is gone, a name only its
#      target's controller gives pods.
# Rules 3 and 4 need the alert's own `namespace` label: they never reach across namespaces.

CLAIM_SELECTOR = "alertSelector"
CLAIM_SERVICE_LABEL = "service label"
CLAIM_WORKLOAD_LABEL = "workload label"
CLAIM_POD_OWNER = "pod owner"
CLAIM_POD_NAME = "pod name"

WORKLOAD_LABELS: dict[str, str] = {"deployment": "Deployment", "statefulset": "StatefulSet", "daemonset": "DaemonSet"}
"""Alert labels naming a workload of the alert's namespace (kube-state-metrics' names), and its kind."""
POD_LABEL = "pod"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")

GENERATED_BASE = 58
"""Kubernetes cuts a generateName base to 58 characters (63 minus the 5 random ones)."""
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
"""The alphabet of generated name suffixes and pod-template hashes (k8s.io/apimachinery/pkg/util/rand)."""
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class Workload:
    """A workload of one namespace, as a MonitoredService's target or a pod's owner."""

    kind: str
    name: str


@dataclass(frozen=True)
class Claim:
    """Which MonitoredService an alert belongs to, and by which rule."""

    service: dict[str, Any]
    rule: str

    @property
    def name(self) -> str:
        return _name(self.service)


def target_of(service: Mapping[str, Any]) -> Workload | None:
    """A MonitoredService's target (kind defaults to Deployment, as the CRD does)."""
    target = Service(service).target
    name = target.get("name")
    kind = target.get("kind") or "Deployment"
    if not isinstance(name, str) or not name or kind not in WORKLOAD_KINDS:
        return None
    return Workload(kind, name)


def controller_of(obj: Mapping[str, Any]) -> Workload | None:
    """The controller owner of a Pod or ReplicaSet body (its ownerReference with controller: true)."""
    for ref in sequence(Resource(obj).meta.get("ownerReferences")):
        if ref.get("controller") and isinstance(ref.get("kind"), str) and isinstance(ref.get("name"), str):
            return Workload(ref["kind"], ref["name"])
    return None


def could_own_pod(target: Workload, pod: str) -> bool:
    """Whether `target`'s controller could have named a pod `pod`: its pods' names all start with
    `<name>-` (cut as generateName cuts it). A necessary condition only: it decides whether a
    lookup is worth making, never a claim."""
    prefix = f"{target.name}-"[:GENERATED_BASE]
    return len(pod) > len(prefix) and pod.startswith(prefix)


def pod_name_fits(target: Workload, pod: str) -> bool:
    """Whether `pod` is a name `target`'s controller gives its pods (used once the pod is gone):
    `<deployment>-<template hash>-<5>`, `<statefulset>-<ordinal>`, `<daemonset>-<5>`. Names that
    generateName had to cut are never matched this way."""
    name = re.escape(target.name)
    if target.kind == "StatefulSet":
        pattern = rf"{name}-(0|[1-9][0-9]*)"
    elif target.kind == "DaemonSet":
        if len(target.name) + 1 > GENERATED_BASE:
            return False
        pattern = rf"{name}-[{_SAFE}]{{5}}"
    else:
        pattern = rf"{name}-[{_SAFE}]{{1,10}}-[{_SAFE}]{{5}}"
        if not re.fullmatch(pattern, pod):
            return False
        return len(pod) - 5 <= GENERATED_BASE  # the ReplicaSet's name + "-" was not cut
    return re.fullmatch(pattern, pod) is not None


def named_workloads(alert: Alert) -> set[Workload]:
    """The workloads an alert names through kube-state-metrics' labels."""
    return {Workload(kind, alert.labels[label]) for label, kind in WORKLOAD_LABELS.items() if alert.labels.get(label)}


class RoutingTable:
    """MonitoredServices indexed for `claim`: build one per namespace and request, and routing an
    alert costs its selectors plus a few dict lookups, however many services have targets."""

    def __init__(self, services: Iterable[dict[str, Any]]):
        self.services = sorted(services, key=_name)
        self.namespaces = {_namespace_of(svc) for svc in self.services}
        # Name order throughout: the first match is the smallest name (the tie-break).
        self.selectors = [(svc, sel) for svc in self.services
                          if (sel := Service(svc).spec.get("alertSelector"))]
        self.by_name: dict[str, dict[str, Any]] = {}
        self.by_target: dict[tuple[str | None, Workload], dict[str, Any]] = {}
        self.targets: list[tuple[str | None, Workload, dict[str, Any]]] = []
        prefixes: dict[str | None, dict[int, set[str]]] = {}
        for svc in self.services:
            self.by_name.setdefault(_name(svc), svc)
            target = target_of(svc)
            if target is None:
                continue
            ns = _namespace_of(svc)
            self.by_target.setdefault((ns, target), svc)
            self.targets.append((ns, target, svc))
            prefix = f"{target.name}-"[:GENERATED_BASE]
            prefixes.setdefault(ns, {}).setdefault(len(prefix), set()).add(prefix)
        self._prefixes = {ns: sorted(by_len.items()) for ns, by_len in prefixes.items()}

    def could_own(self, namespace: str, pod: str) -> bool:
        """Whether a target of `namespace` could have named a pod `pod` (see `could_own_pod`)."""
        return any(len(pod) > n and pod[:n] in names for n, names in self._prefixes.get(namespace, ()))

    def scoped(self, namespace: str | None) -> RoutingTable:
        """This table, or one holding only the services an alert of `namespace` may reach."""
        if namespace is None or self.namespaces <= {None, namespace}:
            return self
        return RoutingTable(svc for svc in self.services if _namespace_of(svc) in (None, namespace))


def _table(services: RoutingTable | Iterable[dict[str, Any]]) -> RoutingTable:
    return services if isinstance(services, RoutingTable) else RoutingTable(services)


def pod_to_look_up(alert: Alert, services: RoutingTable | Iterable[dict[str, Any]]) -> str | None:
    """The pod whose owner would decide the claim, or None when no lookup can help: the
    alert has no namespace or `pod` label, or no target of the namespace could own a pod so named."""
    pod = alert.labels.get(POD_LABEL)
    ns = alert.namespace
    if not pod or not ns or not _DNS_SUBDOMAIN.match(pod):
        return None
    return pod if _table(services).could_own(ns, pod) else None


def claim(alert: Alert, services: RoutingTable | Iterable[dict[str, Any]], *, pod_owner: Workload | None = None,
          pod_gone: bool = False) -> Claim | None:
    """The MonitoredService an alert belongs to, and the rule that decided (see the rules above).

    Candidates are the services of the alert's namespace (when the alert has one;
    the caller passes that namespace's services, best as a `RoutingTable`).
    `pod_owner` is the controller of the pod the alert's `pod` label names, when
    the caller looked it up (`pod_to_look_up`); `pod_gone` says that pod no longer exists.
    """
    ns = alert.namespace
    table = _table(services).scoped(ns)
    labels = alert.labels
    for svc, selector in table.selectors:
        if selector_matches(selector, labels):
            return Claim(svc, CLAIM_SELECTOR)
    wanted = labels.get("service")
    if wanted:
        named = table.by_name.get(wanted)
        if named is not None:
            return Claim(named, CLAIM_SERVICE_LABEL)
    if ns is None or not table.targets:
        return None  # a workload is named within a namespace: no namespace, no claim by target
    best: dict[str, Any] | None = None
    for label, kind in WORKLOAD_LABELS.items():
        value = labels.get(label)
        by_label = table.by_target.get((ns, Workload(kind, value))) if value else None
        if by_label is not None and (best is None or _name(by_label) < _name(best)):
            best = by_label
    if best is not None:
        return Claim(best, CLAIM_WORKLOAD_LABEL)
    if pod_owner is not None:
        owned = table.by_target.get((ns, pod_owner))
        if owned is not None:
            return Claim(owned, CLAIM_POD_OWNER)
    pod = labels.get(POD_LABEL)
    if pod_gone and pod:
        for target_ns, target, svc in table.targets:
            if target_ns == ns and pod_name_fits(target, pod):
                return Claim(svc, CLAIM_POD_NAME)
    return None


def match_service(alert: Alert, services: RoutingTable | Iterable[dict[str, Any]], *, pod_owner: Workload | None = None,
                  pod_gone: bool = False) -> dict[str, Any] | None:
    """The MonitoredService an alert belongs to, or None (see `claim`)."""
    found = claim(alert, services, pod_owner=pod_owner, pod_gone=pod_gone)
    return found.service if found else None


def _namespace_of(obj: Mapping[str, Any]) -> str | None:
    return Service(obj).namespace or None


def _name(obj: Mapping[str, Any]) -> str:
    return Service(obj).name


def incident_severity(alert: Alert, service: Mapping[str, Any] | None) -> str:
    """The alert's own severity, else the service's default, else high."""
    mapped = alert.severity
    if mapped:
        return mapped
    default = Service(service).severity if service is not None else DEFAULT_SEVERITY
    return default if default in SEVERITIES else DEFAULT_SEVERITY
