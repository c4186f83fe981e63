"""Shared fixtures: a real local control plane for the whole session.

Set PARAMEDIC_KUBECONFIG to reuse a running one (`make cluster-up`); otherwise
the suite starts its own on free loopback ports and stops it at the end, with the
machine's real node beside kwok's when it can have one (PARAMEDIC_REAL_NODE).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from devtools import node as devnode
from devtools.cluster import DevCluster, apply_crds, tools_bin
from paramedic import kube

_SESSION: dict[str, DevCluster] = {}


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    existing = os.environ.get("PARAMEDIC_KUBECONFIG")
    if existing:
        path = Path(existing)
        apply_crds(path)
        yield path
        return
    root = Path(tempfile.mkdtemp(prefix="paramedic-test-cluster-"))
    cluster = DevCluster(root=root / "cluster", kubeconfig=root / "kubeconfig")
    _SESSION["cluster"] = cluster
    leftovers: list[str] = []
    try:
        cluster.up(log=lambda msg: None)
        apply_crds(cluster.kubeconfig)
        yield cluster.kubeconfig
    finally:
        node = cluster.node()
        if node is not None:
            leftovers = node.down(cluster.kubeconfig)
        cluster.down(quiet=True)
        subprocess.run(["rm", "-rf", str(root)], check=False)
    # Tear-down leaves the machine as it found it: anything else fails the session.
    assert not leftovers, "the real node left the host changed:\n" + "\n".join(leftovers)


@pytest.fixture(scope="session")
def real_node(kubeconfig):
    """The session cluster's real node (kubelet, containerd, runc, CNI).

    Without one, real-node tests skip with the reason, except in CI (CI=true), where
    they fail: CI must prove Paramedic on real containers.
    """
    cluster = _SESSION.get("cluster")
    if cluster is not None:
        node = cluster.node()
    else:  # a reused cluster (PARAMEDIC_KUBECONFIG): the machine's node, if it joined that cluster
        node = devnode.RealNode.current(tools_bin(), log=lambda m: None)
        client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
        try:
            if node is not None and client.get_or_none(kube.NODES, devnode.NODE_NAME) is None:
                node = None
        finally:
            client.close()
    if node is None:
        why = ("the reused cluster (PARAMEDIC_KUBECONFIG) has none" if cluster is None else
               "this machine cannot run one (PARAMEDIC_REAL_NODE=1 says why)")
        if os.environ.get("CI"):
            pytest.fail(f"no real node in CI: {why}")
        pytest.skip(f"no real node: {why}")
    return node


def kubectl(path: Path, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(tools_bin() / "kubectl"), "--kubeconfig", str(path), *args],
                          check=check, capture_output=True, text=True, input=input)


@pytest.fixture(scope="session")
def kube_client(kubeconfig) -> kube.KubeClient:
    client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
    yield client
    client.close()


@pytest.fixture
def namespace(kube_client) -> str:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kube_client.create(kube.NAMESPACES, {"metadata": {"name": name}})
    yield name
    kube_client.delete(kube.NAMESPACES, name)


@pytest.fixture
def run_kubectl(kubeconfig):
    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        return kubectl(kubeconfig, *args, check=check, input=input)
    return run


@pytest.fixture
def operators(tmp_path):
    """Start `paramedic-operator` processes against any kubeconfig; all stopped at the end."""
    from tests.helpers import OperatorProcess

    started: list[OperatorProcess] = []

    def start(kubeconfig: Path, *namespaces: str, env: dict[str, str] | None = None, standalone: bool = True,
              extra_args: list[str] | None = None, tag: str = "") -> OperatorProcess:
        proc = OperatorProcess(kubeconfig, list(namespaces), tmp_path, env, standalone=standalone,
                               extra_args=extra_args, tag=tag).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        if os.environ.get("PARAMEDIC_TEST_SHOW_LOGS"):
            print(proc.logs())


@pytest.fixture
def operator_factory(kubeconfig, operators):
    """Start operators watching given namespaces of the session's control plane."""
    def start(*namespaces: str, env: dict[str, str] | None = None):
        return operators(kubeconfig, *namespaces, env=env)
    return start


@pytest.fixture
def http_service():
    """A local HTTP service the test switches healthy, failing, slow or unreachable."""
    from tests.helpers import SwitchableService

    svc = SwitchableService()
    yield svc
    svc.stop()


@pytest.fixture
def mail():
    """An SMTP server on loopback that keeps what it is sent (see `tests.helpers.smtp_env`)."""
    from devtools.mail import MailSink

    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def tenants(kube_client, kubeconfig):
    """Two tenant namespaces, each with a ServiceAccount holding only namespace rights (tests/tenancy.py)."""
    from tests.tenancy import tenants as make
    yield from make(kube_client, kubeconfig)
