"""Comments and applied runbook steps: the planner copies each into the timeline once, as its
author; the CLI's runbook view."""

from __future__ import annotations

from paramedic.domain import entries
from paramedic.domain.incident_plan import Effects, plan
from tests.unit.test_incident_plan import NOW, SETTINGS, incident, service


def with_spec(inc: dict, **spec) -> dict:
    inc["spec"].update(spec)
    return inc


COMMENTS = [{"author": "alice@example.com", "time": "2026-03-01T11:59:00Z", "text": "looking at the pool"},
            {"author": "bob@example.com", "time": "2026-03-01T11:59:30Z", "text": "DB is fine"}]
STEPS = [{"step": 2, "title": "Roll back", "author": "alice@example.com", "time": "2026-03-01T11:59:40Z",
          "note": "to 1.4"}]


def people(p) -> list[tuple[str, str, str, str]]:
    return [(e["type"], e["actor"], e["message"], e["time"]) for e in p.patch.get("timeline") or []
            if e["type"] in ("comment", "runbook-step")]


def test_each_comment_and_step_enters_the_timeline_once_with_its_author_and_time():
    p = plan(with_spec(incident(), comments=COMMENTS, runbookSteps=STEPS), service(), None, Effects(), SETTINGS, NOW)
    assert people(p) == [
        ("comment", "alice@example.com", "looking at the pool", "2026-03-01T11:59:00.000Z"),
        ("comment", "bob@example.com", "DB is fine", "2026-03-01T11:59:30.000Z"),
        ("runbook-step", "alice@example.com", "step 2 applied: Roll back — to 1.4", "2026-03-01T11:59:40.000Z")]
    assert p.patch["recorded"] == {"comments": 2, "runbookSteps": 1}
    again = plan(with_spec(incident(recorded=p.status["recorded"]), comments=COMMENTS, runbookSteps=STEPS),
                 service(), None, Effects(), SETTINGS, NOW)
    assert people(again) == [] and "recorded" not in again.patch


def test_only_new_ones_are_added_and_a_future_time_is_not_trusted():
    later = COMMENTS + [{"author": "carol", "time": "2099-01-01T00:00:00Z", "text": "from the future"}]
    p = plan(with_spec(incident(recorded={"comments": 2}), comments=later), service(), None, Effects(), SETTINGS, NOW)
    assert [(a, m) for _, a, m, _ in people(p)] == [("carol", "from the future")]
    assert people(p)[0][3] == "2026-03-01T12:00:00.000Z"


def test_a_shortened_list_adds_nothing():
    p = plan(with_spec(incident(recorded={"comments": 5}), comments=COMMENTS), service(), None, Effects(), SETTINGS,
             NOW)
    assert people(p) == [] and p.patch["recorded"]["comments"] == 2


def test_runbook_view_marks_applied_steps():
    svc = {"spec": {"runbook": {"steps": [{"title": "Look", "text": "dashboards"},
                                          {"title": "Roll back", "command": "kubectl rollout undo deploy/api"}]}}}
    view = entries.runbook_view({"spec": {"runbookSteps": STEPS}}, svc)
    assert view[0] == {"step": 1, "title": "Look", "text": "dashboards", "link": "", "command": "",
                       "state": "pending"}
    assert view[1]["state"] == "applied" and view[1]["appliedBy"] == "alice@example.com"
    assert view[1]["note"] == "to 1.4" and view[1]["command"] == "kubectl rollout undo deploy/api"
    assert entries.runbook_view({"spec": {}}, None) == []
