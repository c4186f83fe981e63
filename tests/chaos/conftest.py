"""Fixtures of the fault and abuse suite.

Faults that take the control plane itself down (API server stopped, etcd
restarted) run against a private cluster started here, never against the shared
one (`PARAMEDIC_KUBECONFIG`): other suites may be using that at the same time.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.cluster import DevCluster, apply_crds
from devtools.proc import find
from paramedic import kube
from tests.helpers import WebhookProcess


@dataclass
class PrivateCluster:
    cluster: DevCluster
    kubeconfig: Path
    client: kube.KubeClient


@pytest.fixture(scope="module")
def private_cluster() -> PrivateCluster:
    """A control plane of this suite's own, whose components the tests stop and restart.
    Module-scoped: it does not keep loading the machine while the rest of the suite runs."""
    root = Path(tempfile.mkdtemp(prefix="paramedic-chaos-cluster-"))
    cluster = DevCluster(root=root / "cluster", kubeconfig=root / "kubeconfig")
    client = None
    try:
        cluster.up(log=lambda msg: None)
        apply_crds(cluster.kubeconfig)
        client = kube.KubeClient(kube.Connection.load(str(cluster.kubeconfig)))
        yield PrivateCluster(cluster, cluster.kubeconfig, client)
    finally:
        if client is not None:
            client.close()
        cluster.down(quiet=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def private_namespace(private_cluster) -> str:
    name = f"c-{uuid.uuid4().hex[:8]}"
    private_cluster.client.create(kube.NAMESPACES, {"metadata": {"name": name}})
    yield name
    try:
        private_cluster.client.delete(kube.NAMESPACES, name)
    except (kube.ApiError, kube.Unavailable):
        pass


@pytest.fixture
def webhooks(tmp_path):
    """Start `paramedic-webhook` (gunicorn) processes; all stopped at the end."""
    started: list[WebhookProcess] = []

    def start(kubeconfig: Path, namespace: str, token: str, env: dict[str, str] | None = None,
              port: int | None = None) -> WebhookProcess:
        proc = WebhookProcess(kubeconfig, namespace, tmp_path, token, env, port).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def leftover_processes(marker: str) -> list[str]:
    """Command lines of live processes containing `marker`."""
    return list(find(marker).values())
