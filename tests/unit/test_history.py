"""Seen before: earlier incidents of the same service, newest first, with their root causes."""

from __future__ import annotations

from paramedic.domain.history import MAX_SEEN, seen_before
from paramedic.domain.incident_plan import Effects, plan
from tests.unit.test_incident_plan import NOW, SETTINGS, incident, service


def inc(name: str, created: str, service: str = "checkout", ns: str = "shop", root: str = "", state: str = "closed",
        hint: str = "") -> dict:
    spec: dict = {"service": service, "state": state, "title": f"{name} title"}
    if root:
        spec["rca"] = {"rootCause": root}
    status: dict = {"createdAt": created}
    if hint:
        status["hints"] = [{"summary": hint}]
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec, "status": status}


ME = inc("now", "2026-03-01T12:00:00Z", state="open")


def test_newest_earlier_first_capped_with_root_causes_and_hints():
    others = [inc(f"old-{d}", f"2026-02-{d:02d}T10:00:00Z", root=f"cause {d}\n  wrapped") for d in range(1, 10)]
    seen = seen_before(ME, others + [ME])
    assert [s["name"] for s in seen] == ["old-9", "old-8", "old-7"] and len(seen) == MAX_SEEN
    assert seen[0] == {"name": "old-9", "createdAt": "2026-02-09T10:00:00Z", "state": "closed",
                       "title": "old-9 title", "rootCause": "cause 9 wrapped"}
    [h] = seen_before(ME, [inc("h", "2026-02-01T00:00:00Z", hint="image changed")])
    assert h["probableCause"] == "image changed" and "rootCause" not in h


def test_later_other_services_and_other_namespaces_are_not_seen_before():
    others = [inc("later", "2026-03-01T12:00:01Z"), inc("same-second", "2026-03-01T12:00:00Z"),
              inc("other-svc", "2026-02-01T00:00:00Z", service="cart"),
              inc("other-ns", "2026-02-01T00:00:00Z", ns="elsewhere")]
    assert seen_before(ME, others) == []
    assert seen_before({**ME, "status": {}, "metadata": {"name": "x", "namespace": "shop"}}, others) == []


def test_the_planner_records_it_once_in_the_timeline_and_keeps_it_current():
    earlier = (inc("checkout-old", "2026-02-01T00:00:00Z", root="pool exhausted"),)
    p = plan(incident(), service(), None, Effects(earlier=earlier), SETTINGS, NOW)
    assert [s["name"] for s in p.patch["seenBefore"]] == ["checkout-old"]
    entry = next(e for e in p.patch["timeline"] if e["type"] == "seen-before")
    assert entry["message"] == ("1 earlier incident(s) of this service; the last: checkout-old "
                                "(2026-02-01T00:00:00Z): pool exhausted")
    again = plan(incident(seenBefore=p.status["seenBefore"]), service(), None, Effects(earlier=earlier), SETTINGS, NOW)
    assert "seenBefore" not in again.patch
    closed = (inc("checkout-old", "2026-02-01T00:00:00Z", root="pool exhausted, then a leak"),)
    later = plan(incident(seenBefore=p.status["seenBefore"], timeline=p.status["timeline"]), service(), None,
                 Effects(earlier=closed), SETTINGS, NOW)
    assert later.patch["seenBefore"][0]["rootCause"] == "pool exhausted, then a leak"
    assert [e["type"] for e in later.patch.get("timeline", p.status["timeline"])].count("seen-before") == 1
