"""The one polling helper (devtools.wait) and the tests' one wait over a whole object (tests.helpers.wait_object)."""

from __future__ import annotations

import pytest

from devtools.wait import WaitTimeout, wait_for
from paramedic import kube
from tests.helpers import wait_object


def test_wait_for_tries_at_least_once_and_describes_what_it_saw_last():
    assert wait_for(lambda: "now", 0, "at once") == "now"
    with pytest.raises(WaitTimeout, match=r"waiting for green\nlast colour: red"):
        wait_for(lambda: False, 0.1, "green", interval=0.02, describe=lambda: "last colour: red")


class FakeClient:
    """Answers GETs from a list of successive versions of one object (None: 404), then the last forever."""

    def __init__(self, versions: list[dict | None]):
        self.versions = versions
        self.gets = 0

    def get_or_none(self, resource, name, namespace):
        assert (resource, name, namespace) == (kube.INCIDENTS, "inc-1", "ns")
        self.gets += 1
        return self.versions[min(self.gets, len(self.versions)) - 1]


def test_wait_object_returns_the_first_object_the_predicate_holds_for():
    first_write = {"metadata": {"name": "inc-1"}, "spec": {"assignee": "alice@example.com"}}
    both = {"metadata": {"name": "inc-1"}, "spec": {"assignee": "alice@example.com"},
            "status": {"assignee": "alice@example.com"}}
    client = FakeClient([None, first_write, both])
    got = wait_object(client, kube.INCIDENTS, "inc-1", "ns",  # type: ignore[arg-type]
                      lambda i: i["spec"]["assignee"] and i["status"]["assignee"], 5, "assignment")
    assert got is both and client.gets == 3  # the KeyError on the first write only meant "not yet"


def test_wait_object_fails_showing_the_last_object_without_managed_fields():
    stuck = {"metadata": {"name": "inc-1", "managedFields": [{"manager": "x"}]}, "status": {"observedState": "open"}}
    with pytest.raises(WaitTimeout) as caught:
        wait_object(FakeClient([stuck]), kube.INCIDENTS, "inc-1", "ns",  # type: ignore[arg-type]
                    lambda i: i["status"]["observedState"] == "resolved", 0.1, "resolution")
    text = str(caught.value)
    assert "waiting for resolution" in text and "last Incident ns/inc-1:" in text
    assert '"observedState": "open"' in text and "managedFields" not in text


def test_wait_object_says_when_the_object_never_appeared():
    with pytest.raises(WaitTimeout, match="Incident ns/inc-1: not found"):
        wait_object(FakeClient([None]), kube.INCIDENTS, "inc-1", "ns", bool, 0.05, "the incident")  # type: ignore[arg-type]


def test_wait_for_lets_exceptions_it_does_not_ignore_through():
    def refused():
        raise PermissionError("403")

    with pytest.raises(PermissionError):
        wait_for(refused, 5, "a refusal", ignore=(TimeoutError,))
    with pytest.raises(WaitTimeout, match="last error: 403"):
        wait_for(refused, 0.05, "a refusal", interval=0.01)
