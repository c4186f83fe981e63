"""Tenants of a shared cluster, for the tenant-safety suites.

Each tenant is a namespace and a ServiceAccount holding only what a platform team
hands a namespace user: full rights over Paramedic's kinds in its own namespace,
read-only rights on workloads and pods there, and nothing anywhere else. Attacks are
made with the tenant's own token, so the real API server decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paramedic import kube

ROLE_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["paramedic.dev"], "resources": ["monitoredservices", "incidents", "oncallschedules"],
     "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
    {"apiGroups": ["paramedic.dev"], "resources": ["incidents/status"], "verbs": ["get"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods", "services", "events"], "verbs": ["get", "list", "watch"]},
]


@dataclass(frozen=True)
class Tenant:
    namespace: str
    service_account: str
    token: str
    host: str
    verify: Any

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def client(self) -> kube.KubeClient:
        """A client that acts with this tenant's own token (close it)."""
        bearer = "Bearer " + self.token
        return kube.KubeClient(kube.Connection(host=self.host, verify=self.verify, token=lambda: bearer))

    def grant(self, admin: kube.KubeClient, name: str, rules: list[dict[str, Any]]) -> None:
        """Give this tenant more rights in its own namespace (a Role and its RoleBinding)."""
        admin.create(ROLES, {"metadata": {"name": name}, "rules": rules}, namespace=self.namespace)
        admin.create(ROLE_BINDINGS, {"metadata": {"name": name},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                      "subjects": [{"kind": "ServiceAccount", "name": self.service_account,
                                    "namespace": self.namespace}]}, namespace=self.namespace)


ROLES = kube.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = kube.Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
SERVICE_ACCOUNTS = kube.Resource("", "v1", "serviceaccounts", "ServiceAccount")


def make_tenant(admin: kube.KubeClient, kubeconfig: Path, prefix: str) -> Tenant:
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    admin.create(kube.NAMESPACES, {"metadata": {"name": namespace}})
    admin.create(SERVICE_ACCOUNTS, {"metadata": {"name": "dev"}}, namespace=namespace)
    admin.create(ROLES, {"metadata": {"name": "paramedic-tenant"}, "rules": ROLE_RULES}, namespace=namespace)
    admin.create(ROLE_BINDINGS, {"metadata": {"name": "paramedic-tenant"},
                                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                             "name": "paramedic-tenant"},
                                 "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": namespace}]},
                 namespace=namespace)
    token = _token_request(admin, namespace, "dev")
    conn = kube.Connection.load(str(kubeconfig))
    return Tenant(namespace=namespace, service_account="dev", token=token, host=conn.host, verify=conn.verify)


def _token_request(admin: kube.KubeClient, namespace: str, service_account: str) -> str:
    path = SERVICE_ACCOUNTS.path(namespace, service_account, "token")
    out = admin.request("POST", path, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                       "spec": {"expirationSeconds": 3600}})
    return out["status"]["token"]


def tenants(admin: kube.KubeClient, kubeconfig: Path) -> Iterator[tuple[Tenant, Tenant]]:
    """Two tenants, deleted afterwards."""
    a = make_tenant(admin, kubeconfig, "team-a")
    b = make_tenant(admin, kubeconfig, "team-b")
    try:
        yield a, b
    finally:
        for t in (a, b):
            admin.delete(kube.NAMESPACES, t.namespace)
