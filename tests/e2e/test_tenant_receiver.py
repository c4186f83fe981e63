"""Tenant safety of the receiver (issue #16): tokens scoped to namespaces, rotation, no report
endpoint, partial failures. Every test goes through the real `paramedic-webhook` (gunicorn)
against the real API server, with two tenants holding only rights in their own namespaces.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from paramedic import kube
from paramedic.domain import scope as sc
from tests.e2e.test_control_plane import deployment
from tests.e2e.test_webhook import am_alert, am_payload, incidents, make_service
from tests.helpers import WebhookProcess, wait_for, wait_object
from tests.tenancy import ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS, Tenant, _token_request

TOKEN_A, TOKEN_B, LEGACY = "token-of-team-a-0123456789", "token-of-team-b-0123456789", "legacy-token-0123456789"


def write_tokens(path: Path, entries: list[dict[str, Any]]) -> None:
    # Written aside and renamed, as a Secret volume swaps its files; a later mtime marks the change.
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"tokens": entries}))
    later = time.time_ns() + 10**9
    os.utime(tmp, ns=(later, later))
    tmp.replace(path)


def send(hook: WebhookProcess, token: str, *alerts: dict) -> httpx.Response:
    return httpx.post(hook.url + "/api/v1/alertmanager", json=am_payload(*alerts),
                      headers={"Authorization": f"Bearer {token}"}, timeout=30)


def ok(resp: httpx.Response) -> dict:
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def receiver(kubeconfig, namespace, tenants, tmp_path):
    """The receiver with one token per team (and the legacy token at its default scope)."""
    a, b = tenants
    tokens = tmp_path / "tokens.yaml"
    # Each team's own Alertmanager: the admin lets their alerts trigger remediation.
    write_tokens(tokens, [{"name": "team-a", "namespaces": [a.namespace], "token": TOKEN_A, "remediate": True},
                          {"name": "team-b", "namespaces": [b.namespace], "token": TOKEN_B, "remediate": True}])
    hook = WebhookProcess(kubeconfig, namespace, tmp_path, LEGACY,
                          env={"PARAMEDIC_WEBHOOK_TOKENS_FILE": str(tokens)}).start()
    hook.tokens = tokens  # type: ignore[attr-defined]
    yield hook
    hook.stop()


def test_a_token_writes_only_its_own_namespaces(kube_client, namespace, tenants, receiver):
    a, b = tenants
    make_service(kube_client, a.namespace, "web")
    make_service(kube_client, b.namespace, "web")
    into_b = am_alert("Down", app="web", namespace=b.namespace, service="web")
    out = ok(send(receiver, TOKEN_A,
                  am_alert("Down", app="web", namespace=a.namespace), into_b,
                  am_alert("Flood", namespace="kube-system", service="coredns")))
    assert out["created"] == 3 and out["rehomed"] == 2, out
    assert incidents(kube_client, b.namespace) == [], "nothing opens in B"
    assert kube_client.list(kube.INCIDENTS, "kube-system") == [], "nothing opens in kube-system"
    assert incidents(kube_client, namespace) == [], "nor in Paramedic's namespace"
    by_service = {i["spec"]["service"]: i for i in incidents(kube_client, a.namespace)}
    assert set(by_service) == {"web", f"{b.namespace}/web", "kube-system/coredns"}
    assert by_service["web"]["spec"]["managed"] is True
    for claimed, svc in ((b.namespace, f"{b.namespace}/web"), ("kube-system", "kube-system/coredns")):
        inc = by_service[svc]
        assert inc["spec"]["managed"] is False, "a re-homed alert never remediates"
        assert inc["metadata"]["labels"][sc.CLAIMED_NAMESPACE_LABEL] == claimed
        assert inc["spec"]["labels"]["namespace"] == claimed  # the alert's own labels, as data
        [note] = [e for e in inc["status"]["timeline"] if e["type"] == sc.REHOMED_TIMELINE_TYPE]
        assert claimed in note["message"] and "team-a" in note["message"] and "unmanaged" in note["message"]
    # The same alerts again: deduplicated in A, still nothing in B (the retry is idempotent).
    again = ok(send(receiver, TOKEN_A, into_b))
    assert again["created"] == 0 and again["deduplicated"] == 1
    assert incidents(kube_client, b.namespace) == []
    # The legacy token (PARAMEDIC_WEBHOOK_TOKEN_FILE) defaults to Paramedic's own namespace.
    legacy = ok(send(receiver, LEGACY, am_alert("Down", app="web", namespace=a.namespace, service="web")))
    assert legacy["rehomed"] == 1 and [i["spec"]["service"] for i in incidents(kube_client, namespace)] == \
        [f"{a.namespace}/web"]
    metrics = httpx.get(receiver.url + "/metrics").text
    assert 'paramedic_alerts_rehomed_total{reason="out_of_scope"} 4.0' in metrics
    assert 'paramedic_alerts_routed_total{rule="rehomed"} 4.0' in metrics, "re-homed alerts counted as such"


def test_forged_resolutions_leave_another_teams_incident_open(kube_client, tenants, receiver):
    a, b = tenants
    make_service(kube_client, b.namespace, "web", autoResolve=True)
    starts = datetime.now(UTC) - timedelta(minutes=1)
    firing = am_alert("Down", app="web", namespace=b.namespace, starts=starts)
    ok(send(receiver, TOKEN_B, firing))
    [inc] = incidents(kube_client, b.namespace)
    resolved = {**firing, "status": "resolved", "endsAt": firing["startsAt"]}
    out = ok(send(receiver, TOKEN_A, resolved))
    assert out["resolved"] == 0 and out["ignored"] == 1 and out["rehomed"] == 1, out
    [still] = incidents(kube_client, b.namespace)
    assert still["spec"]["state"] == "open" and still["metadata"]["name"] == inc["metadata"]["name"]
    assert [x["status"] for x in still["status"]["alerts"]] == ["firing"]
    assert incidents(kube_client, a.namespace) == [], "a resolution never opens anything"
    # B's own token does resolve it: the refusal above is the scope, not a broken resolution.
    # (The receiver records the resolution; the operator, not running here, moves spec.state.)
    out = ok(send(receiver, TOKEN_B, resolved))
    assert out["resolved"] == 1 and out["autoResolvable"] == 1, out
    [done] = incidents(kube_client, b.namespace)
    assert [x["status"] for x in done["status"]["alerts"]] == ["resolved"] and done["spec"]["state"] == "open"


def test_no_report_endpoint_for_any_token(kube_client, tenants, receiver):
    a, b = tenants
    make_service(kube_client, b.namespace, "web")
    out = ok(send(receiver, TOKEN_B, am_alert("Down", app="web", namespace=b.namespace)))
    ns, name = out["incidents"][0].split("/")
    path = f"{receiver.url}/api/v1/incidents/{ns}/{name}/report.md"
    for token in (TOKEN_A, TOKEN_B, a.token):  # a receiver token, or A's own Kubernetes identity
        resp = httpx.get(path, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code in (401, 404) and "Post-mortem" not in resp.text, (token[:8], resp.status_code)
    # A reads its own incidents' post-mortems with its own rights, and B's not at all.
    with pytest.raises(kube.ApiError) as refused:
        a.client().get(kube.INCIDENTS, name, b.namespace)
    assert refused.value.status == 403


def test_rotation_keeps_both_tokens_valid_during_the_overlap(kube_client, tenants, receiver):
    a, _ = tenants
    make_service(kube_client, a.namespace, "web")
    old_entry = {"name": "team-a", "namespaces": [a.namespace], "token": TOKEN_A}
    new_token = "token-of-team-a-rotated-9876543210"
    sent: list[dict] = []

    def deliver(token: str, i: int) -> httpx.Response:
        alert = am_alert("Down", app="web", namespace=a.namespace, instance=f"10.0.0.{i}")
        resp = send(receiver, token, alert)
        if resp.status_code == 200:
            sent.append(alert)
        return resp

    ok(deliver(TOKEN_A, 0))
    # Step 1: the new token joins the Secret; senders keep the old one meanwhile.
    write_tokens(receiver.tokens, [old_entry, {**old_entry, "name": "team-a-next", "token": new_token}])
    wait_for(lambda: deliver(new_token, 1).status_code == 200, 30, "the new token accepted")
    # Step 2: during the overlap, both are accepted (senders switch one by one).
    for i, token in enumerate([TOKEN_A, new_token, TOKEN_A, new_token], start=2):
        ok(deliver(token, i))
    # Step 3: every sender uses the new token; the old one leaves the Secret.
    write_tokens(receiver.tokens, [{**old_entry, "name": "team-a-next", "token": new_token}])
    wait_for(lambda: send(receiver, TOKEN_A, am_alert("Probe", namespace=a.namespace)).status_code == 401, 30,
             "the old token refused")
    ok(deliver(new_token, 9))
    recorded = {e["key"] for inc in incidents(kube_client, a.namespace) for e in inc["status"]["alerts"]
                if e["alertname"] == "Down"}
    assert len(sent) == 7 and len(recorded) == 7, "every alert sent during the rotation is recorded"


def test_legacy_token_file_with_two_lines_rotates_too(kubeconfig, namespace, tmp_path, kube_client):
    hook = WebhookProcess(kubeconfig, namespace, tmp_path, "old-legacy-token-0123").start()
    try:
        make_service(kube_client, namespace, "web")
        ok(send(hook, "old-legacy-token-0123", am_alert("Down", app="web", namespace=namespace, instance="1")))
        hook.token_file.write_text("old-legacy-token-0123\nnew-legacy-token-0123\n")
        later = time.time_ns() + 10**9
        os.utime(hook.token_file, ns=(later, later))
        wait_for(lambda: send(hook, "new-legacy-token-0123",
                              am_alert("Down", app="web", namespace=namespace, instance="2")).status_code == 200,
                 30, "the second token accepted")
        ok(send(hook, "old-legacy-token-0123", am_alert("Down", app="web", namespace=namespace, instance="3")))
        [inc] = incidents(kube_client, namespace)
        assert len(inc["status"]["alerts"]) == 3
    finally:
        hook.stop()


# --- partial failures ------------------------------------------------------------------

RECEIVER_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["paramedic.dev"], "resources": ["monitoredservices"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["paramedic.dev"], "resources": ["incidents"],
     "verbs": ["get", "list", "watch", "create", "patch", "update"]},
    {"apiGroups": ["paramedic.dev"], "resources": ["incidents/status"], "verbs": ["get", "patch", "update"]},
]


CLUSTER_ROLES = kube.Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole")
CLUSTER_ROLE_BINDINGS = kube.Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding")


def watched_only_kubeconfig(admin: kube.KubeClient, kubeconfig: Path, home: str, watched: list[str],
                            out: Path, read_only: tuple[str, ...] = ()) -> Path:
    """Credentials of a receiver ServiceAccount with rights only in `home` and `watched`, as the
    chart grants them with allNamespaces=false (plus reading namespaces, cluster-wide)."""
    admin.create(SERVICE_ACCOUNTS, {"metadata": {"name": "receiver"}}, namespace=home)
    admin.create(CLUSTER_ROLES, {"metadata": {"name": f"{home}-receiver"}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]})
    admin.create(CLUSTER_ROLE_BINDINGS, {"metadata": {"name": f"{home}-receiver"},
                                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                     "name": f"{home}-receiver"},
                                         "subjects": [{"kind": "ServiceAccount", "name": "receiver",
                                                       "namespace": home}]})
    for ns in {home, *watched, *read_only}:
        rules = RECEIVER_RULES[:1] if ns in read_only else RECEIVER_RULES
        admin.create(ROLES, {"metadata": {"name": "paramedic-receiver"}, "rules": rules}, namespace=ns)
        admin.create(ROLE_BINDINGS, {"metadata": {"name": "paramedic-receiver"},
                                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                 "name": "paramedic-receiver"},
                                     "subjects": [{"kind": "ServiceAccount", "name": "receiver",
                                                   "namespace": home}]}, namespace=ns)
    config = yaml.safe_load(kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": _token_request(admin, home, "receiver")}
    out.write_text(yaml.safe_dump(config))
    return out


def test_an_alert_for_an_unwatched_namespace_never_blocks_its_batch(kube_client, kubeconfig, namespace,
                                                                    tenants: tuple[Tenant, Tenant], tmp_path):
    a, b = tenants
    creds = watched_only_kubeconfig(kube_client, kubeconfig, namespace, [a.namespace], tmp_path / "receiver.kcfg")
    tokens = tmp_path / "tokens.yaml"
    write_tokens(tokens, [{"name": "everything", "namespaces": ["*"], "token": TOKEN_A,
                           "remediate": True}])  # the admin's choice
    hook = WebhookProcess(creds, namespace, tmp_path, LEGACY, env={"PARAMEDIC_WEBHOOK_TOKENS_FILE": str(tokens)},
                          port=None).start()
    try:
        make_service(kube_client, a.namespace, "web")
        make_service(kube_client, b.namespace, "web")  # exists, but the receiver may not read it
        batch = [am_alert("Down", app="web", namespace=a.namespace),
                 am_alert("Down", app="web", namespace=b.namespace, service="web"),
                 # a service label that would widen an unescaped field selector
                 {**am_alert("Gone", namespace=a.namespace, service="x,spec.state=closed"), "status": "resolved"},
                 am_alert("Lonely", namespace=a.namespace, service="a=b,c")]
        out = ok(send(hook, TOKEN_A, *batch))
        assert out["rehomed"] == 1 and out["ignored"] == 1 and out["created"] == 3, out
        [managed] = [i for i in incidents(kube_client, a.namespace) if i["spec"]["managed"]]
        assert managed["spec"]["service"] == "web"
        assert [i["spec"]["service"] for i in incidents(kube_client, a.namespace) if not i["spec"]["managed"]] == \
            ["a=b,c"]
        [rehomed] = incidents(kube_client, namespace)
        assert rehomed["metadata"]["labels"][sc.CLAIMED_NAMESPACE_LABEL] == b.namespace
        assert rehomed["spec"]["managed"] is False and rehomed["spec"]["service"] == f"{b.namespace}/web"
        assert incidents(kube_client, b.namespace) == []
        # Alertmanager's retry of the same request changes nothing.
        again = ok(send(hook, TOKEN_A, *batch))
        assert again["created"] == 0 and again["deduplicated"] == 3 and again["ignored"] == 1, again
        exposed = httpx.get(hook.url + "/metrics").text
        assert 'paramedic_alerts_rehomed_total{reason="forbidden"} 2.0' in exposed
        assert 'paramedic_alerts_routed_total{rule="rehomed"} 2.0' in exposed
        assert "cannot read MonitoredServices of " + b.namespace in hook.logs()
    finally:
        hook.stop()
        kube_client.delete(CLUSTER_ROLE_BINDINGS, f"{namespace}-receiver")
        kube_client.delete(CLUSTER_ROLES, f"{namespace}-receiver")



def test_an_alert_for_a_namespace_it_may_not_write_never_blocks_its_batch(kube_client, kubeconfig, namespace,
                                                                         tenants: tuple[Tenant, Tenant], tmp_path):
    """The receiver may read B's MonitoredServices (so B's alert is claimed, managed) but not write
    B's incidents: that group's 403 re-homes it, the other groups of the request stand."""
    a, b = tenants
    creds = watched_only_kubeconfig(kube_client, kubeconfig, namespace, [a.namespace], tmp_path / "receiver.kcfg",
                                    read_only=(b.namespace,))
    tokens = tmp_path / "tokens.yaml"
    write_tokens(tokens, [{"name": "everything", "namespaces": ["*"], "token": TOKEN_A, "remediate": True}])
    hook = WebhookProcess(creds, namespace, tmp_path, LEGACY, env={"PARAMEDIC_WEBHOOK_TOKENS_FILE": str(tokens)}).start()
    try:
        make_service(kube_client, a.namespace, "web")
        make_service(kube_client, b.namespace, "api")
        batch = [am_alert("Down", app="web", namespace=a.namespace),
                 am_alert("Down", app="api", namespace=b.namespace, service="api")]
        out = ok(send(hook, TOKEN_A, *batch))
        assert out["created"] == 2 and out["rehomed"] == 1, out
        assert [i["spec"]["service"] for i in incidents(kube_client, a.namespace)] == ["web"]
        [rehomed] = incidents(kube_client, namespace)
        assert rehomed["spec"]["service"] == f"{b.namespace}/api" and rehomed["spec"]["managed"] is False
        assert rehomed["metadata"]["labels"][sc.CLAIMED_NAMESPACE_LABEL] == b.namespace
        assert incidents(kube_client, b.namespace) == []
        again = ok(send(hook, TOKEN_A, *batch))
        assert again["created"] == 0 and again["deduplicated"] == 2, again
        assert "cannot write incidents in " + b.namespace in hook.logs()
    finally:
        hook.stop()
        kube_client.delete(CLUSTER_ROLE_BINDINGS, f"{namespace}-receiver")
        kube_client.delete(CLUSTER_ROLES, f"{namespace}-receiver")


# --- remediation by alert is a right of its own (issue 24) --------------------------------

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def restart_stamp(dep: dict) -> str | None:
    return (dep["spec"]["template"]["metadata"].get("annotations") or {}).get(RESTARTED_AT)


def restarted_at(client: kube.KubeClient, ns: str, name: str) -> str | None:
    return restart_stamp(client.get(kube.DEPLOYMENTS, name, ns))


def test_a_token_without_the_remediation_right_opens_unmanaged_incidents_never_remediated(
        kube_client, kubeconfig, namespace, tenants, operator_factory, tmp_path):
    """A receiver token is a right to open incidents, not to restart: without `remediate`, its
    alerts are recorded and paged (the service's team) but the operator never acts on them,
    and they never join, hold open or resolve a managed incident. With it, the same alert restarts."""
    a, _ = tenants
    tokens = tmp_path / "tokens.yaml"
    write_tokens(tokens, [{"name": "shared", "namespaces": [a.namespace], "token": TOKEN_A},  # remediate: absent
                          {"name": "trusted", "namespaces": [a.namespace], "token": TOKEN_B, "remediate": True}])
    hook = WebhookProcess(kubeconfig, namespace, tmp_path, LEGACY, remediate=False,
                          env={"PARAMEDIC_WEBHOOK_TOKENS_FILE": str(tokens)}).start()
    try:
        kube_client.create(kube.DEPLOYMENTS, deployment("web"), a.namespace)
        make_service(kube_client, a.namespace, "web", team="payments",
                     remediation={"actions": [{"restart": {}}], "verifySeconds": 60})
        operator_factory(a.namespace, env={"PARAMEDIC_NAMESPACE": namespace})  # Paramedic's own, as the receiver's
        # The operator knows the service (its team) before the alert comes: for an unmanaged
        # incident it does not ask the API server when its cache has not caught up yet.
        wait_object(kube_client, kube.MONITORED_SERVICES, "web", a.namespace, lambda s: s["status"]["observedGeneration"],
                    60, "the operator sees the service")
        starts = datetime.now(UTC) - timedelta(seconds=30)
        forged = am_alert("Down", app="web", namespace=a.namespace, instance="x", starts=starts)
        out = ok(send(hook, TOKEN_A, forged))
        assert out["created"] == 1 and out["unmanaged"] == 1, out
        [outcome] = out["alerts"]
        assert outcome["outcome"] == "recorded" and outcome["managed"] is False
        [inc] = incidents(kube_client, a.namespace)
        name = inc["metadata"]["name"]
        assert inc["spec"]["managed"] is False and inc["spec"]["service"] == "web", "where it belongs, unmanaged"
        assert any(e["type"] == sc.UNREMEDIATED_TIMELINE_TYPE and "'shared'" in e["message"]
                   for e in inc["status"]["timeline"])
        # The operator has seen it (paged to the service's team) and decided: no remediation.
        seen = wait_object(kube_client, kube.INCIDENTS, name, a.namespace,
                           lambda i: i["status"]["remediation"]["phase"] == "Skipped" and "team" in i["status"], 60,
                           "remediation skipped")
        assert seen["status"].get("team") == "payments"
        time.sleep(3)
        assert restarted_at(kube_client, a.namespace, "web") is None, "never restarted"
        assert not ((kube_client.get(kube.INCIDENTS, name, a.namespace)["status"].get("remediation") or {})
                    .get("attempts")), "no attempt"

        # With the right, the same kind of alert restarts (in a managed incident of its own).
        real = am_alert("Down", app="web", namespace=a.namespace, instance="y", starts=starts)
        out = ok(send(hook, TOKEN_B, real))
        [managed] = [i for i in incidents(kube_client, a.namespace) if i["spec"]["managed"]]
        assert managed["metadata"]["name"] != name and out["alerts"][0]["managed"] is True
        try:
            wait_object(kube_client, kube.DEPLOYMENTS, "web", a.namespace, restart_stamp, 60, "rollout restart")
        except AssertionError:
            now = kube_client.get(kube.INCIDENTS, managed["metadata"]["name"], a.namespace)["status"]
            raise AssertionError(f"not restarted: {now.get('remediation')} {now.get('timeline')}") from None

        # The shared token can neither join the managed incident (a firing alert there would keep
        # its verification failing) nor resolve its alert (which would close it).
        ok(send(hook, TOKEN_A, am_alert("Down", app="web", namespace=a.namespace, instance="z", starts=starts),
                {**real, "status": "resolved", "endsAt": real["startsAt"]}))
        after = kube_client.get(kube.INCIDENTS, managed["metadata"]["name"], a.namespace)
        assert [e["status"] for e in after["status"]["alerts"]] == ["firing"], "the managed incident is untouched"
        assert len(kube_client.get(kube.INCIDENTS, name, a.namespace)["status"]["alerts"]) == 2, \
            "the shared token's new alert joined its own, unmanaged incident"
        assert len(incidents(kube_client, a.namespace)) == 2
    finally:
        hook.stop()


def test_an_alert_too_long_for_an_incident_is_cut_and_its_batch_recorded(kube_client, tenants, receiver):
    """Issue 24: a 300-character alertname and no `service` label made spec.service 300 characters;
    the API server refused it (422) and the request answered 500, so Alertmanager retried it forever."""
    a, _ = tenants
    make_service(kube_client, a.namespace, "web")
    good = am_alert("Down", app="web", namespace=a.namespace)
    long = am_alert("A" * 300, namespace=a.namespace)
    resp = send(receiver, TOKEN_A, good, long)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert [x["outcome"] for x in out["alerts"]] == ["recorded", "recorded"], out
    by_service = {i["spec"]["service"]: i for i in incidents(kube_client, a.namespace)}
    assert set(by_service) == {"web", "A" * 252 + "…"}
    assert {e["alertname"] for i in by_service.values() for e in i["status"]["alerts"]} == {"Down", "A" * 300}
    again = ok(send(receiver, TOKEN_A, good, long))  # Alertmanager's re-send: nothing new
    assert again["created"] == 0 and again["deduplicated"] == 2, again


POISON_POLICY = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                              "ValidatingAdmissionPolicy")
POISON_BINDING = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                               "ValidatingAdmissionPolicyBinding")


def test_any_refusal_of_the_api_server_records_the_alert_elsewhere_never_fails_the_batch(
        kube_client, namespace, tenants, receiver):
    """An admission policy (here, one refusing incidents whose labels carry `poison`) answers 422 in
    the alert's namespace and in the token's home: the alert is then recorded alone, without its
    own text, and every other alert of the request where it belongs."""
    a, _ = tenants
    policy = f"{namespace}-poison"
    kube_client.create(POISON_POLICY, {"metadata": {"name": policy}, "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": ["paramedic.dev"], "apiVersions": ["*"],
                                                "operations": ["CREATE"], "resources": ["incidents"]}]},
        "matchConditions": [{"name": "these-tests", "expression":
                             f"request.namespace in ['{a.namespace}', '{namespace}']"}],
        "validations": [{"expression": "!has(object.spec.labels) || !('poison' in object.spec.labels)",
                         "message": "poisoned"}]}})
    kube_client.create(POISON_BINDING, {"metadata": {"name": policy}, "spec": {
        "policyName": policy, "validationActions": ["Deny"]}})
    try:
        make_service(kube_client, a.namespace, "web")
        good = am_alert("Down", app="web", namespace=a.namespace)
        bad = am_alert("Poisoned", namespace=a.namespace, poison="1")

        def refused() -> bool:  # the policy is in force once a poisoned incident is refused
            try:
                kube_client.create(kube.INCIDENTS, {"metadata": {"name": "probe-poison"}, "spec": {
                    "service": "x", "title": "x", "labels": {"poison": "1"}}}, a.namespace)
            except kube.ApiError as exc:
                return exc.status == 422
            kube_client.delete(kube.INCIDENTS, "probe-poison", a.namespace)
            return False

        wait_for(refused, 30, "the poison policy in force")
        out = ok(send(receiver, TOKEN_A, good, bad))
        assert out["alerts"][0]["incident"].split("/")[0] == a.namespace and out["alerts"][0]["managed"] is True
        poisoned = out["alerts"][1]
        assert poisoned["outcome"] == "recorded" and poisoned["rehomed"] == sc.REASON_REFUSED, out
        ns, name = poisoned["incident"].split("/")
        assert ns == a.namespace, "the token's home"
        rec = kube_client.get(kube.INCIDENTS, name, ns)
        assert rec["spec"]["managed"] is False and rec["spec"]["service"].startswith("unroutable/")
        assert [e["key"] for e in rec["status"]["alerts"]] == [poisoned["key"]]
        assert any(e["type"] == sc.REHOMED_TIMELINE_TYPE and "poisoned" in e["message"]
                   for e in rec["status"]["timeline"])
        again = ok(send(receiver, TOKEN_A, good, bad))  # the retry finds both again: nothing new
        assert again["created"] == 0 and again["deduplicated"] == 2, again
        # Its resolution finds it there (a resolution never creates, so it is looked for where
        # the firing alert may have gone).
        gone = ok(send(receiver, TOKEN_A, {**bad, "status": "resolved", "endsAt": bad["startsAt"]}))
        assert gone["resolved"] == 1 and gone["ignored"] == 0, gone
        assert kube_client.get(kube.INCIDENTS, name, ns)["status"]["alerts"][0]["status"] == "resolved"
    finally:
        kube_client.delete(POISON_BINDING, policy)
        kube_client.delete(POISON_POLICY, policy)
