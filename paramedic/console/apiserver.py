"""The API server's address and CA for the console, with no credentials at all.

People's requests carry their own bearer tokens. Were the console's own credentials on the
connection too (a kubeconfig's client certificate, the pod's ServiceAccount token), the API
server could authenticate a request as the console instead of the person: so only the
address and the CA are taken from the kubeconfig or the in-cluster environment.
"""

from __future__ import annotations

import os
import ssl

from paramedic import kube


def address_only(kubeconfig: str = "", context: str | None = None) -> kube.Connection:
    """A Connection to the API server that sends no credentials of its own (`token` is None)."""
    if kube.uses_service_account(kubeconfig):
        host = kube.service_host_url()
        if host is None:
            raise ValueError("KUBERNETES_SERVICE_HOST/PORT are not set")
        # Mounted from the kube-root-ca.crt ConfigMap or the ServiceAccount volume.
        ca = os.path.join(kube.SERVICE_ACCOUNT_DIR, "ca.crt")
        return kube.Connection(host=host, verify=ssl.create_default_context(cafile=ca), token=lambda: None)
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG") or None, context=context,
                            client_configuration=cfg, persist_config=False)
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.verify_ssl else False
    return kube.Connection(host=cfg.host.rstrip("/"), verify=verify, token=lambda: None)
