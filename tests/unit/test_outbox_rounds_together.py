"""Pages of one incident whose sends all finished before the next pass: that pass records
every one of them and leaves no pending entry behind (one left would be sent again)."""

from __future__ import annotations

from paramedic.domain.notify_render import DeliveryResult
from paramedic.domain.planning import outbox
from paramedic.domain.planning.base import Effects, Inputs
from tests.unit.test_incident_plan import NOW, SETTINGS, incident, service


def pending(key: str, event: str) -> dict:
    return {"key": key, "event": event, "detail": "down", "channel": "pending", "recipients": ["a@example.com"],
            "time": "2026-11-22T11:59:00Z", "result": "pending", "attempts": 0}


def test_two_sends_finished_together_are_both_recorded_and_neither_left_pending():
    inc = incident(notifications=[pending("opened", "opened"), pending("remediation:inc-a0", "remediation"),
                                  pending("escalated:1", "escalated")])
    sent = [DeliveryResult("email", ["a@example.com"], ok=True)]
    # The first and the last finished; the middle one is still sending.
    effects = Effects(deliveries={("opened", "pending"): sent, ("escalated:1", "pending"): sent})
    part = outbox.record_deliveries(Inputs(inc, service(), None, effects, SETTINGS, NOW), inc["status"])
    by_key = {(e["key"], e["channel"]): e["result"] for e in part.patch["notifications"]}
    assert by_key == {("opened", "email"): "sent", ("remediation:inc-a0", "pending"): "pending",
                      ("escalated:1", "email"): "sent"}
    assert set(part.taken_deliveries) == {("opened", "pending"), ("escalated:1", "pending")}
    assert [e["type"] for e in part.patch["timeline"]].count("notification-sent") == 2

    # The next pass sends only what is still pending.
    status = {**inc["status"], **part.patch}
    due = outbox.deliver_pending(Inputs({**inc, "status": status}, service(), None, Effects(), SETTINGS, NOW), status)
    assert [d.key for d in due.deliveries] == ["remediation:inc-a0"]
