"""The console's read-your-writes across replicas: the person's last write rides in their cookie."""

from __future__ import annotations

import pytest

from paramedic import kube
from paramedic.console import people as pp
from tests.unit.test_console import MemoryInformer


@pytest.mark.parametrize(("versions", "expected"), [
    (("", ""), ""), (("12", ""), "12"), (("", "12"), "12"), (("9", "12"), "12"), (("12", "9"), "12"),
    (("x", "3"), "3"), (("x", ""), ""), ((), ""),
])
def test_newest_is_the_highest_etcd_resource_version(versions, expected):
    assert pp.newest(*versions) == expected


def test_memory_answers_only_once_it_has_seen_a_write_made_through_another_replica(monkeypatch):
    calls: list[str] = []

    def lister(client, res, hint, not_older_than="", scope_only=False):
        calls.append(not_older_than)
        return [{"metadata": {"name": "from-api"}}], [], ["ns"]

    monkeypatch.setattr(pp, "Informer", MemoryInformer)
    person = pp.Person(client=None)
    assert pp.visible(person, kube.INCIDENTS, [], lister)[0][0]["metadata"]["name"] == "from-api"
    assert pp.visible(person, kube.INCIDENTS, [], lister, floor="10")[0][0]["metadata"]["name"] == "from-memory"
    # Written through the other replica (this one's memory of the person knows nothing of it).
    assert pp.visible(person, kube.INCIDENTS, [], lister, floor="11")[0][0]["metadata"]["name"] == "from-api"
    assert calls == ["", "11"]
    # This replica's own later write counts as well: the newer of the two.
    person.written(kube.INCIDENTS, {"metadata": {"resourceVersion": "12"}})
    pp.visible(person, kube.INCIDENTS, [], lister, floor="11")
    assert calls == ["", "11", "12"]
