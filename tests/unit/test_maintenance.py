"""Maintenance windows: one-off and recurring (cron), per service and per namespace; what an
incident does during one (marked, no paging, remediation waits)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from paramedic.domain import maintenance, remediation
from paramedic.domain.incident_plan import Effects, plan
from paramedic.domain.timeutil import iso
from tests.unit.test_incident_plan import NOW, SETTINGS, incident, service

T = datetime(2026, 3, 7, 2, 30, tzinfo=UTC)  # a Saturday, 02:30


def one_off(start: datetime, minutes: int, reason: str = "") -> dict:
    return {"start": iso(start), "end": iso(start + timedelta(minutes=minutes)), "reason": reason}


def test_no_windows_no_maintenance():
    st = maintenance.state([], [], T)
    assert not st.active and st.next_change is None
    assert st.status() == {"active": False, "until": None, "reason": None, "source": None, "error": None}


def test_one_off_window_active_inside_only_and_next_change_is_its_edge():
    w = [one_off(T - timedelta(minutes=10), 30, "DB upgrade")]
    st = maintenance.state(w, [], T)
    assert st.active and st.until == T + timedelta(minutes=20) and st.reason == "DB upgrade" and st.source == "service"
    assert st.next_change == st.until
    assert st.status() == {"active": True, "until": iso(T + timedelta(minutes=20)), "reason": "DB upgrade",
                           "source": "service", "error": None}
    before = maintenance.state(w, [], T - timedelta(hours=1))
    assert not before.active and before.next_change == T - timedelta(minutes=10)
    assert not maintenance.state(w, [], T + timedelta(minutes=20)).active  # the end is exclusive


def test_recurring_cron_window():
    w = [{"schedule": "0 2 * * 6", "durationMinutes": 60, "reason": "weekly backup"}]
    st = maintenance.state(w, [], T)
    assert st.active and st.until == datetime(2026, 3, 7, 3, 0, tzinfo=UTC) and st.reason == "weekly backup"
    at_start = maintenance.state(w, [], datetime(2026, 3, 7, 2, 0, tzinfo=UTC))
    assert at_start.active
    after = maintenance.state(w, [], datetime(2026, 3, 7, 3, 0, tzinfo=UTC))
    assert not after.active and after.next_change == datetime(2026, 3, 14, 2, 0, tzinfo=UTC)


def test_the_longest_active_window_wins_across_service_and_namespace():
    ns_windows, errors = maintenance.namespace_windows({"metadata": {"annotations": {
        maintenance.NAMESPACE_ANNOTATION: json.dumps([one_off(T - timedelta(minutes=5), 120, "cluster upgrade")])}}})
    assert errors == []
    st = maintenance.state([one_off(T - timedelta(minutes=5), 10)], ns_windows, T)
    assert st.source == "namespace" and st.reason == "cluster upgrade" and st.until == T + timedelta(minutes=115)
    assert st.next_change == T + timedelta(minutes=5)  # the service's window ends first: look again then


def test_bad_windows_are_reported_not_fatal():
    _, errors = maintenance.namespace_windows({"metadata": {"annotations": {maintenance.NAMESPACE_ANNOTATION: "{"}}})
    assert errors and "not JSON" in errors[0]
    st = maintenance.state([{"schedule": "every day", "durationMinutes": 5}, {"schedule": "0 1 * * *"},
                            {"reason": "no times"}, one_off(T - timedelta(minutes=1), 5)], [], T, errors)
    assert st.active
    assert len(st.errors) == 4 and "service window 1: schedule 'every day'" in st.errors[1]
    assert "needs durationMinutes" in st.errors[2] and "needs start and end" in st.errors[3]


def test_active_until_reads_the_services_status():
    svc = {"status": {"maintenance": {"active": True, "until": iso(T + timedelta(minutes=5))}}}
    assert maintenance.active_until(svc, T) == T + timedelta(minutes=5)
    assert maintenance.active_until(svc, T + timedelta(minutes=5)) is None  # recorded but over
    assert maintenance.active_until({"status": {"maintenance": {"active": False}}}, T) is None
    assert maintenance.active_until(None, T) is None


def in_maintenance(minutes: int = 30, **policy) -> dict:
    svc = service(**policy)
    svc["status"]["maintenance"] = {"active": True, "until": iso(NOW + timedelta(minutes=minutes)),
                                    "reason": "DB upgrade", "source": "service"}
    return svc


def test_remediation_waits_for_the_end_of_the_window():
    d = remediation.decide(incident(), in_maintenance(), NOW, enabled_globally=True,
                           maintenance_until=NOW + timedelta(minutes=30))
    assert d.kind == remediation.Kind.WAIT and d.wait_until == NOW + timedelta(minutes=30)
    assert "maintenance window" in d.reason


def test_an_incident_opened_in_maintenance_is_marked_not_paged_and_not_remediated():
    new = incident(observed=None)
    p = plan(new, in_maintenance(), None, Effects(), SETTINGS, NOW)
    assert p.patch["maintenance"] == {"until": iso(NOW + timedelta(minutes=30)), "reason": "DB upgrade",
                                      "source": "service"}
    entry = next(e for e in p.patch["timeline"] if e["type"] == "in-maintenance")
    assert "until" in entry["message"] and "DB upgrade" in entry["message"] and "no one is paged" in entry["message"]
    assert p.deliveries == [] and not p.patch.get("notifications")
    assert p.start_attempt is None and p.claim is None
    assert p.status["remediation"]["phase"] == "Waiting"
    # Once the window is over, remediation runs and announcements flow again.
    after = plan(incident(maintenance=p.status["maintenance"]), in_maintenance(minutes=-1), None, Effects(), SETTINGS,
                 NOW)
    assert after.start_attempt is not None


def test_outside_maintenance_nothing_changes():
    p = plan(incident(observed=None), service(), None, Effects(), SETTINGS, NOW)
    # Paged: the "opened" notification is queued (it is sent once the first evidence is in).
    assert "maintenance" not in p.patch and [n["event"] for n in p.patch["notifications"]] == ["opened"]
