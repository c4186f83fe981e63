"""The console's pure parts: filters, sorting, counts, allowed moves, CSRF and sealing, charts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from paramedic.console import auth, charts, views
from paramedic.domain.lifecycle import ACTOR_ANNOTATION

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def inc(name, state="open", severity="high", service="checkout", ns="a", created="2026-03-10T11:00:00Z",
        assignee="", source="alertmanager", title="", **status):
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "resourceVersion": "1"},
            "spec": {"state": state, "severity": severity, "service": service, "assignee": assignee,
                     "source": source, "title": title or name},
            "status": {"createdAt": created, **status}}


ITEMS = [
    inc("i1", "open", "critical", created="2026-03-10T11:50:00Z", title="Checkout 500s"),
    inc("i2", "acknowledged", "low", service="search", assignee="ana@example.com", created="2026-03-10T10:00:00Z"),
    inc("i3", "resolved", "medium", ns="b", source="probe", created="2026-03-01T10:00:00Z"),
    inc("i4", "open", "high", service="cart", created="2026-03-09T10:00:00Z",
        alerts=[{"alertname": "KubePodCrashLooping"}]),
]


SUMMARIES = views.summarize(ITEMS)


def names(listing):
    return [r["name"] for r in listing.rows]


def test_filters_counts_and_sorting():
    every = views.listing(SUMMARIES, views.Filters.parse({}), NOW)
    assert names(every) == ["i1", "i2", "i4", "i3"] and every.total == 4
    assert every.counts == {"open": 2, "acknowledged": 1, "investigating": 0, "mitigated": 0, "resolved": 1,
                            "closed": 0}
    opened = views.listing(SUMMARIES, views.Filters.parse({"state": "open"}), NOW)
    assert names(opened) == ["i1", "i4"]
    assert opened.counts["resolved"] == 1  # the counts ignore the state filter, so its choices stay visible
    assert names(views.listing(SUMMARIES, views.Filters.parse({"range": "24h"}), NOW)) == ["i1", "i2"]
    assert names(views.listing(SUMMARIES, views.Filters.parse({"severity": "low"}), NOW)) == ["i2"]
    assert names(views.listing(SUMMARIES, views.Filters.parse({"assignee": "ana@example.com"}), NOW)) == ["i2"]
    assert names(views.listing(SUMMARIES, views.Filters.parse({"namespace": "b", "source": "probe"}), NOW)) == ["i3"]
    assert names(views.listing(SUMMARIES, views.Filters.parse({"q": "crashlooping"}), NOW)) == ["i4"]
    assert names(views.listing(SUMMARIES, views.Filters.parse({"q": "checkout 500s"}), NOW)) == ["i1"]
    assert names(views.listing(SUMMARIES, views.Filters.parse({"sort": "severity"}), NOW)) == ["i1", "i4", "i3", "i2"]
    assert names(views.listing(SUMMARIES, views.Filters.parse({"sort": "oldest"}), NOW))[0] == "i3"
    assert names(views.listing(SUMMARIES, views.Filters.parse({"active": "1"}), NOW)) == ["i1", "i2", "i4"]
    assert views.Filters.parse({"sort": "evil", "range": "9y"}) == views.Filters()
    assert every.options["service"] == ["cart", "checkout", "search"]


def test_rows_are_capped_but_counted():
    many = [inc(f"n{i:05d}", created=f"2026-03-10T{i // 3600 % 10:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z")
            for i in range(views.PAGE_ROWS + 50)]
    out = views.listing(views.summarize(many), views.Filters(), NOW)
    assert out.total == views.PAGE_ROWS + 50 and len(out.rows) == out.shown == views.PAGE_ROWS


def test_moves_follow_the_api_servers_rules():
    assert [m["state"] for m in views.moves(inc("x", "open"))] == ["acknowledged", "investigating", "mitigated",
                                                                   "resolved"]
    assert [m["state"] for m in views.moves(inc("x", "mitigated"))] == ["resolved"]
    closing = views.moves(inc("x", "resolved"))
    assert closing == [{"state": "closed", "label": "Close", "blocked": "write the root cause first"}]
    with_cause = inc("x", "resolved")
    with_cause["spec"]["rca"] = {"rootCause": "disk full"}
    assert views.moves(with_cause)[0]["blocked"] == ""
    assert views.moves(inc("x", "closed")) == []


def test_sla_clocks_and_mtta_text():
    sla = {"acknowledgeMinutes": 15, "acknowledgeBy": "2026-03-10T12:10:00Z", "resolveMinutes": 60,
           "resolveBy": "2026-03-10T11:30:00Z", "resolveBreached": True}
    clocks = views.sla_clocks(inc("x", sla=sla), NOW)
    assert [(c["kind"], c["text"]) for c in clocks] == [("acknowledge", "10m left"), ("resolve", "breached")]
    acked = inc("x", "acknowledged", sla=sla, acknowledgedAt="2026-03-10T11:05:00Z", mttaSeconds=300)
    assert views.sla_clocks(acked, NOW)[0]["text"] == "met"
    assert views.clocks(acked) == {"mtta": "5m", "mttr": "-"}
    auto = inc("y", "resolved", unacknowledged=True, resolvedAt="2026-03-10T11:30:00Z", mttrSeconds=1800)
    assert views.clocks(auto) == {"mtta": "not acknowledged", "mttr": "30m"}


def test_service_row_and_oncall_team():
    svc = {"metadata": {"name": "web", "namespace": "a", "annotations": {"paramedic.dev/paused": "true"}},
           "spec": {"probe": {"url": "http://x"}, "remediation": {"actions": [{"restart": {}}, {"scale": {}}],
                                                                   "maxAttempts": 3}},
           "status": {"health": "Down", "lastProbe": {"time": "t", "latencyMs": 12}, "openIncident": "web-1",
                      "availability": {"lastHour": "50%", "lastDay": "99%"}}}
    row = views.service_row(svc)
    assert row["paused"] and row["policy"]["actions"] == ["restart", "scale"] and row["hour"] == "50%"
    sched = {"metadata": {"name": "payments", "namespace": "a"},
             "spec": {"participants": [{"name": "Ana", "email": "ana@example.com"}, {"email": "bo@example.com"}],
                      "rotation": {"start": "2026-03-09T09:00:00Z", "lengthHours": 24},
                      "escalation": [{"afterMinutes": 30, "notify": "admins"}, {"afterMinutes": 5, "notify": "next"}]}}
    team = views.oncall_team(sched, NOW)
    assert team["now"]["email"] == "bo@example.com" and team["next"]["email"] == "ana@example.com"
    assert team["handoff"] == "2026-03-11T09:00:00Z" and [s["after"] for s in team["escalation"]] == [5, 30]
    broken = views.oncall_team({"metadata": {"name": "x"}, "spec": {}}, NOW)
    assert broken["error"]


def test_names_and_download_file_names():
    assert views.is_namespace("team-a") and not views.is_namespace("Team_A") and not views.is_namespace("../x")
    assert views.filename("a", 'x"\r\ny') == "postmortem-a-x___y"
    assert ACTOR_ANNOTATION == "paramedic.dev/actor"


def test_csrf_is_bound_to_the_token_and_tokens_are_sealed():
    keys = auth.Keys.derive(b"s" * 32)
    good = keys.csrf_token("token-a")
    assert keys.csrf_ok("token-a", good)
    assert not keys.csrf_ok("token-b", good) and not keys.csrf_ok("token-a", "") and not keys.csrf_ok("token-a", "0")
    sealed = keys.seal("token-a")
    assert "token-a" not in sealed and keys.unseal(sealed) == "token-a"
    assert auth.Keys.derive(b"t" * 32).unseal(sealed) is None
    assert keys.unseal("garbage") is None


def test_service_account_namespace():
    assert auth.service_account_namespace("system:serviceaccount:team-a:dev") == "team-a"
    assert auth.service_account_namespace("ana@example.com") is None


def test_session_key_file(tmp_path):
    short = tmp_path / "short"
    short.write_text("x")
    with pytest.raises(ValueError):
        auth.load_key(str(short))
    good = tmp_path / "key"
    good.write_text("k" * 40 + "\n")
    assert auth.load_key(str(good)) == b"k" * 40
    assert auth.load_key("") != auth.load_key("")


def test_charts_escape_labels_and_scale():
    svg = str(charts.stacked_bars("t<x>", ["03-09", "<script>"], [("high", [1, 2]), ("low", [0, 3])]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and svg.count("<rect") == 3
    assert charts._axis_max(7) == 10 and charts._axis_max(0) == 1 and charts._axis_max(120) == 200
    line = str(charts.lines("m", ["a", "b", "c"], [("rate", [None, 50.0, 25.0])]))
    assert line.count("<circle") == 2 and "<polyline" in line
    assert "(none)" in str(charts.hbars("s", [("", 3)]))


def test_the_console_connection_carries_no_credentials_of_its_own(tmp_path, monkeypatch):
    import base64

    import trustme
    import yaml

    from paramedic.console.apiserver import address_only

    ca = trustme.CA()
    ca_file = tmp_path / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    junk = base64.b64encode(b"not a certificate").decode()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443/", "certificate-authority": str(ca_file)}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        # An admin's credentials: a client certificate (unloadable here: loading it would fail) and a token.
        "users": [{"name": "u", "user": {"client-certificate-data": junk, "client-key-data": junk,
                                         "token": "admin-token"}}]}))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    conn = address_only(str(kubeconfig))
    assert conn.host == "https://127.0.0.1:6443" and conn.token() is None
    assert auth.user_client(conn, "person", 5).conn.token() == "Bearer person"


def test_small_axes_keep_their_decimals():
    svg = str(charts.lines("m", ["a"], [("high", [0.08])], "{:.1f}"))
    assert ">0.1</text>" in svg and ">0.05</text>" in svg
    assert ">100%</text>" in str(charts.lines("r", ["a"], [("rate", [100.0])], "{:.0f}%"))


def test_people_are_kept_apart_forgotten_when_idle_and_bounded():
    from paramedic.console.people import People

    closed: list[str] = []

    class FakeClient:
        def __init__(self, token):
            self.token = token

        def close(self):
            closed.append(self.token)

    people = People(FakeClient, max_people=2, idle_seconds=3600)
    a = people.get("token-a")
    assert people.get("token-a") is a and people.get("token-b").client.token == "token-b"
    people.get("token-c")  # a is the least recently seen: it goes
    assert closed == ["token-a"] and people.get("token-a") is not a
    people.forget("token-c")
    assert "token-c" in closed
    idle = People(FakeClient, idle_seconds=0)
    idle.get("x")
    idle.get("y")
    assert "x" in closed


class MemoryInformer:
    """A person's informer that is fresh, has seen resourceVersion 10, and holds one object."""

    def __init__(self, *_args):
        self.fresh, self.rv = True, 10

    def start(self):
        return self

    def seen(self, rv):
        return self.rv >= int(rv or 0)

    def items(self):
        return [{"metadata": {"name": "from-memory"}}]


def test_visible_reads_memory_only_when_fresh_and_not_older_than_the_persons_write():
    from paramedic import kube
    from paramedic.console import people as pp

    calls = []

    def lister(client, res, hint, not_older_than, scope_only=False):
        calls.append(not_older_than)
        return [{"metadata": {"name": "x"}}], [], ["ns"]

    person = pp.Person(client=None)
    orig = pp.Informer
    pp.Informer = MemoryInformer
    try:
        assert pp.visible(person, kube.INCIDENTS, [], lister)[0][0]["metadata"]["name"] == "x"
        assert pp.visible(person, kube.INCIDENTS, [], lister)[0][0]["metadata"]["name"] == "from-memory"
        person.written(kube.INCIDENTS, {"metadata": {"resourceVersion": "11"}})
        assert pp.visible(person, kube.INCIDENTS, [], lister)[0][0]["metadata"]["name"] == "x"
        assert calls == ["", "11"]
        person.informers[("incidents", "ns")].fresh = False
        pp.visible(person, kube.INCIDENTS, [], lister)
        assert len(calls) == 3
    finally:
        pp.Informer = orig


def test_browser_tests_skip_without_chromium_locally_and_fail_in_ci(monkeypatch):
    from tests.e2e import test_console_browser as browser

    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium"):
        browser._browser_binaries()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no browser in CI"):
        browser._browser_binaries()


def test_visible_asks_the_api_server_again_after_scope_seconds_so_removed_rights_show(monkeypatch):
    """Memory answers for SCOPE_SECONDS after the person's scope was checked; then the API server
    is asked again, as them: the same scope keeps memory answering, and only a cheap scope check
    was made; a refusal is what the page shows."""
    from paramedic import kube
    from paramedic.console import people as pp

    allowed = {"yes": True}
    calls: list[str] = []

    def lister(client, res, hint, not_older_than, scope_only=False):
        calls.append("scope" if scope_only else "list")
        if allowed["yes"]:
            return ([] if scope_only else [{"metadata": {"name": "x"}}]), [], ["ns"]
        return [], ["ns"], []

    class FakeInformer:
        fresh = True

        def __init__(self, *a):
            pass

        def start(self):
            return self

        def seen(self, rv):
            return True

        def items(self):
            return [{"metadata": {"name": "from-memory"}}]

    clock = {"now": 1000.0}
    monkeypatch.setattr(pp.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(pp, "Informer", FakeInformer)
    person = pp.Person(client=None)
    assert pp.visible(person, kube.INCIDENTS, [], lister) == ([{"metadata": {"name": "x"}}], [])
    assert calls == ["list"]
    # Rights unchanged after SCOPE_SECONDS: a scope check, and memory answers for another period.
    clock["now"] += pp.SCOPE_SECONDS
    assert pp.visible(person, kube.INCIDENTS, [], lister)[0] == [{"metadata": {"name": "from-memory"}}]
    assert calls == ["list", "scope"]
    clock["now"] += pp.SCOPE_SECONDS - 1
    assert pp.visible(person, kube.INCIDENTS, [], lister)[0] == [{"metadata": {"name": "from-memory"}}]
    assert calls == ["list", "scope"]
    allowed["yes"] = False  # the person's RoleBinding is deleted
    assert pp.visible(person, kube.INCIDENTS, [], lister)[0] == [{"metadata": {"name": "from-memory"}}]
    clock["now"] += 1
    # The scope check finds the scope changed: everything is listed again, and refused.
    assert pp.visible(person, kube.INCIDENTS, [], lister) == ([], ["ns"])
    assert calls == ["list", "scope", "scope", "list"]
