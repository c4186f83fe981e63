"""Kopf's login, with the same credentials Paramedic's own client uses (`paramedic.kube`).

Kopf's `login_with_service_account` connects to https://kubernetes.default.svc, a name
only cluster DNS resolves. A pod without it (hostNetwork, a broken or absent CoreDNS,
a bare node) would then never connect. Like client-go and the kubernetes Python
client, the in-cluster login here uses KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT,
which the kubelet sets in every container, with the service account's token and CA.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kopf

from paramedic import kube


def service_account_login(env: Mapping[str, str] | None = None, sa_dir: str | Path | None = None,
                          trust_env: bool = False) -> kopf.ConnectionInfo | None:
    """The pod's service account as Kopf connection info; None when not in a pod
    (no KUBERNETES_SERVICE_HOST/PORT, or no token file)."""
    server = kube.service_host_url(env)
    base = Path(sa_dir or kube.SERVICE_ACCOUNT_DIR)
    token_file, ca_file, ns_file = base / "token", base / "ca.crt", base / "namespace"
    if server is None or not token_file.is_file():
        return None
    # Bound tokens rotate; Kopf calls the login again when the API server answers 401.
    token = token_file.read_text(encoding="utf-8").strip()
    namespace = ns_file.read_text(encoding="utf-8").strip() if ns_file.is_file() else ""
    return kopf.ConnectionInfo(server=server, token=token or None, ca_path=str(ca_file) if ca_file.is_file() else None,
                               default_namespace=namespace or None, trust_env=trust_env)


def login(env: Mapping[str, str] | None = None, sa_dir: str | Path | None = None,
          **kwargs: Any) -> kopf.ConnectionInfo | None:
    """A kubeconfig ($KUBECONFIG, then ~/.kube/config) when there is one, else the pod's
    service account; the same order as `kube.Connection.load`."""
    env = os.environ if env is None else env
    if kube.uses_service_account(env=env):
        settings = kwargs.get("settings")
        trust_env = bool(getattr(getattr(settings, "networking", None), "trust_env", False))
        info = service_account_login(env, sa_dir, trust_env=trust_env)
        if info is not None:
            return info
    return kopf.login_with_kubeconfig(**kwargs)
