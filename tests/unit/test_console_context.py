"""The incident page's context (evidence, hints, seen before, maintenance, people's entries,
runbook) and the shared entry helpers behind the console's and the CLI's comment/step."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paramedic.console import views
from paramedic.domain import entries, hints

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPENED = datetime(2026, 3, 1, 11, 55, tzinfo=UTC)

EVIDENCE = {
    "gatheredAt": "2026-03-01T11:56:00.000Z", "target": "Deployment/api", "truncated": False, "logs": [],
    "rollouts": [{"ref": "rollout/2", "revision": 2, "name": "api-7d9", "time": "2026-03-01T11:50:00Z",
                  "current": True, "images": ["api:1.5"], "previousRevision": 1,
                  "changes": ["image api: api:1.4 → api:1.5"]},
                 {"ref": "rollout/1", "revision": 1, "name": "api-5c4", "time": "2026-02-20T10:00:00Z",
                  "current": False, "images": ["api:1.4"], "changes": []}],
    "containers": [{"ref": "pod/api-7d9-x/api", "pod": "api-7d9-x", "container": "api", "node": "n1", "ready": False,
                    "restarts": 4, "state": "Waiting", "reason": "CrashLoopBackOff", "message": "back-off",
                    "lastReason": "OOMKilled", "lastExitCode": 137, "memoryLimit": "64Mi", "revision": 2,
                    "time": "2026-03-01T11:54:00Z"}],
    "events": [{"ref": "event/api.1", "time": "2026-03-01T11:54:00Z", "object": "Pod/api-7d9-x",
                "reason": "BackOff", "message": "<script>alert(1)</script>", "count": 7}],
    "nodes": [{"ref": "node/n1", "name": "n1", "ready": True, "problems": ["MemoryPressure"],
               "time": "2026-03-01T11:00:00Z"}],
}


def incident(**status) -> dict:
    return {"metadata": {"name": "api-1", "namespace": "shop"}, "spec": {"service": "api"}, "status": status}


def test_hints_keep_their_rank_and_point_at_the_evidence_they_rest_on():
    ranked = hints.rank(EVIDENCE, OPENED)
    assert ranked, "the evidence above should make at least one hint"
    ranked[0]["evidence"].append("pod/gone/api")  # a ref the evidence no longer holds
    view = views.hints_view(ranked, EVIDENCE)
    assert [h["rank"] for h in view] == list(range(1, len(ranked) + 1))
    assert [h["summary"] for h in view] == [h["summary"] for h in ranked]
    assert view[0]["action"] == ranked[0]["suggestedAction"]
    cited = {e["ref"]: e for e in view[0]["evidence"]}
    assert cited["pod/gone/api"] == {"ref": "pod/gone/api", "label": "pod/gone/api", "anchor": ""}
    linked = [e for e in view[0]["evidence"] if e["anchor"]]
    assert linked and all(e["anchor"] == views.anchor(e["ref"]) for e in linked)
    assert views.hints_view(None, None) == [] and views.hints_view("junk", None) == []


def test_ref_labels_and_anchors():
    view = views.hints_view([{"rule": "r", "summary": "s", "suggestedAction": "rollback",
                              "evidence": ["rollout/2", "pod/api-7d9-x/api", "event/api.1", "node/n1"]}], EVIDENCE)
    assert [e["label"] for e in view[0]["evidence"]] == [
        "revision 2 (current)", "api-7d9-x/api", "BackOff on Pod/api-7d9-x", "node n1"]
    assert views.anchor("event/api.1") == "ev-event-api-1"
    assert views.anchor('pod/"><script>/x') == "ev-pod----script--x"


def test_container_facts_in_words():
    c = EVIDENCE["containers"][0]
    assert views.container_facts(c) == ["Waiting: CrashLoopBackOff", "4 restart(s)", "last run: OOMKilled exit code 137",
                                        "not ready", "memory limit 64Mi"]
    assert views.container_facts({"state": "Terminated", "reason": "Error", "exitCode": 2, "ready": False}) == [
        "Terminated: Error", "exit code 2", "not ready"]
    assert views.container_facts({"state": "Running", "ready": True}) == ["Running", "ready"]


def test_evidence_view_and_none_without_evidence():
    view = views.evidence_view(EVIDENCE)
    assert view is not None
    assert view["target"] == "Deployment/api" and [r["revision"] for r in view["rollouts"]] == [2, 1]
    assert view["containers"][0]["facts"][0] == "Waiting: CrashLoopBackOff"
    assert view["events"][0]["message"] == "<script>alert(1)</script>"  # escaped by the template, not here
    assert views.evidence_view(None) is None and views.evidence_view({}) is None
    assert views.evidence_view({"containers": "junk", "events": [1, {"ref": "event/x"}]})["events"] == [
        {"ref": "event/x"}]


def test_seen_before_maintenance_and_people_entries_in_time_order():
    inc = incident(seenBefore=[{"name": "api-0", "title": "API down", "createdAt": "2026-02-01T00:00:00Z",
                                "state": "closed", "rootCause": "pool too small"}, {"title": "no name"}],
                   maintenance={"until": "2026-03-01T13:00:00Z", "reason": "DB upgrade", "source": "window"})
    inc["spec"]["comments"] = [{"author": "bob", "time": "2026-03-01T11:59:30Z", "text": "DB fine"},
                               {"author": "ana", "time": "2026-03-01T11:58:00Z", "text": "looking"}]
    inc["spec"]["runbookSteps"] = [{"step": 2, "title": "Roll back", "author": "ana", "time": "2026-03-01T11:59:00Z",
                                    "note": "to 1.4"}]
    assert views.seen_before(inc) == [{"name": "api-0", "namespace": "shop", "title": "API down",
                                       "createdAt": "2026-02-01T00:00:00Z", "state": "closed",
                                       "rootCause": "pool too small", "probableCause": ""}]
    assert views.maintenance_mark(inc) == {"until": "2026-03-01T13:00:00Z", "reason": "DB upgrade", "source": "window"}
    assert views.maintenance_mark(incident()) is None
    assert views.maintenance_mark({"status": {"maintenance": {"active": False, "until": "x"}}}) is None
    assert [(e["kind"], e["author"], e["text"]) for e in views.people_entries(inc)] == [
        ("comment", "ana", "looking"), ("runbook-step", "ana", "step 2 applied: Roll back — to 1.4"),
        ("comment", "bob", "DB fine")]


def test_incident_context_brings_it_together_with_the_services_runbook():
    inc = incident(evidence=EVIDENCE, hints=hints.rank(EVIDENCE, OPENED))
    inc["spec"]["runbookSteps"] = [{"step": 1, "title": "Look", "author": "ana", "time": "2026-03-01T11:59:00Z"}]
    svc = {"spec": {"runbook": {"steps": [{"title": "Look"}, {"title": "Roll back", "command": "kubectl rollout undo"}]}}}
    ctx = views.incident_context(inc, svc)
    assert ctx["hints"] and ctx["evidence"]["target"] == "Deployment/api"
    assert [(r["step"], r["state"]) for r in ctx["runbook"]] == [(1, "applied"), (2, "pending")]
    assert ctx["seen_before"] == [] and ctx["maintenance"] is None
    empty = views.incident_context({"metadata": {}, "spec": {}}, None)
    assert empty == {"hints": [], "evidence": None, "seen_before": [], "maintenance": None, "entries": [],
                     "runbook": []}


def test_service_row_shows_maintenance_and_runbook():
    svc = {"metadata": {"name": "api", "namespace": "shop"},
           "spec": {"runbook": {"steps": [{"title": "Look", "link": "https://wiki.example/api"}]}},
           "status": {"maintenance": {"active": True, "until": "2026-03-01T13:00:00Z", "reason": "upgrade",
                                      "source": "kubectl paramedic maintain"}}}
    row = views.service_row(svc)
    assert row["maintenance"]["until"] == "2026-03-01T13:00:00Z" and row["maintenance"]["reason"] == "upgrade"
    assert row["runbook"] == [{"title": "Look", "text": "", "link": "https://wiki.example/api", "command": ""}]
    idle = views.service_row({"metadata": {"name": "x"}, "status": {"maintenance": {"active": False}}})
    assert idle["maintenance"] is None and idle["runbook"] == []


def test_entries_are_made_with_author_and_time_and_checked():
    assert entries.comment_entry("ana", NOW, "  on it ") == {"author": "ana", "time": "2026-03-01T12:00:00Z",
                                                             "text": "on it"}
    with pytest.raises(ValueError, match="needs some text"):
        entries.comment_entry("ana", NOW, "   ")
    with pytest.raises(ValueError, match="at most 4096"):
        entries.comment_entry("ana", NOW, "x" * 4097)
    view = entries.runbook_view({"spec": {"runbookSteps": [{"step": 1, "author": "bo", "time": "t"}]}},
                                {"spec": {"runbook": {"steps": [{"title": "Look"}, {"title": "Roll back"}]}}})
    assert entries.step_entry(view, 2, "ana", NOW, " to 1.4 ") == {
        "step": 2, "title": "Roll back", "author": "ana", "time": "2026-03-01T12:00:00Z", "note": "to 1.4"}
    assert "note" not in entries.step_entry(view, 2, "ana", NOW)
    with pytest.raises(ValueError, match="already applied by bo"):
        entries.step_entry(view, 1, "ana", NOW)
    with pytest.raises(ValueError, match="step 3 does not exist: MonitoredService api declares 2"):
        entries.step_entry(view, 3, "ana", NOW, service="api")
    with pytest.raises(ValueError, match="note is at most"):
        entries.step_entry(view, 2, "ana", NOW, "x" * 2049)


def test_append_ops_add_to_the_end_or_create_the_list_guarded():
    entry = {"author": "ana", "text": "hi"}
    assert entries.append_ops({"spec": {"comments": []}}, "comments", entry) == [
        {"op": "add", "path": "/spec/comments/-", "value": entry}]
    assert entries.append_ops({"metadata": {"resourceVersion": "42"}, "spec": {}}, "runbookSteps", entry) == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "42"},
        {"op": "add", "path": "/spec/runbookSteps", "value": [entry]}]
    with pytest.raises(ValueError):
        entries.append_ops({"spec": {}}, "rca", entry)


class FakeClient:
    """Answers get with the next incident version and patch with the next outcome."""

    def __init__(self, versions: list[dict], outcomes: list[object]):
        self.versions, self.outcomes, self.patches = versions, outcomes, []

    def get(self, res, name, namespace):
        return self.versions.pop(0) if len(self.versions) > 1 else self.versions[0]

    def patch(self, res, name, ops, namespace, content_type=""):
        self.patches.append((ops, content_type))
        out = self.outcomes.pop(0)
        if isinstance(out, Exception):
            raise out
        return out


def version(rv: str, **spec) -> dict:
    return {"metadata": {"name": "i", "resourceVersion": rv}, "spec": spec}


def test_append_reads_again_only_when_a_guarded_creation_lost_a_race():
    from paramedic import entries_io, kube

    entry = {"author": "ana", "text": "hi"}
    # The list appeared meanwhile (422 from the test op, resourceVersion moved): read again, append to it.
    client = FakeClient([version("1"), version("2", comments=[{"author": "bo"}]), version("2", comments=[{}])],
                        [kube.Invalid(422, "test failed", "Invalid"), {"ok": True}])
    assert entries_io.append(client, "ns", "i", "comments", lambda inc: entry) == {"ok": True}
    assert client.patches[0][0][0]["op"] == "test" and client.patches[0][1] == kube.JSON_PATCH
    assert client.patches[1][0] == [{"op": "add", "path": "/spec/comments/-", "value": entry}]
    # A 422 with the incident unchanged is the API server refusing the entry: raised as is.
    client = FakeClient([version("1")], [kube.Invalid(422, "text too long", "Invalid")])
    with pytest.raises(kube.Invalid, match="too long"):
        entries_io.append(client, "ns", "i", "comments", lambda inc: entry)
    # A refusal (RBAC, the attribution policy) is never retried.
    client = FakeClient([version("1", comments=[])], [kube.ApiError(403, "must name its author", "Forbidden")])
    with pytest.raises(kube.ApiError, match="must name its author"):
        entries_io.append(client, "ns", "i", "comments", lambda inc: entry)
    assert len(client.patches) == 1
    # The entry is built from the incident as read; a ValueError refuses it before any write.
    client = FakeClient([version("1")], [])
    with pytest.raises(ValueError):
        entries_io.append(client, "ns", "i", "comments", lambda inc: entries.comment_entry("ana", NOW, ""))
    assert client.patches == []
