"""What the operator believes of an Incident, on a cluster without Paramedic's admission policy
(issue 24): a remediation attempt it did not record (forged into status) is never run, and a
writer's own word on when the state changed does not move MTTA.

A real operator process against the real API server. The forged status is written the only
way left once the policy is installed (tests/e2e/test_tenant_admission.py proves that): by a
member of the break-glass group, here standing in for anyone with status rights on a cluster
that runs without the policy. People's writes are made with a tenant's own token (tests/tenancy.py).
"""

from __future__ import annotations

import time

import httpx
import pytest

from paramedic import kube
from paramedic.domain.lifecycle import ACTOR_ANNOTATION, CHANGED_AT_ANNOTATION
from paramedic.domain.timeutil import parse, utcnow
from tests.e2e.test_control_plane import deployment
from tests.helpers import wait_object

pytestmark = pytest.mark.e2e

BREAK_GLASS = "paramedic:break-glass"


def acting_as(admin: kube.KubeClient, user: str, *groups: str) -> kube.KubeClient:
    """The admin's connection, impersonating `user` in `groups` (system:masters kept for RBAC)."""
    client = kube.KubeClient(admin.conn)
    client._http.headers = httpx.Headers([("Impersonate-User", user)]
                                         + [("Impersonate-Group", g) for g in ("system:masters", *groups)])
    return client


def status_of(client: kube.KubeClient, ns: str, name: str) -> dict:
    return client.get(kube.INCIDENTS, name, ns).get("status") or {}


def timeline(client: kube.KubeClient, ns: str, name: str) -> list[dict]:
    return status_of(client, ns, name).get("timeline") or []


def status_when(client: kube.KubeClient, ns: str, name: str, predicate, what: str) -> dict:
    """The incident's status once `predicate` holds over all of it."""
    return wait_object(client, kube.INCIDENTS, name, ns, lambda i: predicate(i["status"]), 30, what)["status"]


def test_a_forged_running_attempt_is_not_run_and_the_timeline_says_why(tenants, kube_client, operator_factory):
    """The attack reproduced in issue 24: an unmanaged incident of a service whose remediation is
    off, and a Running attempt naming the service's scale-to-0 action written into its status."""
    a, _ = tenants
    ns = a.namespace
    kube_client.create(kube.DEPLOYMENTS, deployment("api", replicas=2), ns)
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "api"}, "spec": {
        "target": {"name": "api"},
        "remediation": {"enabled": False, "actions": [{"restart": {}}, {"scale": {"replicas": 0}}]}}}, ns)
    operator_factory(ns)
    # The operator's own key, in Paramedic's namespace (here the test's), made at its first start.
    key = wait_object(kube_client, kube.SECRETS, "paramedic-remediation-seal", ns, lambda s: "immutable" in s, 30,
                      "the seal key")
    assert key["immutable"] is True
    time.sleep(1)  # an incident of a later second than the key: no attempt of it predates sealing
    tenant = a.client()
    glass = acting_as(kube_client, "someone@example.com", BREAK_GLASS)
    try:
        tenant.create(kube.INCIDENTS, {"metadata": {"name": "forged"}, "spec": {
            "service": "api", "title": "api is down", "managed": False}}, ns)
        status_when(kube_client, ns, "forged", lambda s: s["observedState"], "the incident opened")
        now = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        glass.patch(kube.INCIDENTS, "forged", {"status": {"remediation": {"phase": "Running", "attempts": [
            {"id": "forged-a1", "index": 1, "action": "scale", "detail": "scale Deployment/api to 0",
             "dryRun": False, "startedAt": now, "restartedAt": now, "result": "Running",
             "service": "api", "target": "Deployment/api", "seal": "v1:not-the-operators"}]}}}, ns,
            subresource="status")
        def ignored(status: dict) -> dict | None:
            return next((e for e in status["timeline"] if e["type"] == "remediation-ignored"), None)

        # The entry and the rewritten remediation, in one read (the forged phase was Running).
        status = status_when(kube_client, ns, "forged",
                             lambda s: ignored(s) and s["remediation"]["phase"] != "Running",
                             "the operator to say it ignored the forged attempt")
        entry = ignored(status)
        assert "attempt 2 (Running, scale Deployment/api to 0, id forged-a1)" in entry["message"]
        assert "Paramedic did not record it" in entry["message"] and entry["actor"] == "paramedic/operator"
        remediation = status["remediation"]
        assert remediation["attempts"] == [] and remediation["phase"] == "Skipped"
        # Nothing was run: the Deployment keeps its replicas, and nothing was written to it.
        time.sleep(3)
        dep = kube_client.get(kube.DEPLOYMENTS, "api", ns)
        assert dep["spec"]["replicas"] == 2 and dep["metadata"]["generation"] == 1
        svc = kube_client.get(kube.MONITORED_SERVICES, "api", ns)
        assert not ((svc.get("status") or {}).get("remediation") or {}).get("inFlight")
        assert not any(e["type"] in ("remediation-resumed", "remediation-started")
                       for e in timeline(kube_client, ns, "forged"))
    finally:
        tenant.close()
        glass.close()


def test_a_backdated_state_change_does_not_backdate_mtta(tenants, kube_client, operator_factory):
    """The writer's `state-changed-at` annotation once set acknowledgedAt: an MTTA of 0 on demand.
    Now the time is the API server's, from the request that set the state."""
    a, _ = tenants
    ns = a.namespace
    operator_factory(ns)
    tenant = a.client()
    try:
        created = tenant.create(kube.INCIDENTS, {"metadata": {"name": "late"}, "spec": {
            "service": "api", "title": "api is slow", "managed": False}}, ns)
        status_when(kube_client, ns, "late", lambda s: s["observedState"], "the incident opened")
        time.sleep(4)
        acked_at = utcnow()
        tenant.patch(kube.INCIDENTS, "late", {"metadata": {"annotations": {
            ACTOR_ANNOTATION: a.username,
            CHANGED_AT_ANNOTATION: f"acknowledged {created['metadata']['creationTimestamp']}"}},
            "spec": {"state": "acknowledged"}}, ns)
        status = status_when(kube_client, ns, "late",
                             lambda s: s["mttaSeconds"] is not None and s["acknowledgedAt"]
                             and any(e["type"] == "state" for e in s["timeline"]), "the acknowledgement recorded")
        assert status["mttaSeconds"] >= 3, status
        assert parse(status["acknowledgedAt"]) >= acked_at.replace(microsecond=0)
        state = next(e for e in status["timeline"] if e["type"] == "state")
        assert state["actor"] == a.username and state["message"] == "open → acknowledged"
    finally:
        tenant.close()
