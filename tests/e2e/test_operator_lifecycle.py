"""Lifecycle bookkeeping, assignment, SLA, escalation and e-mail, through the real operator."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devtools.cluster import free_port
from devtools.mail import MailSink
from paramedic import kube
from paramedic.domain.timeutil import parse
from tests.helpers import kubectl_paramedic, smtp_env, wait_for, wait_object

pytestmark = pytest.mark.e2e


def schedule(escalation=None) -> dict:
    return {"metadata": {"name": "payments"}, "spec": {
        "participants": [{"name": "Alice", "email": "alice@example.com"},
                         {"name": "Bob", "email": "bob@example.com"}],
        "rotation": {"start": "2026-11-01T00:00:00Z", "lengthHours": 8784},
        "escalation": escalation or []}}


def service(**spec) -> dict:
    return {"metadata": {"name": "checkout"}, "spec": {"team": "payments", "target": {"name": "checkout"},
                                                       "notify": {"admins": ["ops@example.com"]}, **spec}}


def incident(name: str, severity: str = "high") -> dict:
    return {"metadata": {"name": name}, "spec": {"service": "checkout", "severity": severity,
                                                 "title": "checkout is down", "description": "HTTP 503"}}


def incident_when(client, ns, name, predicate, timeout, what) -> dict:
    """The incident `name` once `predicate` holds over all of it."""
    return wait_object(client, kube.INCIDENTS, name, ns, predicate, timeout, what)


cli = kubectl_paramedic


def seconds_between(status: dict, start: str, end: str) -> int:
    """What the operator records for MTTA/MTTR: whole seconds between two of its stamps."""
    return round((parse(status[end]) - parse(status[start])).total_seconds())


def older_than(field: str, seconds: float):
    """A predicate: status.<field> of the incident lies at least `seconds` in the past."""
    return lambda i: (datetime.now(UTC) - parse(i["status"][field])).total_seconds() >= seconds


def test_lifecycle_assignment_mtta_mttr_and_mail(kube_client, namespace, operator_factory, mail, kubeconfig):
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    kube_client.create(kube.MONITORED_SERVICES, service(), namespace)
    operator_factory(namespace, env=smtp_env(mail.port))
    kube_client.create(kube.INCIDENTS, incident("inc-1"), namespace)

    # The assignee goes into spec, then the rest into status: two writes, so wait for the second.
    inc = incident_when(kube_client, namespace, "inc-1",
                        lambda i: i["spec"]["assignee"] and i["status"]["assignee"] and i["status"]["team"]
                        and {"acknowledgeMinutes", "resolveMinutes"} <= i["status"]["sla"].keys(), 30, "assignment")
    assert inc["spec"]["assignee"] == "alice@example.com"
    status = inc["status"]
    assert status["assignee"] == "alice@example.com"
    assert status["team"] == "payments" and status["sla"]["acknowledgeMinutes"] == 15
    assert status["sla"]["resolveMinutes"] == 240
    opened = wait_for(lambda: [m for m in mail.messages if "opened" in m["subject"].lower()], 30, "opened e-mail")
    assert set(opened[0]["to"]) == {"alice@example.com", "ops@example.com", "admin@example.com"}
    assert "checkout is down" in opened[0]["subject"] and "kubectl paramedic ack inc-1" in opened[0]["text"]
    assert opened[0]["html"]

    # Each step at least 1.5 s after the one before, so MTTA and MTTR differ from 0 and each other.
    incident_when(kube_client, namespace, "inc-1", older_than("createdAt", 1.5), 10, "the incident 1.5 s old")
    assert cli(kubeconfig, namespace, "ack", "inc-1").returncode == 0
    incident_when(kube_client, namespace, "inc-1", older_than("acknowledgedAt", 1.5), 40, "acknowledged 1.5 s ago")
    assert cli(kubeconfig, namespace, "resolve", "inc-1").returncode == 0
    inc = incident_when(kube_client, namespace, "inc-1",
                        lambda i: i["status"]["mttrSeconds"] is not None and i["status"]["mttaSeconds"] is not None
                        and i["status"]["resolvedAt"] and i["status"]["observedState"] == "resolved"
                        and len([e for e in i["status"]["timeline"] if e["type"] == "state"]) >= 2, 30, "MTTR")
    s = inc["status"]
    assert s["mttaSeconds"] == seconds_between(s, "createdAt", "acknowledgedAt") >= 1
    assert s["mttrSeconds"] == seconds_between(s, "createdAt", "resolvedAt") >= s["mttaSeconds"] + 1
    assert s["acknowledgedAt"] and s["resolvedAt"] and s["observedState"] == "resolved"
    states = [e["message"] for e in s["timeline"] if e["type"] == "state"]
    assert states[0].startswith("open → acknowledged") and states[1].startswith("acknowledged → resolved")
    assert all(e["actor"] not in ("", "kubectl") for e in s["timeline"] if e["type"] == "state")
    wait_for(lambda: [m for m in mail.messages if "resolved" in m["subject"].lower()], 30, "resolved e-mail")
    sent = incident_when(kube_client, namespace, "inc-1",
                         lambda i: len(n := i["status"]["notifications"]) >= 2 and all(x["result"] == "sent" for x in n),
                         30, "notifications recorded")["status"]["notifications"]
    assert {(n["event"], n["channel"]) for n in sent} == {("opened", "email"), ("resolved", "email")}

    report = cli(kubeconfig, namespace, "report", "inc-1")
    assert report.returncode == 0 and "MTTA" in report.stdout


def test_sla_breach_and_escalation_steps(kube_client, namespace, operator_factory, mail):
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(escalation=[
        {"afterMinutes": 0, "notify": "oncall"},
        {"afterMinutes": 0.05, "notify": "next"},
        {"afterMinutes": 0.1, "notify": "lead@example.com"}]), namespace)
    kube_client.create(kube.MONITORED_SERVICES, service(sla={"acknowledge": 1, "resolve": 2}), namespace)
    operator_factory(namespace, env=smtp_env(mail.port))
    kube_client.create(kube.INCIDENTS, incident("inc-2", severity="critical"), namespace)

    inc = incident_when(kube_client, namespace, "inc-2",
                        lambda i: i["status"]["escalationLevel"] == 3 and i["status"]["escalations"], 40,
                        "three escalation steps")
    steps = inc["status"]["escalations"]
    assert [s["recipients"] for s in steps] == [["alice@example.com"], ["bob@example.com"], ["lead@example.com"]]
    # The last step's escalation e-mail reaches the lead.
    wait_for(lambda: [m for m in mail.messages if "escalat" in m["subject"].lower() and "lead@example.com" in m["to"]],
             30, "the escalation e-mail to the lead")
    # Nobody acknowledges: the acknowledge SLA (1 minute) is breached, once, and escalation
    # stops at its last step (no fourth step, no step repeated).
    inc = incident_when(kube_client, namespace, "inc-2",
                        lambda i: i["status"]["sla"]["acknowledgeBreached"] and "breached" in i["status"]["sla"]
                        and any(e["type"] == "sla-breach" for e in i["status"]["timeline"]), 90,
                        "acknowledge SLA breach")
    assert not inc["status"].get("acknowledgedAt") and inc["spec"].get("state", "open") == "open"
    assert inc["status"]["sla"]["breached"] is True
    assert inc["status"]["escalationLevel"] == 3 and len(inc["status"]["escalations"]) == 3
    assert sum(1 for e in inc["status"]["timeline"] if e["type"] == "sla-breach") == 1
    wait_for(lambda: any("sla" in m["subject"].lower() or "breach" in m["subject"].lower() for m in mail.messages),
             30, "SLA breach mail")


def test_smtp_down_is_retried_and_recorded(kube_client, namespace, operator_factory):
    port = free_port()
    kube_client.create(kube.ONCALL_SCHEDULES, schedule(), namespace)
    kube_client.create(kube.MONITORED_SERVICES, service(), namespace)
    operator_factory(namespace, env=smtp_env(port))
    kube_client.create(kube.INCIDENTS, incident("inc-3"), namespace)
    def retrying(i: dict) -> dict | None:
        return next((n for n in i["status"].get("notifications") or []
                     if n.get("channel") == "email" and n.get("result") == "retrying"), None)

    inc = incident_when(kube_client, namespace, "inc-3",
                        lambda i: retrying(i) and i["spec"]["assignee"]
                        and any(e["type"] == "notification-failed" for e in i["status"]["timeline"]),
                        60, "a failed delivery recorded as retrying")
    entry = retrying(inc)
    assert entry["error"] and entry["nextAttemptAt"]
    timeline = inc["status"]["timeline"]
    assert any(e["type"] == "notification-failed" for e in timeline)
    # The incident's other work went on: it was assigned regardless.
    assert inc["spec"]["assignee"] == "alice@example.com"
    sink = MailSink(port).start()
    try:
        kube_client.patch(kube.INCIDENTS, "inc-3", {"spec": {"state": "acknowledged"}}, namespace)
        wait_for(lambda: any("opened" in s.lower() for s in sink.subjects()), 90, "the retried e-mail")
    finally:
        sink.stop()


def test_events_and_retention(kube_client, namespace, operator_factory):
    from datetime import datetime, timedelta

    from paramedic.domain.timeutil import iso

    kube_client.create(kube.MONITORED_SERVICES, service(), namespace)
    operator_factory(namespace, env={"PARAMEDIC_RETENTION_DAYS": "30"})
    kube_client.create(kube.INCIDENTS, incident("old"), namespace)
    kube_client.create(kube.INCIDENTS, incident("recent"), namespace)
    for name in ("old", "recent"):
        incident_when(kube_client, namespace, name, lambda i: i["status"]["observedState"], 30, "opened")
        kube_client.patch(kube.INCIDENTS, name, {"spec": {"state": "resolved"}}, namespace)
        incident_when(kube_client, namespace, name, lambda i: i["status"]["resolvedAt"], 30, "resolved")
    events = wait_for(lambda: [e for e in kube_client.list(kube.EVENTS, namespace)
                               if e["regarding"]["name"] == "old" and e["reason"] == "IncidentResolved"], 30, "event")
    assert "open → resolved" in events[0]["note"]
    # A closed incident past retention is deleted; a recent one stays.
    for name in ("old", "recent"):
        kube_client.patch(kube.INCIDENTS, name, {"spec": {"state": "closed", "rca": {"rootCause": "x"}}}, namespace)
        incident_when(kube_client, namespace, name, lambda i: i["status"]["closedAt"], 30, "closed")
    long_ago = iso(datetime.now(UTC) - timedelta(days=31))
    kube_client.patch(kube.INCIDENTS, "old", {"status": {"closedAt": long_ago}}, namespace, subresource="status")
    wait_for(lambda: kube_client.get_or_none(kube.INCIDENTS, "old", namespace) is None, 30, "old incident deleted")
    assert kube_client.get_or_none(kube.INCIDENTS, "recent", namespace) is not None
