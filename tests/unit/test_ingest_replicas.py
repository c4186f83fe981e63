"""Two receivers over one API server: each one's reads hold its own writes, not the other's of a
moment ago (its watch cache may lag). No decision that loses an alert rests on that view alone."""

from __future__ import annotations

import copy
from typing import Any

from paramedic import kube
from tests.unit.test_ingest import FakeApi, alert, run


class LaggingApi(FakeApi):
    """Lists served from a replica's floor (its view) show the objects as they were at `freeze`;
    consistent reads (no floor, or one that has seen nothing) and GETs show them as they are."""

    def __init__(self) -> None:
        super().__init__()
        self.view: dict | None = None
        self.consistent_lists: list[str] = []   # the field selectors of consistent lists of incidents

    def freeze(self) -> None:
        self.view = copy.deepcopy(self.objects)

    def list(self, res: kube.Resource, namespace: str | None = None, field_selector: str | None = None,
             floor: kube.ReadFloor | None = None, **kw: Any) -> list[dict]:
        if res is kube.INCIDENTS and (floor is None or not floor.params()):
            self.consistent_lists.append(field_selector or "")
        if self.view is None or floor is None or not floor.params():
            return super().list(res, namespace, field_selector, floor, **kw)
        now, self.objects = self.objects, self.view
        try:
            return super().list(res, namespace, field_selector, floor, **kw)
        finally:
            self.objects = now


def test_a_resolution_is_found_where_the_other_replica_recorded_its_alert_a_moment_ago():
    api = LaggingApi()
    one, two = kube.ReadFloor(), kube.ReadFloor()
    first = alert("1", app="web", namespace="team-a")
    later = alert("2", later=420, app="web", namespace="team-a")  # another correlation window
    assert run(api, [first], reads=one).created == 1
    api.freeze()  # replica one's view stops here
    joined = run(api, [later], reads=two)
    assert (joined.created, joined.joined) == (0, 1), "it joins the active incident"
    before = len(api.consistent_lists)
    gone = run(api, [alert("2", "resolved", later=420, app="web", namespace="team-a")], reads=one)
    assert (gone.resolved, gone.ignored) == (1, 0)
    assert len(api.consistent_lists) == before + 1, "one consistent read, only for the resolution found nowhere"
    [obj] = api.objects.values()
    assert sorted((a["key"].split("@")[0], a["status"]) for a in obj["status"]["alerts"]) == [
        ("1", "firing"), ("2", "resolved")]


def test_a_resolution_recorded_nowhere_is_still_ignored_after_one_consistent_read_per_service():
    api = LaggingApi()
    reads = kube.ReadFloor()
    run(api, [alert("1", app="web", namespace="team-a")], reads=reads)
    api.freeze()
    before = len(api.consistent_lists)
    out = run(api, [alert("7", "resolved", later=420, app="web", namespace="team-a"),
                    alert("8", "resolved", later=420, app="web", namespace="team-a")], reads=reads)
    assert (out.resolved, out.ignored) == (0, 2)
    # Its service once for the request, then each place each stray is looked for at home, once.
    looked = api.consistent_lists[before:]
    assert looked[0] == "spec.service=web" and looked.count("spec.service=web") == 1, looked
    assert len(looked) == 1 + 2 * 2, looked


def test_an_alert_of_another_window_joins_the_incident_the_other_replica_opened_a_moment_ago():
    api = LaggingApi()
    one, two = kube.ReadFloor(), kube.ReadFloor()
    run(api, [alert("0", app="web", namespace="team-a", severity="low")], reads=two)  # two has a view
    api.freeze()  # ... which stops here
    assert run(api, [alert("1", app="web", namespace="team-a")], reads=one).created == 1
    before = len(api.consistent_lists)
    out = run(api, [alert("2", later=420, app="web", namespace="team-a")], reads=two)
    assert (out.created, out.joined) == (0, 1)
    assert len(api.consistent_lists) == before + 1, "one consistent read, before opening an incident"
    assert sorted(name for _, name in api.objects if name.startswith("web-high-")) == [
        next(name for _, name in api.objects if name.startswith("web-high-"))]
    # Re-sent, or an alert already recorded: no consistent read (an active incident is in view).
    again = run(api, [alert("0", app="web", namespace="team-a", severity="low")], reads=two)
    assert again.deduplicated == 1 and len(api.consistent_lists) == before + 1
