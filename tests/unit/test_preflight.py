"""The start-up preflight's decisions: what the operator waits for, and what it says about it."""

from __future__ import annotations

import logging

import httpx
import pytest

from devtools.cluster import free_port
from paramedic import kube
from paramedic.operator import preflight
from paramedic.operator.preflight import Findings, Need, Reporter, decide, needs
from paramedic.settings import Settings

ALL_CRDS = {"incidents.paramedic.dev", "monitoredservices.paramedic.dev", "oncallschedules.paramedic.dev"}


def test_needs_list_watch_and_status_patch_in_every_watched_namespace():
    got = {n.describe() for n in needs(["shop", "pay"], None)}
    for ns in ("shop", "pay"):
        for plural in ("incidents", "monitoredservices", "oncallschedules"):
            assert f"list {plural}.paramedic.dev in namespace {ns}" in got
            assert f"watch {plural}.paramedic.dev in namespace {ns}" in got
            assert f"patch {plural}/status.paramedic.dev in namespace {ns}" in got
    assert got - {"list namespaces cluster-wide", "watch namespaces cluster-wide"} == \
        {d for d in got if "paramedic.dev" in d} and len(got) == 2 * 3 * 3 + 2
    assert not any("leases" in d for d in got)  # standalone: no Lease


def test_needs_the_leases_in_paramedics_namespace_only():
    got = {n.describe() for n in needs([], "paramedic")}
    assert "list incidents.paramedic.dev cluster-wide" in got
    leases = {d for d in got if "leases" in d}
    # Every verb the shards use (tests/chart/test_rbac_needs.py holds LEASE_VERBS to the code's calls).
    assert leases == {f"{verb} leases.coordination.k8s.io in namespace paramedic" for verb in preflight.LEASE_VERBS}
    assert {"create", "patch"} <= set(preflight.LEASE_VERBS)
    namespaced = {n.describe() for n in needs(["shop"], "ops")}
    assert {d for d in namespaced if "leases" in d} == {d.replace("paramedic", "ops") for d in leases}


def test_a_need_is_a_self_subject_access_review():
    n = Need("patch", kube.INCIDENTS, "status", "shop")
    assert n.review() == {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                          "spec": {"resourceAttributes": {"group": "paramedic.dev", "resource": "incidents",
                                                          "verb": "patch", "subresource": "status",
                                                          "namespace": "shop"}}}
    assert "namespace" not in Need("list", kube.INCIDENTS).review()["spec"]["resourceAttributes"]
    assert n.can_i("system:serviceaccount:x:y") == \
        "kubectl auth can-i patch incidents/status.paramedic.dev -n shop --as=system:serviceaccount:x:y"


def test_all_present_is_ready_with_leases():
    v = decide(Findings(served=ALL_CRDS), [], "paramedic")
    assert v.ready and v.scanning and not v.warnings


def test_missing_crds_are_named_with_the_manifests_to_apply():
    v = decide(Findings(served={"incidents.paramedic.dev"}), ["shop"], None)
    assert not v.ready
    [problem] = v.problems
    assert "monitoredservices.paramedic.dev" in problem and "oncallschedules.paramedic.dev" in problem
    assert "incidents.paramedic.dev" not in problem
    assert "kubectl apply -f manifests/crds/" in problem and "charts/paramedic" in problem


def test_every_missing_permission_is_named_with_resource_and_namespace():
    denied = [Need("list", kube.INCIDENTS, namespace="shop"), Need("patch", kube.ONCALL_SCHEDULES, "status", "pay")]
    v = decide(Findings(served=ALL_CRDS, denied=denied, user="system:serviceaccount:shop:op"), ["shop", "pay"], None)
    assert not v.ready
    [problem] = v.problems
    assert "list incidents.paramedic.dev in namespace shop" in problem
    assert "patch oncallschedules/status.paramedic.dev in namespace pay" in problem
    assert "system:serviceaccount:shop:op" in problem and "manifests/rbac.yaml" in problem
    assert "kubectl auth can-i list incidents.paramedic.dev -n shop --as=system:serviceaccount:shop:op" in problem
    assert any("list incidents.paramedic.dev in namespace shop" in w for w in v.waiting_for)


def test_crds_and_rbac_both_missing_are_both_reported():
    v = decide(Findings(denied=[Need("watch", kube.INCIDENTS)]), [], None)
    assert len(v.problems) == 2


def lease_need(verb: str, ns: str = "paramedic") -> Need:
    return Need(verb, kube.LEASES, namespace=ns)


def test_a_missing_lease_right_is_waited_for_naming_it_and_the_role_to_grant():
    user = "system:serviceaccount:paramedic:paramedic-operator"
    v = decide(Findings(served=ALL_CRDS, denied=[lease_need("create"), lease_need("update")], user=user),
               [], "paramedic")
    assert not v.ready
    [problem] = v.problems
    assert f"RBAC forbids {user} create, update on leases.coordination.k8s.io in namespace paramedic" in problem
    assert "paramedic-operator-leases" in problem and "manifests/rbac.yaml" in problem and "--standalone" in problem
    assert f"kubectl auth can-i create leases.coordination.k8s.io -n paramedic --as={user}" in problem
    assert v.waiting_for == ["Leases in namespace paramedic: create, update"]


def test_lease_rights_and_other_rights_are_reported_apart():
    denied = [lease_need("watch"), Need("list", kube.INCIDENTS)]
    v = decide(Findings(served=ALL_CRDS, denied=denied), [], "paramedic")
    assert len(v.problems) == 2
    assert "list incidents.paramedic.dev cluster-wide" in v.problems[0] and "leases" not in v.problems[0]
    assert "watch on leases.coordination.k8s.io" in v.problems[1]


def test_a_missing_namespace_for_the_leases_is_waited_for():
    v = decide(Findings(served=ALL_CRDS, namespace_missing=True), [], "paramedic")
    assert not v.ready
    [problem] = v.problems
    assert "Paramedic's namespace paramedic (PARAMEDIC_NAMESPACE) does not exist" in problem
    assert "kubectl create namespace paramedic" in problem
    assert v.waiting_for == ["namespace paramedic"]


def test_standalone_checks_no_lease():
    v = decide(Findings(served=ALL_CRDS, namespace_missing=True), [], None)
    assert v.ready and not v.warnings
    assert not any(n.lease for n in needs(["shop"], None))


def test_namespaces_that_may_not_be_listed_turn_kopfs_scanning_off():
    ns_list = Need("list", kube.NAMESPACES)
    v = decide(Findings(served=ALL_CRDS, denied=[ns_list]), ["shop"], None)
    assert v.ready and not v.scanning
    assert "may not list namespaces cluster-wide: Kopf's scanning is off, so shop are watched as given" in v.warnings[0]
    assert decide(Findings(served=ALL_CRDS), ["shop"], None).scanning
    assert not any(n.resource == kube.NAMESPACES for n in needs([], None))  # cluster-wide: no scan needed


def test_unchecked_permissions_warn_but_do_not_block():
    v = decide(Findings(served=ALL_CRDS, rbac_unchecked="403 Forbidden"), [], None)
    assert v.ready and "403 Forbidden" in v.warnings[0]


def test_connection_problems_say_what_to_do():
    host = "https://127.0.0.1:6443"
    bad = preflight.connection_problem(kube.ApiError(401, "Unauthorized", "Unauthorized"), host, "kubeconfig k")
    assert "refused the credentials from kubeconfig k (401 Unauthorized)" in bad and host in bad
    down = preflight.connection_problem(kube.Unavailable("API server unreachable: ConnectError"), host, "kubeconfig k")
    assert down.startswith(f"cannot reach the API server at {host}") and "ConnectError" in down


def test_retries_back_off_exponentially_to_a_cap():
    assert [preflight.retry_delay(a, cap=30) for a in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_credentials_source_follows_the_client_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert preflight.credentials_source("/k", env={}) == "kubeconfig /k"
    assert preflight.credentials_source("", env={"KUBECONFIG": "/e"}) == "kubeconfig /e ($KUBECONFIG)"
    assert preflight.credentials_source("", env={"KUBERNETES_SERVICE_HOST": "10.0.0.1"}) == \
        "the pod's service account"


def test_reporter_repeats_the_full_error_only_when_it_changes_or_now_and_then():
    r = Reporter(interval=10, full_every=300)
    crds = decide(Findings(), [], None)
    first = r.lines(crds, now=0)
    assert [lvl for lvl, _ in first] == [logging.ERROR] and "manifests/crds/" in first[0][1]
    again = r.lines(crds, now=10)
    assert len(again) == 1 and again[0][1].startswith("still waiting for CRDs incidents.paramedic.dev")
    rbac = decide(Findings(served=ALL_CRDS, denied=[Need("list", kube.INCIDENTS)]), [], None)
    assert "manifests/rbac.yaml" in r.lines(rbac, now=20)[0][1]  # changed: full again
    assert r.lines(rbac, now=30)[0][1].startswith("still waiting")
    assert "manifests/rbac.yaml" in r.lines(rbac, now=321)[0][1]  # and every few minutes


# --- the waiting loop, with the API server's answers scripted ----------------------

@pytest.fixture
def kubeconfig(tmp_path):
    from devtools.cluster import kubeconfig_yaml

    ca = tmp_path / "ca.crt"
    ca.write_text("")
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_yaml(f"https://127.0.0.1:{free_port()}", ca, "t"))
    return path


def test_waits_retrying_then_re_checking_until_ready(kubeconfig, monkeypatch, caplog):
    monkeypatch.setattr(kube.Connection, "load",
                        classmethod(lambda cls, *a, **k: kube.Connection("https://127.0.0.1:1", False, lambda: None)))
    answers = [kube.Unavailable("API server unreachable: ConnectError"),
               kube.ApiError(401, "Unauthorized", "Unauthorized"),
               Findings(served={"incidents.paramedic.dev"}),
               Findings(served=ALL_CRDS)]

    asked: list[str | None] = []

    def fake_inspect(client, namespaces, leases_namespace):
        asked.append(leases_namespace)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(preflight, "inspect", fake_inspect)
    port = free_port()
    health: list[dict] = []
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        health.append(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json())

    settings = Settings(kubeconfig=str(kubeconfig), health_port=port, preflight_interval_seconds=7, namespace="ops")
    with caplog.at_level(logging.INFO, logger="paramedic.operator.preflight"):
        verdict = preflight.wait_until_ready(settings, ["shop"], True, sleep=sleep)
    assert verdict.ready and verdict.scanning
    assert asked == ["ops"] * 4  # the Leases, in Paramedic's namespace
    assert slept == [1, 2, 7]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].startswith("preflight attempt 1: cannot reach the API server at https://127.0.0.1:1")
    assert errors[1].startswith("preflight attempt 2: the API server at https://127.0.0.1:1 refused the credentials")
    assert "monitoredservices.paramedic.dev" in errors[2] and "manifests/crds/" in errors[2]
    assert any(r.getMessage().startswith("preflight passed") and "Leases usable in namespace ops" in r.getMessage()
               for r in caplog.records)
    assert [h["status"] for h in health] == ["waiting"] * 3
    assert "cannot reach" in health[0]["waitingFor"][0] and "CRDs" in health[2]["waitingFor"][0]
    with pytest.raises(httpx.ConnectError):  # the waiting /healthz is gone: Kopf's takes the port
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_credentials_that_cannot_load_are_a_configuration_error(tmp_path):
    settings = Settings(kubeconfig=str(tmp_path / "no-such-kubeconfig"))
    with pytest.raises(preflight.ConfigurationError, match="cannot load Kubernetes credentials from kubeconfig"):
        preflight.wait_until_ready(settings, [], False, sleep=lambda s: None)


def test_the_operator_exits_2_when_credentials_cannot_load(tmp_path, monkeypatch):
    from paramedic.operator import main as main_mod

    monkeypatch.setenv("PARAMEDIC_KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setattr(main_mod.kopf, "run", lambda **kw: pytest.fail("Kopf must not start"))
    assert main_mod.main(["--standalone"]) == 2


def test_the_operator_checks_the_leases_unless_standalone(monkeypatch):
    from paramedic.operator import main as main_mod

    asked: list[bool] = []
    monkeypatch.setattr(preflight, "wait_until_ready",
                        lambda settings, ns, leases: asked.append(leases) or preflight.Verdict())
    runs: list[dict] = []
    monkeypatch.setattr(main_mod.kopf, "run", lambda **kw: runs.append(kw))
    assert main_mod.main(["--standalone", "-A"]) == 0
    assert asked == [False]
    # Kopf itself always runs without peering: every replica sees every event, the Leases share the work.
    assert runs[0]["standalone"] is True and runs[0].get("peering_name") is None
    assert runs[0]["settings"].scanning.disabled is False


def test_the_operator_runs_kopf_without_scanning_when_namespaces_may_not_be_listed(monkeypatch):
    from paramedic.operator import main as main_mod

    monkeypatch.setattr(preflight, "wait_until_ready", lambda settings, ns, leases: preflight.Verdict(scanning=False))
    runs: list[dict] = []
    monkeypatch.setattr(main_mod.kopf, "run", lambda **kw: runs.append(kw))
    assert main_mod.main(["--standalone", "-n", "shop"]) == 0
    assert runs[0]["settings"].scanning.disabled is True and runs[0]["namespaces"] == ["shop"]
