"""The receiver's ingest over an in-memory API server: reads, the pure decisions, writes (no control plane)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from paramedic import ingest, kube
from paramedic.domain import scope as sc
from paramedic.domain.alert import Alert
from paramedic.domain.status_patch import apply
from paramedic.settings import Settings

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SETTINGS = Settings(namespace="paramedic", webhook_token="t")
WEB = {"metadata": {"name": "web", "namespace": "team-a"}, "spec": {"alertSelector": {"matchLabels": {"app": "web"}}}}


class FakeApi:
    """Incidents, MonitoredServices and namespaces in memory, with resourceVersions, 409s, field
    selectors as the CRD's selectableFields serve them, and refusals on demand."""

    def __init__(self, forbidden: tuple[str, ...] = (), refuse_long_titles: bool = False, conflicts: int = 0):
        self.objects: dict[tuple[str, str], dict] = {}
        self.rv = 0
        self.forbidden, self.refuse_long_titles, self.conflicts = set(forbidden), refuse_long_titles, conflicts
        self.floors: list[kube.ReadFloor | None] = []

    def _stored(self, obj: dict) -> dict:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return copy.deepcopy(obj)

    def list(self, res: kube.Resource, namespace: str | None = None, field_selector: str | None = None,
             floor: kube.ReadFloor | None = None, **_: Any) -> list[dict]:
        if namespace in self.forbidden:
            raise kube.ApiError(403, "forbidden", "Forbidden")
        if res is kube.MONITORED_SERVICES:
            return [copy.deepcopy(WEB)] if namespace == "team-a" else []
        self.floors.append(floor)
        out = []
        for (ns, _), obj in sorted(self.objects.items()):
            spec = obj["spec"]
            wanted = [r for r in (field_selector or "").split(",") if r]
            if ns == namespace and all(spec.get(r.split("!=")[0][5:]) != r.split("!=")[1] if "!=" in r
                                       else spec.get(r.split("=")[0][5:]) == r.split("=")[1] for r in wanted):
                out.append(copy.deepcopy(obj))
        return out

    def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None:
        if res is kube.NAMESPACES:
            return {"metadata": {"name": name}} if name in ("team-a", "paramedic") else None
        obj = self.objects.get((namespace or "", name))
        return copy.deepcopy(obj) if obj else None

    def create(self, res: kube.Resource, body: dict, namespace: str | None = None) -> dict:
        ns = namespace or ""
        if ns in self.forbidden:
            raise kube.ApiError(403, "forbidden", "Forbidden")
        if self.refuse_long_titles and len(body["spec"]["title"]) > 10:
            raise kube.ApiError(422, "title too long", "Invalid")
        if (ns, body["metadata"]["name"]) in self.objects:
            raise kube.Conflict(409, "exists", "AlreadyExists")
        obj = {**copy.deepcopy(body), "status": {}}
        obj["metadata"]["creationTimestamp"] = "2026-03-02T10:00:00Z"
        self.objects[(ns, body["metadata"]["name"])] = obj
        return self._stored(obj)

    def patch(self, res: kube.Resource, name: str, patch: dict, namespace: str | None = None,
              subresource: str | None = None) -> dict:
        obj = self.objects.get((namespace or "", name))
        if obj is None:
            raise kube.NotFound(404, "not found", "NotFound")
        if subresource == "status" and self.conflicts > 0:
            self.conflicts -= 1
            self._stored(obj)  # someone else wrote meanwhile
            raise kube.Conflict(409, "changed", "Conflict")
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected and expected != obj["metadata"]["resourceVersion"]:
            raise kube.Conflict(409, "changed", "Conflict")
        merged = apply(obj, {k: v for k, v in patch.items() if k != "metadata"})
        merged["metadata"] = obj["metadata"]
        self.objects[(namespace or "", name)] = merged
        return self._stored(merged)


def alert(fp: str, status: str = "firing", later: int = 0, **labels: str) -> Alert:
    return Alert(fingerprint=fp, status=status, starts_at=NOW + timedelta(seconds=later),
                 ends_at=NOW if status == "resolved" else None, annotations={"summary": "a summary of it all"},
                 labels={"alertname": "Down", **labels})


def run(api: FakeApi, alerts: list[Alert], scope: sc.Scope | None = None,
        reads: kube.ReadFloor | None = None) -> ingest.IngestResult:
    return ingest.ingest(api, SETTINGS, alerts, NOW, parallel=1, scope=scope, reads=reads)  # type: ignore[arg-type]


def test_a_group_creates_one_incident_then_joins_dedupes_and_records_its_resolutions():
    api, reads = FakeApi(), kube.ReadFloor()
    first = run(api, [alert("1", app="web", namespace="team-a"), alert("2", later=10, app="web", namespace="team-a")],
                reads=reads)
    assert (first.created, first.joined) == (1, 2) and len(api.objects) == 1
    [(_, name)] = api.objects
    assert name.startswith("web-high-") and api.objects[("team-a", name)]["spec"]["managed"] is True
    assert reads.params(), "the app's read floor saw the writes"
    again = run(api, [alert("1", app="web", namespace="team-a")], reads=reads)
    assert (again.created, again.deduplicated, again.outcomes[alert("1").key]["outcome"]) == (0, 1, "duplicate")
    assert api.floors[-1] is reads, "correlation lists read from the app's floor"
    done = run(api, [alert("1", "resolved", app="web", namespace="team-a"),
                     alert("2", "resolved", later=10, app="web", namespace="team-a")], reads=reads)
    assert (done.resolved, done.auto_resolvable) == (2, 1)
    recorded = api.objects[("team-a", name)]
    assert [a["status"] for a in recorded["status"]["alerts"]] == ["resolved", "resolved"]
    assert all(a.get("endsAt") for a in recorded["status"]["alerts"]), "each resolution's endsAt recorded"
    assert recorded["spec"]["state"] == "open", "the receiver records facts: the operator resolves it"
    assert done.outcomes[alert("1", "resolved").key]["outcome"] == "resolved"
    late = run(api, [alert("1", app="web", namespace="team-a"), alert("9", "resolved", service="nothing")])
    assert late.deduplicated == 1 and late.ignored == 1 and late.created == 0


def test_a_token_without_the_remediation_right_opens_unmanaged_incidents():
    api = FakeApi()
    out = run(api, [alert("1", app="web", namespace="team-a")], scope=sc.scope("a", ["team-a"], "team-a"))
    [obj] = api.objects.values()
    assert out.unmanaged == 1 and obj["spec"]["managed"] is False
    assert any(e["type"] == sc.UNREMEDIATED_TIMELINE_TYPE for e in obj["status"]["timeline"])


def test_refused_groups_go_home_then_alone_and_their_resolutions_find_them():
    api = FakeApi(forbidden=("locked",), refuse_long_titles=True)
    scope = sc.scope("a", ["team-a", "locked"], "team-a", remediate=True)
    out = run(api, [alert("1", namespace="locked", service="api")], scope=scope)
    assert out.rehomed == 1 and out.outcomes[alert("1").key]["rehomed"] == sc.REASON_FORBIDDEN
    [(ns, name)] = api.objects
    assert ns == "team-a" and name.startswith("unroutable-"), "the title was refused at home too: alone, minimal"
    gone = run(api, [alert("1", "resolved", namespace="locked", service="api")], scope=scope)
    assert gone.resolved == 1 and gone.ignored == 0


def test_a_conflicting_status_write_is_read_again_and_redone():
    api = FakeApi(conflicts=2)
    out = run(api, [alert("1", app="web", namespace="team-a")])
    assert out.joined == 1 and api.conflicts == 0
    [obj] = api.objects.values()
    assert [a["key"] for a in obj["status"]["alerts"]] == [alert("1").key]
