"""An incident that resolves without anyone acknowledging it has no MTTA: the operator
records `unacknowledged`, and the statistics leave it out of MTTA (it used to count its
resolution time as its acknowledgement)."""

from __future__ import annotations

import json

import pytest

from paramedic import kube
from paramedic.domain import alert_records as records
from paramedic.domain.lifecycle import state_patch
from paramedic.domain.timeutil import utcnow
from tests.helpers import kubectl_paramedic, wait_object

pytestmark = pytest.mark.e2e


def incident(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"service": "checkout", "severity": "high", "title": name,
                                                 "source": "alertmanager"}}


def status_when(client, ns, name, predicate, what) -> dict:
    """The incident's status once `predicate` holds over all of it."""
    return wait_object(client, kube.INCIDENTS, name, ns, lambda i: predicate(i["status"]), 30, what)["status"]


def test_auto_resolved_incident_has_no_mtta_and_stats_tell_it_apart(kube_client, namespace, operator_factory,
                                                                    kubeconfig):
    operator_factory(namespace)
    for name in ("auto", "acked"):
        kube_client.create(kube.INCIDENTS, incident(name), namespace)
        status_when(kube_client, namespace, name, lambda s: s["createdAt"], f"{name} opened")

    # What the operator writes when all of an incident's alerts resolve (as the receiver's actor).
    kube_client.patch(kube.INCIDENTS, "auto", state_patch("resolved", records.ACTOR, "all alerts resolved", utcnow()),
                      namespace)
    kube_client.patch(kube.INCIDENTS, "acked", state_patch("acknowledged", "ana@example.com", None, utcnow()),
                      namespace)
    status_when(kube_client, namespace, "acked", lambda s: s["mttaSeconds"] is not None, "acked's MTTA")
    kube_client.patch(kube.INCIDENTS, "acked", state_patch("resolved", "ana@example.com", None, utcnow()), namespace)

    auto = status_when(kube_client, namespace, "auto",
                       lambda s: s["mttrSeconds"] is not None and "unacknowledged" in s, "auto's resolution recorded")
    assert auto["unacknowledged"] is True and "mttaSeconds" not in auto
    assert not any(auto.get(f) for f in ("acknowledgedAt", "investigatingAt", "mitigatedAt"))
    acked = status_when(kube_client, namespace, "acked",
                        lambda s: s["mttrSeconds"] is not None and "unacknowledged" in s and s["acknowledgedAt"],
                        "acked's resolution recorded")
    assert acked["unacknowledged"] is False and acked["acknowledgedAt"] and acked["mttaSeconds"] is not None

    out = kubectl_paramedic(kubeconfig, namespace, "stats", "-o", "json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["mtta"]["count"] == 1 and stats["mttr"]["count"] == 2 and stats["unacknowledged"] == 1
