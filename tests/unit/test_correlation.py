"""The receiver's correlation decisions (domain/correlation.py), as tables: groups, re-homing, joining, outcomes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain import correlation as corr
from paramedic.domain import scope as sc
from paramedic.domain.alert import Alert, dedupe
from paramedic.domain.alert_records import Recorded, record_alerts
from paramedic.domain.correlation import Group, Look, Outcome
from paramedic.domain.timeutil import iso_ms

NOW = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
WINDOW = 300
TEAM_A = sc.scope("a", ["team-a"], "paramedic", remediate=True)
NO_REMEDIATION = sc.scope("b", ["team-b"], "paramedic")


def alert(fp: str = "f1", status: str = "firing", starts: datetime = NOW, **labels: str) -> Alert:
    return Alert(fingerprint=fp, status=status, starts_at=starts, annotations={"summary": "s"},
                 labels={"alertname": "Down", **labels})


def incident(name: str, *keys: str, state: str = "open", managed: bool | None = None,
             created: str = "2026-03-02T09:00:00Z") -> dict:
    spec: dict = {"service": "web", "severity": "high", "state": state}
    if managed is not None:
        spec["managed"] = managed
    return {"metadata": {"name": name, "namespace": "team-a", "creationTimestamp": created, "resourceVersion": "1"},
            "spec": spec, "status": {"alerts": [{"key": k, "status": "firing"} for k in keys]}}


# --- grouping -------------------------------------------------------------------------


SERVICE = {"metadata": {"name": "web", "namespace": "team-a"}, "spec": {"severity": "low"}}


@pytest.mark.parametrize("scope, managed, note_type", [
    (TEAM_A, True, sc.REHOMED_TIMELINE_TYPE),
    (NO_REMEDIATION, False, sc.UNREMEDIATED_TIMELINE_TYPE),
])
def test_a_claimed_alert_is_managed_only_with_the_remediation_right(scope, managed, note_type):
    key, group = corr.claimed_group(alert(), "team-a", SERVICE, scope)
    assert key == ("team-a", "web", "low")          # the service's default severity
    assert group.managed is managed and group.service is SERVICE and group.note_type == note_type
    assert bool(group.note) is not managed


def test_an_unclaimed_alert_is_unmanaged_under_its_service_label():
    key, group = corr.unclaimed_group(alert(service="api", severity="critical"), "team-a")
    assert key == ("team-a", "api", "critical") and not group.managed and group.service is None


@pytest.mark.parametrize("status, reason", [(403, sc.REASON_FORBIDDEN), (400, sc.REASON_REFUSED),
                                            (422, sc.REASON_REFUSED), (0, sc.REASON_REFUSED)])
def test_rehome_reason(status, reason):
    assert corr.rehome_reason(status) == reason


@pytest.mark.parametrize("namespace, claimed, service", [
    ("team-b", "team-b", "team-b/api"),
    (None, "team-a", "team-a/api"),              # no namespace label: the home's own, still apart
    ("Not_A_Namespace", "", "Not_A_Namespace/api"),
])
def test_rehomed_groups_are_unmanaged_at_home_apart_from_its_services(namespace, claimed, service):
    labels = {"service": "api"} | ({"namespace": namespace} if namespace else {})
    groups = corr.rehomed_groups([alert(**labels), alert("f2", **labels)], sc.REASON_OUT_OF_SCOPE, TEAM_A)
    [(key, group)] = groups.items()
    assert key == ("team-a", service, "high") and [a.fingerprint for a in group.alerts] == ["f1", "f2"]
    assert not group.managed and group.service is None and group.reason == sc.REASON_OUT_OF_SCOPE
    assert group.claimed == claimed
    assert "unmanaged" in group.note


def test_alone_groups_keep_only_key_status_times_and_name():
    big = alert(service="api", namespace="team-b", extra="x" * 5000)
    [(key, group)] = corr.alone_groups([big], TEAM_A, "422 Invalid").items()
    [bare] = group.alerts
    assert key == ("team-a", corr.unroutable_service(big), "high") and key[1].startswith("unroutable/")
    assert bare.key == big.key and bare.status == big.status and dict(bare.labels) == {"alertname": "Down"}
    assert not bare.annotations and group.reason == sc.REASON_REFUSED and "422 Invalid" in group.note
    assert corr.fallback_keys(big, TEAM_A) == [("team-a", "team-b/api", "high"), key]


def test_merged_adds_alerts_without_changing_its_inputs():
    a, b = alert("a"), alert("b")
    first = {("n", "s", "high"): Group(managed=True, service=None, alerts=[a])}
    more = {("n", "s", "high"): Group(managed=False, service=None, alerts=[b], note="x", claimed="c"),
            ("n", "t", "high"): Group(managed=False, service=None, alerts=[b], note="y", claimed="c")}
    out = corr.merged(first, more)
    assert [x.fingerprint for x in out[("n", "s", "high")].alerts] == ["a", "b"] and out[("n", "s", "high")].managed
    assert out[("n", "t", "high")].note == "y" and out[("n", "t", "high")].claimed == "c"
    assert [x.fingerprint for x in first[("n", "s", "high")].alerts] == ["a"], "the input is left as it was"


@pytest.mark.parametrize("spec, auto", [({}, True), ({"autoResolve": False}, False), ({"autoResolve": True}, True)])
def test_group_auto_resolve_follows_its_service(spec, auto):
    assert Group(managed=True, service={"spec": spec}).auto_resolve is auto
    assert Group(managed=False, service=None).auto_resolve is True


# --- joining --------------------------------------------------------------------------


@pytest.mark.parametrize("managed_field, group_managed, join, touch", [
    (None, True, True, True),     # managed by default
    (True, True, True, True),
    (False, True, False, True),   # a managed group may change an unmanaged incident's alerts, never join it
    (False, False, True, True),
    (True, False, False, False),  # an unmanaged group never touches a managed incident
    (None, False, False, False),
])
def test_managed_and_unmanaged_incidents_are_apart(managed_field, group_managed, join, touch):
    obj = incident("web-high-1", managed=managed_field)
    assert corr.may_join(obj, group_managed) is join and corr.may_touch(obj, group_managed) is touch


def test_against_active_orders_newest_first_and_keeps_the_other_kind_apart():
    old = incident("web-high-old", created="2026-03-02T08:00:00Z")
    new = incident("web-high-new", created="2026-03-02T09:30:00Z")
    other_kind = incident("web-high-unmanaged", managed=False)
    known = corr.against_active([alert("p")], [old, other_kind, new], managed=True)
    assert [o["metadata"]["name"] for o in known.active] == ["web-high-new", "web-high-old"]
    assert [o["metadata"]["name"] for o in known.seen] == ["web-high-new", "web-high-old", "web-high-unmanaged"]
    assert [a.fingerprint for a in known.pending] == ["p"] and known.held == []


def test_against_active_finds_the_keys_the_incidents_record():
    recorded = alert("r")
    obj = incident("web-high-1", recorded.key)
    known = corr.against_active([recorded, alert("new")], [obj], managed=True)
    assert known.held == [(obj, recorded)] and [a.fingerprint for a in known.pending] == ["new"]
    unmanaged_group = corr.against_active([recorded], [obj], managed=False)
    assert unmanaged_group.held == [] and unmanaged_group.seen == [], "a managed incident is not its to touch"


@pytest.mark.parametrize("statuses_and_offsets, any_active, goes", [
    ([("firing", 0), ("firing", 60), ("firing", 600)], False, [True, True, False]),  # the earliest's window only
    ([("firing", 600), ("firing", 0)], False, [False, True]),
    ([("resolved", 0), ("firing", 0)], False, [False, True]),                        # resolutions never create
    ([("firing", 0)], True, [False]),                                                # an active incident: join it
    ([("resolved", 0)], False, [False]),
    ([("fired-and-resolved", 0)], False, [True]),                                    # it fired: it creates
    ([("fired-and-resolved", 600), ("firing", 0)], False, [False, True]),
    ([("fired-and-resolved", 0)], True, [False]),
])
def test_which_alerts_go_straight_to_creation(statuses_and_offsets, any_active, goes):
    alerts = [alert(f"f{i}", status, NOW + timedelta(seconds=off)) if status != "fired-and-resolved"
              else replace(alert(f"f{i}", "resolved", NOW + timedelta(seconds=off)), fired_too=True)
              for i, (status, off) in enumerate(statuses_and_offsets)]
    bucket = corr.creation_bucket(alerts, any_active, WINDOW)
    assert [corr.goes_to_creation(a, bucket, WINDOW) for a in alerts] == goes


A = alert("a")


@pytest.mark.parametrize("obj, managed, look", [
    (None, True, Look.NOWHERE),                                        # no such name: no successor either
    (incident("n", A.key), True, Look.HERE),
    (incident("n", A.key, state="resolved"), True, Look.HERE),          # a resolution finds it resolved too
    (incident("n", A.key, managed=True), False, Look.NEXT),             # recorded on a managed one: not ours
    (incident("n"), True, Look.NOWHERE),                                # active, ours, without it: stop
    (incident("n", state="resolved"), True, Look.NEXT),                 # resolved: a successor may hold it
    (incident("n", managed=False), True, Look.NEXT),                    # the other kind: a successor may
])
def test_successor_look(obj, managed, look):
    assert corr.successor_look(A, obj, managed) is look


def test_recorder_is_any_incident_of_the_service_recording_the_alert():
    probe_opened = incident("web-probe-3", A.key, state="resolved")
    assert corr.recorder(A, [incident("x"), probe_opened], managed=True) is probe_opened
    assert corr.recorder(A, [incident("x")], managed=True) is None
    assert corr.recorder(A, [incident("m", A.key, managed=True)], managed=False) is None


B, C = alert("b"), alert("c")


@pytest.mark.parametrize("obj, managed, create, held, remaining, join", [
    (None, True, True, [], ["b", "c"], False),
    (incident("n"), True, False, [], ["b", "c"], True),                            # active, ours: join
    (incident("n", state="resolved"), True, False, [], ["b", "c"], False),         # resolved: a successor
    (incident("n", managed=False), True, False, [], ["b", "c"], False),            # the other kind: a successor
    (incident("n", B.key, state="resolved"), True, False, ["b"], ["c"], False),    # re-sent: a duplicate there
    (incident("n", B.key, C.key, state="resolved"), True, False, ["b", "c"], [], False),
    (incident("n", B.key), True, False, ["b"], ["c"], True),
])
def test_window_step(obj, managed, create, held, remaining, join):
    step = corr.window_step(obj, [B, C], managed)
    assert step.create is create and step.join is join
    assert [a.fingerprint for a in step.held] == held and [a.fingerprint for a in step.remaining] == remaining


@pytest.mark.parametrize("joining, obj, meanwhile", [
    ({B.key}, incident("n", state="resolved"), True),
    ({B.key}, incident("n", B.key, state="resolved"), False),   # our write landed before it was resolved
    ({B.key}, incident("n"), False),
    (set(), incident("n", state="resolved"), False),
])
def test_resolved_meanwhile(joining, obj, meanwhile):
    assert corr.resolved_meanwhile(joining, obj) is meanwhile


# --- writing --------------------------------------------------------------------------


def test_the_note_is_written_once_per_incident():
    obj = incident("n")
    timeline = corr.with_note([], obj, "why", sc.REHOMED_TIMELINE_TYPE, NOW, 10)
    assert [(e["type"], e["message"]) for e in timeline] == [(sc.REHOMED_TIMELINE_TYPE, "why")]
    obj["status"]["timeline"] = timeline
    assert corr.with_note([], obj, "why", sc.REHOMED_TIMELINE_TYPE, NOW, 10) == []
    assert corr.with_note([], incident("n"), "", sc.REHOMED_TIMELINE_TYPE, NOW, 10) == []


def test_outcomes_of_a_write():
    fired, resolved, again = alert("f"), alert("r", "resolved"), alert("d")
    rec = Recorded(patch={}, added=[fired.key, resolved.key], resolved=[resolved.key], duplicates=[again.key])
    assert corr.outcomes([fired, resolved, again], rec) == [
        (fired, Outcome.RECORDED), (resolved, Outcome.RESOLVED), (again, Outcome.DUPLICATE)]
    assert Outcome.IGNORED == "ignored", "the sender reads the outcome's value"


@pytest.mark.parametrize("statuses, all_resolved, auto, state, resolves", [
    (["resolved"], True, True, "open", True),
    (["resolved"], True, False, "open", False),        # autoResolve off
    (["firing"], True, True, "open", False),           # no resolution in this write
    (["resolved"], False, True, "open", False),        # something still fires
    (["resolved"], True, True, "resolved", False),     # already resolved
])
def test_auto_resolves(statuses, all_resolved, auto, state, resolves):
    alerts = [alert(f"a{i}", s) for i, s in enumerate(statuses)]
    rec = Recorded(patch={}, all_resolved=all_resolved)
    assert corr.auto_resolves(alerts, rec, auto, incident("n", state=state)) is resolves


# --- a key that fired and resolved in one request ---------------------------------------


ENDS = NOW + timedelta(minutes=3)
FIRED, CLEARED = alert("k"), replace(alert("k", "resolved"), ends_at=ENDS)
OTHER = incident("web-high-other", alert("o").key)      # an open incident of the group, without "k"


def place(alerts: list[Alert], active: list[dict]) -> tuple[list[Outcome], dict | None]:
    """The decisions `ingest` chains for one group's alerts, its reads left out: dedupe, set
    against the active incidents, create or join (a new incident: `incident("new")`), record,
    answer. Returns each sent alert's outcome and the status.alerts entry of key "k"."""
    unique = dedupe(alerts)
    known = corr.against_active(unique, active, managed=True)
    bucket = corr.creation_bucket(known.pending, bool(known.active), WINDOW)
    targets: dict[str, tuple[dict, list[Alert]]] = {}
    for obj, a in known.held:
        targets.setdefault(obj["metadata"]["name"], (obj, []))[1].append(a)
    answers: dict[str, Outcome] = {}
    for a in known.pending:
        if corr.goes_to_creation(a, bucket, WINDOW) or (corr.opens(a) and known.active):
            obj = known.active[0] if known.active else incident("new")
            targets.setdefault(obj["metadata"]["name"], (obj, []))[1].append(a)
        else:
            answers[a.key] = Outcome.IGNORED      # a resolution found nowhere: nothing to resolve
    entry = None
    for obj, batch in targets.values():
        rec = record_alerts(obj, batch, NOW, timeline_limit=50)
        answers.update((a.key, o) for a, o in corr.outcomes(batch, rec))
        alerts_now = rec.patch["status"]["alerts"] if rec.patch else obj["status"]["alerts"]
        entry = next((e for e in alerts_now if e["key"] == FIRED.key), entry)
    return [answers[a.key] for a in alerts], entry


RES, DUP, IGN, REC = Outcome.RESOLVED, Outcome.DUPLICATE, Outcome.IGNORED, Outcome.RECORDED


@pytest.mark.parametrize("sent, active, answers, status", [
    # Fired and resolved in one request, the key recorded nowhere: recorded resolved, not lost.
    ([FIRED, CLEARED], [], [RES, RES], "resolved"),                         # in a new incident
    ([CLEARED, FIRED], [], [RES, RES], "resolved"),
    ([FIRED, CLEARED], [OTHER], [RES, RES], "resolved"),                    # joining the open one
    ([CLEARED, FIRED], [OTHER], [RES, RES], "resolved"),
    # ... the key already recorded firing in an open incident: resolved there.
    ([FIRED, CLEARED], [incident("web-high-1", FIRED.key)], [RES, RES], "resolved"),
    ([CLEARED, FIRED], [incident("web-high-1", FIRED.key)], [RES, RES], "resolved"),
    # A resolution alone of a key recorded nowhere: nothing to resolve.
    ([CLEARED], [], [IGN], None),
    ([CLEARED], [OTHER], [IGN], None),
    # Fired twice: one alert recorded, or a duplicate where it is already.
    ([FIRED, FIRED], [], [REC, REC], "firing"),
    ([FIRED, FIRED], [OTHER], [REC, REC], "firing"),
    ([FIRED, FIRED], [incident("web-high-1", FIRED.key)], [DUP, DUP], "firing"),
])
def test_a_key_that_fired_and_resolved_in_one_request_is_recorded(sent, active, answers, status):
    got, entry = place(sent, active)
    assert got == answers
    assert (entry or {}).get("status") == status
    if status == "resolved":
        assert entry is not None and entry["endsAt"] == iso_ms(ENDS), "the resolved copy's endsAt"


@pytest.mark.parametrize("a, opens", [
    (FIRED, True), (CLEARED, False), (replace(CLEARED, fired_too=True), True),
])
def test_which_pending_alerts_open_or_join_an_incident(a, opens):
    assert corr.opens(a) is opens
