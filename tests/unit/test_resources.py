"""The typed views of Paramedic's custom resources: every property's value when its field is set,
and its one default when the field, or the object holding it, is missing, null or malformed."""

from datetime import UTC, datetime

import pytest

from paramedic.domain import resources
from paramedic.domain.resources import Incident, Resource, Schedule, Service
from paramedic.domain.vocabulary import DEFAULT_SEVERITY, State

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
EMPTY_SEQ: tuple = ()

# (view, property, path of its field, a well-formed value, what the property reads from it, its default,
#  a malformed value of the field)
FIELDS = [
    (Resource, "name", "metadata.name", "checkout", "checkout", "", 7),
    (Resource, "namespace", "metadata.namespace", "shop", "shop", "", ["shop"]),
    (Resource, "uid", "metadata.uid", "u-1", "u-1", "", 1),
    (Resource, "resource_version", "metadata.resourceVersion", "42", "42", "", 42),
    (Resource, "labels", "metadata.labels", {"a": "b"}, {"a": "b"}, {}, ["a"]),
    (Resource, "annotations", "metadata.annotations", {"a": "b"}, {"a": "b"}, {}, "a=b"),
    (Resource, "created", "metadata.creationTimestamp", "2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z", "", 5),
    (Incident, "state", "spec.state", "mitigated", State.MITIGATED, State.OPEN, "bogus"),
    (Incident, "observed_state", "status.observedState", "resolved", State.RESOLVED, None, ""),
    (Incident, "severity", "spec.severity", "low", "low", DEFAULT_SEVERITY, 3),
    (Incident, "service", "spec.service", "checkout", "checkout", "", {"name": "checkout"}),
    (Incident, "source", "spec.source", "probe", "probe", "manual", 1),
    (Incident, "managed", "spec.managed", False, False, True, "no"),
    (Incident, "title", "spec.title", "down", "down", "", 9),
    (Incident, "team", "status.team", "payments", "payments", "", ["payments"]),
    (Incident, "alerts", "status.alerts", [{"alertname": "A"}], [{"alertname": "A"}], EMPTY_SEQ, {"alertname": "A"}),
    (Incident, "remediation", "status.remediation", {"phase": "Acting"}, {"phase": "Acting"}, {}, "Acting"),
    (Incident, "attempts", "status.remediation.attempts", [{"index": 0}], [{"index": 0}], EMPTY_SEQ, {"index": 0}),
    (Incident, "timeline", "status.timeline", [{"type": "opened"}], [{"type": "opened"}], EMPTY_SEQ, "opened"),
    (Incident, "comments", "spec.comments", [{"text": "hi"}], [{"text": "hi"}], EMPTY_SEQ, "hi"),
    (Incident, "runbook_steps", "spec.runbookSteps", [{"step": 1}], [{"step": 1}], EMPTY_SEQ, {"step": 1}),
    (Incident, "rca", "spec.rca", {"rootCause": "x"}, {"rootCause": "x"}, {}, "x"),
    (Incident, "sla", "status.sla", {"breached": True}, {"breached": True}, {}, True),
    (Incident, "hints", "status.hints", [{"summary": "s"}], [{"summary": "s"}], EMPTY_SEQ, "s"),
    (Incident, "escalation_level", "status.escalationLevel", 2, 2, 0, True),
    (Service, "target", "spec.target", {"name": "web"}, {"name": "web"}, {}, "web"),
    (Service, "target_kind", "spec.target.kind", "StatefulSet", "StatefulSet", "Deployment", 1),
    (Service, "target_name", "spec.target.name", "web", "web", "", 1),
    (Service, "probe", "spec.probe", {"url": "http://x"}, {"url": "http://x"}, {}, "http://x"),
    (Service, "remediation", "spec.remediation", {"enabled": False}, {"enabled": False}, {}, False),
    (Service, "remediation_status", "status.remediation", {"inFlight": "i"}, {"inFlight": "i"}, {}, "i"),
    (Service, "notify", "spec.notify", {"email": ["a@b"]}, {"email": ["a@b"]}, {}, "a@b"),
    (Service, "team", "spec.team", "payments", "payments", "", 1),
    (Service, "severity", "spec.severity", "critical", "critical", DEFAULT_SEVERITY, ["critical"]),
    (Service, "auto_resolve", "spec.autoResolve", False, False, True, "false"),
    (Service, "health", "status.health", "Down", "Down", "Unknown", 0),
    (Service, "runbook", "spec.runbook", {"steps": []}, {"steps": []}, {}, ["step"]),
    (Service, "maintenance", "status.maintenance", {"active": True}, {"active": True}, {}, True),
    (Service, "open_incident", "status.openIncident", "inc-1", "inc-1", "", 1),
    (Service, "last_probe", "status.lastProbe", {"ok": True}, {"ok": True}, {}, "ok"),
    (Schedule, "escalation", "spec.escalation", [{"notify": "next"}], [{"notify": "next"}], EMPTY_SEQ, "next"),
]
IDS = [f"{view.__name__}.{prop}" for view, prop, *_ in FIELDS]


def body_with(path: str, value: object) -> dict:
    """A body whose field at dotted `path` is `value`, every object on the way created."""
    body: dict = {}
    node = body
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return body


def read(view: type, prop: str, body: object) -> object:
    return getattr(view(body), prop)


def same(actual: object, expected: object) -> bool:
    if isinstance(expected, tuple):  # an empty sequence: any empty list or tuple
        return list(actual) == list(expected)  # type: ignore[call-overload]
    return actual == expected


@pytest.mark.parametrize("view,prop,path,value,expected,default,malformed", FIELDS, ids=IDS)
def test_a_set_field_reads_as_written(view, prop, path, value, expected, default, malformed):
    assert same(read(view, prop, body_with(path, value)), expected)


@pytest.mark.parametrize("view,prop,path,value,expected,default,malformed", FIELDS, ids=IDS)
def test_a_missing_field_reads_as_its_default(view, prop, path, value, expected, default, malformed):
    assert same(read(view, prop, {}), default)
    parent = path.rsplit(".", 1)[0]
    assert same(read(view, prop, body_with(parent, {})), default)


@pytest.mark.parametrize("view,prop,path,value,expected,default,malformed", FIELDS, ids=IDS)
def test_a_null_field_or_a_null_object_on_its_way_reads_as_its_default(view, prop, path, value, expected, default,
                                                                        malformed):
    assert same(read(view, prop, body_with(path, None)), default)
    keys = path.split(".")
    for depth in range(1, len(keys)):
        assert same(read(view, prop, body_with(".".join(keys[:depth]), None)), default)


@pytest.mark.parametrize("view,prop,path,value,expected,default,malformed", FIELDS, ids=IDS)
def test_a_malformed_field_or_object_on_its_way_reads_as_its_default(view, prop, path, value, expected, default,
                                                                      malformed):
    assert same(read(view, prop, body_with(path, malformed)), default)
    keys = path.split(".")
    for depth in range(1, len(keys)):
        assert same(read(view, prop, body_with(".".join(keys[:depth]), "not an object")), default)
        assert same(read(view, prop, body_with(".".join(keys[:depth]), ["not", "an", "object"])), default)


def test_the_sub_objects_read_as_empty_mappings_when_missing_null_or_malformed():
    for body in ({}, {"metadata": None, "spec": None, "status": None}, {"metadata": 1, "spec": "x", "status": []}):
        view = Incident(body)
        assert view.meta == {} and view.spec == {} and view.status == {}


def test_assignee_is_the_persons_else_the_on_calls():
    assert Incident({"spec": {"assignee": "ann@x"}, "status": {"assignee": "bob@x"}}).assignee == "ann@x"
    assert Incident({"spec": {"assignee": ""}, "status": {"assignee": "bob@x"}}).assignee == "bob@x"
    assert Incident({"spec": {"assignee": None}, "status": {"assignee": "bob@x"}}).assignee == "bob@x"
    for body in ({}, {"spec": None, "status": None}, {"spec": {"assignee": 3}, "status": {"assignee": ["x"]}}):
        assert Incident(body).assignee == ""


def test_created_at_is_the_operators_stamp_else_the_api_servers():
    stamped = {"status": {"createdAt": "2026-03-01T12:00:00Z"}, "metadata": {"creationTimestamp": "2026-03-01T11:00:00Z"}}
    assert Incident(stamped).created_at == T0
    fresh = {"metadata": {"creationTimestamp": "2026-03-01T12:00:00Z"}}
    assert Incident(fresh).created_at == T0
    unreadable = {"status": {"createdAt": "yesterday"}, "metadata": {"creationTimestamp": "2026-03-01T12:00:00Z"}}
    assert Incident(unreadable).created_at == T0
    for body in ({}, {"status": None, "metadata": None},
                 {"status": {"createdAt": 5}, "metadata": {"creationTimestamp": "x"}}):
        assert Incident(body).created_at is None


def test_active_is_before_resolved():
    assert Incident({}).active
    assert Incident({"spec": {"state": "mitigated"}}).active
    assert not Incident({"spec": {"state": "resolved"}}).active
    assert not Incident({"spec": {"state": "closed"}}).active


@pytest.mark.parametrize("value,expected", [
    ("open", State.OPEN), ("acknowledged", State.ACKNOWLEDGED), ("closed", State.CLOSED),
    (None, State.OPEN), ("", State.OPEN), ("Resolved", State.OPEN), (3, State.OPEN), (["open"], State.OPEN),
])
def test_state_of_reads_a_spelling_and_anything_else_as_open(value, expected):
    assert resources.state_of(value) is expected


def test_helpers():
    assert resources.mapping({"a": 1}) == {"a": 1}
    assert resources.mapping(None) == {} and resources.mapping([1]) == {} and resources.mapping("x") == {}
    assert list(resources.sequence([1, 2])) == [1, 2]
    assert list(resources.sequence(None)) == [] and list(resources.sequence("ab")) == []
    assert list(resources.sequence({"a": 1})) == []
    assert resources.text("x") == "x" and resources.text("", "d") == "d" and resources.text(None, "d") == "d"
    assert resources.text(5) == ""


def test_a_view_never_changes_its_body():
    body: dict = {"spec": None}
    view = Incident(body)
    assert view.state is State.OPEN and view.comments == () and view.remediation == {}
    assert body == {"spec": None}
