"""What the console's tests share: the app against the real API server, people with limited
rights (their own ServiceAccount tokens), and incidents made as the operator would."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from paramedic import kube
from paramedic.console.apiserver import address_only
from paramedic.console.app import create_app
from paramedic.domain.timeutil import utcnow_iso
from paramedic.settings import Settings
from tests.tenancy import ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS

READ_ONLY_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["paramedic.dev"], "resources": ["incidents", "monitoredservices", "oncallschedules"],
     "verbs": ["get", "list", "watch"]},
]


def console_app(kubeconfig: Path):
    """The console's WSGI app: the API server's address and CA from the test kubeconfig; no credentials used."""
    app = create_app(Settings.from_env({}), address_only(str(kubeconfig)), secret=b"k" * 32)
    app.testing = True
    return app


def person(admin: kube.KubeClient, namespace: str, name: str, rules: list[dict[str, Any]]) -> tuple[str, str]:
    """A ServiceAccount in `namespace` with `rules` there only: (token, user name)."""
    admin.create(SERVICE_ACCOUNTS, {"metadata": {"name": name}}, namespace=namespace)
    admin.create(ROLES, {"metadata": {"name": name}, "rules": rules}, namespace=namespace)
    admin.create(ROLE_BINDINGS, {"metadata": {"name": name},
                                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                                 "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
                 namespace=namespace)
    out = admin.request("POST", SERVICE_ACCOUNTS.path(namespace, name, "token"),
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": 3600}})
    return out["status"]["token"], f"system:serviceaccount:{namespace}:{name}"


def make_incident(admin: kube.KubeClient, namespace: str, title: str, **spec: Any) -> dict:
    """An Incident as the receiver writes one (status as the operator first records it)."""
    name = f"inc-{uuid.uuid4().hex[:8]}"
    body = {"metadata": {"name": name}, "spec": {"service": spec.pop("service", "checkout"), "title": title,
                                                 "severity": spec.pop("severity", "high"),
                                                 "source": spec.pop("source", "manual"), **spec}}
    inc = admin.create(kube.INCIDENTS, body, namespace=namespace)
    admin.patch(kube.INCIDENTS, name, {"status": {"createdAt": utcnow_iso()}}, namespace, subresource="status")
    return inc


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)
