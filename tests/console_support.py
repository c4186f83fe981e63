"""What the console's tests share: the app against the real API server, people with limited
rights (their own ServiceAccount tokens), and incidents made as the operator would."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from paramedic import kube
from paramedic.console.apiserver import address_only
from paramedic.console.app import create_app
from paramedic.domain.timeutil import utcnow_iso
from paramedic.settings import Settings
from tests.helpers import stop_group, wait_serving
from tests.tenancy import ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS

VENV_BIN = Path(sys.executable).parent

READ_ONLY_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["paramedic.dev"], "resources": ["incidents", "monitoredservices", "oncallschedules"],
     "verbs": ["get", "list", "watch"]},
]


SESSIONS_NAMESPACE = "paramedic-console-tests"
"""Where the tests' consoles keep their sessions (`<release namespace>-console-sessions` in a real
install: a namespace of its own, never Paramedic's)."""


def sessions_namespace(kubeconfig: Path) -> str:
    """The namespace of the tests' console sessions, made when missing."""
    client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
    try:
        if client.get_or_none(kube.NAMESPACES, SESSIONS_NAMESPACE) is None:
            try:
                client.create(kube.NAMESPACES, {"metadata": {"name": SESSIONS_NAMESPACE}})
            except kube.Conflict:
                pass
    finally:
        client.close()
    return SESSIONS_NAMESPACE


def console_app(kubeconfig: Path, secret: bytes = b"k" * 32, **settings: Any):
    """The console's WSGI app: the API server's address and CA from the test kubeconfig for
    people's requests (no credentials used); its sessions, Secrets written with the
    kubeconfig's own credentials (the console's ServiceAccount in a real install)."""
    values = {"kubeconfig": str(kubeconfig), "console_session_namespace": sessions_namespace(kubeconfig),
              **settings}
    app = create_app(Settings(**values), address_only(str(kubeconfig)), secret=secret)
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


class ConsoleProcess:
    """`paramedic-console` (gunicorn) as a real subprocess on a loopback port."""

    def __init__(self, kubeconfig: Path, log_dir: Path, env: dict[str, str] | None = None,
                 verify: ssl.SSLContext | bool = True):
        from devtools.cluster import free_port

        self.port = free_port()
        self.log_path = log_dir / f"console-{self.port}.log"
        key = log_dir / f"console-{self.port}.key"
        key.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
        self.env = {"PARAMEDIC_KUBECONFIG": str(kubeconfig), "PARAMEDIC_CONSOLE_SESSION_KEY_FILE": str(key),
                    "PARAMEDIC_CONSOLE_SESSION_NAMESPACE": sessions_namespace(kubeconfig), **(env or {})}
        if not self.env.get("PARAMEDIC_CONSOLE_TLS_CERT_FILE"):
            # Plain HTTP on loopback, said explicitly: the session cookie is Secure otherwise.
            self.env.setdefault("PARAMEDIC_CONSOLE_INSECURE_HTTP", "true")
        self.proc: subprocess.Popen | None = None
        self.verify = verify  # with a certificate it serves HTTPS only: trust in the CA that signed it

    @property
    def url(self) -> str:
        scheme = "https" if self.env.get("PARAMEDIC_CONSOLE_TLS_CERT_FILE") else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> ConsoleProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
        env.update(self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(VENV_BIN / "paramedic-console"), "--bind", f"127.0.0.1:{self.port}"],
                                         env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_serving(self.proc, self.url + "/healthz", "paramedic-console", self.logs, verify=self.verify)
        return self

    def stop(self) -> None:
        stop_group(self.proc, signal.SIGTERM, 30)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
