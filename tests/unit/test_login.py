"""The operator's Kopf login: in a pod, KUBERNETES_SERVICE_HOST/PORT and the service
account's files (no cluster DNS); a kubeconfig otherwise, in the order Paramedic's client uses."""

from __future__ import annotations

import json

import kopf
import pytest

from paramedic import kube
from paramedic.operator import login as login_mod


@pytest.fixture
def sa_dir(tmp_path):
    d = tmp_path / "serviceaccount"
    d.mkdir()
    (d / "token").write_text("tok-123\n")
    (d / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (d / "namespace").write_text("paramedic\n")
    return d


@pytest.fixture
def no_home_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.kube/config
    monkeypatch.delenv("KUBECONFIG", raising=False)


POD_ENV = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}


def test_service_account_login_uses_the_service_host_not_cluster_dns(sa_dir):
    info = login_mod.service_account_login(POD_ENV, sa_dir)
    assert info is not None
    assert info.server == "https://10.96.0.1:443"
    assert "kubernetes.default.svc" not in info.server
    assert info.token == "tok-123" and info.ca_path == str(sa_dir / "ca.crt")
    assert info.default_namespace == "paramedic"


def test_ipv6_service_host_is_bracketed(sa_dir):
    info = login_mod.service_account_login({"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"},
                                           sa_dir)
    assert info is not None and info.server == "https://[fd00::1]:6443"


def test_no_pod_no_service_account_login(sa_dir, tmp_path):
    assert login_mod.service_account_login({}, sa_dir) is None  # not in a pod
    assert login_mod.service_account_login({"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, sa_dir) is None
    assert login_mod.service_account_login(POD_ENV, tmp_path / "nowhere") is None  # no token mounted


def test_missing_ca_and_namespace_are_left_out(sa_dir):
    (sa_dir / "ca.crt").unlink()
    (sa_dir / "namespace").unlink()
    info = login_mod.service_account_login(POD_ENV, sa_dir)
    assert info is not None and info.ca_path is None and info.default_namespace is None


def test_login_in_a_pod_takes_the_service_account(sa_dir, no_home_kubeconfig):
    info = login_mod.login(env=POD_ENV, sa_dir=sa_dir, settings=kopf.OperatorSettings())
    assert info is not None and info.server == "https://10.96.0.1:443" and info.token == "tok-123"


def _kubeconfig(path, server: str) -> str:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "kc-token"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x"}))
    return str(path)


def test_a_kubeconfig_wins_even_in_a_pod(sa_dir, tmp_path, no_home_kubeconfig, monkeypatch):
    path = _kubeconfig(tmp_path / "kubeconfig", "https://127.0.0.1:6443")
    monkeypatch.setenv("KUBECONFIG", path)  # Kopf's own loader reads the process environment
    info = login_mod.login(env={**POD_ENV, "KUBECONFIG": path}, sa_dir=sa_dir, settings=kopf.OperatorSettings())
    assert info is not None and info.server == "https://127.0.0.1:6443" and info.token == "kc-token"


def test_without_a_token_it_falls_back_to_the_kubeconfig(tmp_path, no_home_kubeconfig):
    # In a pod whose token is not mounted (automountServiceAccountToken: false): Kopf's
    # kubeconfig loader has nothing either, and says so by returning None.
    assert login_mod.login(env=POD_ENV, sa_dir=tmp_path / "nowhere", settings=kopf.OperatorSettings()) is None


def test_kopf_and_paramedic_choose_alike(tmp_path, no_home_kubeconfig):
    assert kube.uses_service_account(env=POD_ENV)
    assert not kube.uses_service_account("some/kubeconfig", env=POD_ENV)
    assert not kube.uses_service_account(env={**POD_ENV, "KUBECONFIG": "x"})
    assert not kube.uses_service_account(env={})
    home = tmp_path / "kube-config"
    home.write_text("{}")
    assert not kube.uses_service_account(env=POD_ENV, home_kubeconfig=str(home))


def test_the_operators_login_handler_connects_to_the_service_host(sa_dir, no_home_kubeconfig, monkeypatch):
    from paramedic.operator import handlers

    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", str(sa_dir))
    for k, v in POD_ENV.items():
        monkeypatch.setenv(k, v)
    info = handlers.login(settings=kopf.OperatorSettings(), logger=None)
    assert info is not None and info.server == "https://10.96.0.1:443" and info.token == "tok-123"
