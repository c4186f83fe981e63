"""The front ends as replicas: two consoles and two receivers behind one address.

Consoles: a person signs in on one, acts on the other with the same cookie and CSRF token,
sees the result on the first; a sign-out on one ends the session on both. Receivers: the
same Alertmanager batch delivered to both at once (HA peers, repeat_interval) is one
incident per group with each alert recorded once, and the operator then carries it on.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from paramedic import kube
from paramedic.console.current import STATE
from paramedic.domain import alert_records as records
from tests.console_support import ConsoleProcess, console_app, csrf_of, make_incident
from tests.e2e.test_webhook import am_alert, am_payload, make_service, resolved, resolved_by_operator
from tests.helpers import WebhookProcess, wait_object

pytestmark = pytest.mark.e2e

COOKIE = "paramedic_console"


# --- consoles ----------------------------------------------------------------------------------

def row_state(html: str, ns: str, name: str) -> str | None:
    """The state the incidents list shows for one incident (None: not listed)."""
    found = re.search(rf'<tr data-incident="{re.escape(ns)}/{re.escape(name)}"[^>]*>.*?'
                      r'<span class="badge st-([a-z]+)">', html, re.S)
    return found.group(1) if found else None


@pytest.fixture
def consoles(kubeconfig, tmp_path):
    """Two `paramedic-console` processes with the same settings and key, as a Deployment's replicas."""
    key = tmp_path / "session-key"
    key.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    started = [ConsoleProcess(kubeconfig, tmp_path, env={"PARAMEDIC_CONSOLE_SESSION_KEY_FILE": str(key)})
               for _ in range(2)]
    try:
        for console in started:
            console.start()
        yield started
    finally:
        for console in started:
            console.stop()


def test_a_person_signs_in_on_one_replica_and_works_on_the_other(consoles, kube_client, tenants):
    one, two = consoles
    a, _ = tenants
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"}, "spec": {
        "target": {"kind": "Deployment", "name": "checkout"},
        "runbook": {"steps": [{"title": "Look at the pool"}, {"title": "Roll back"}]}}}, namespace=a.namespace)
    inc = make_incident(kube_client, a.namespace, "Replicas")
    ns, name = a.namespace, inc["metadata"]["name"]
    page = f"/ns/{ns}/incidents/{name}"
    # One browser: its cookie for 127.0.0.1 goes to either port, as to either pod behind a Service.
    with httpx.Client(timeout=30) as browser:
        # The sign-in form of one replica, posted to the other (its CSRF value rides in the cookie).
        form = browser.get(one.url + "/signin")
        signed_in = browser.post(two.url + "/signin", data={"token": a.token, "csrf": csrf_of(form.text)})
        assert signed_in.status_code == 302, signed_in.text
        listing = browser.get(one.url + "/incidents")
        assert listing.status_code == 200 and row_state(listing.text, ns, name) == "open"
        html = browser.get(one.url + page).text
        token = csrf_of(html)
        assert ">Pause<" in browser.get(one.url + "/services").text
        # Every action the console offers, on the other replica, with the token the first one
        # rendered; each answer is the redirect of a write that happened.
        for path, data in ((page + "/state", {"state": "acknowledged", "reason": "on it"}),
                           (page + "/assign", {"assignee": "ana@example.com"}),
                           (page + "/comment", {"text": "looking from replica two"}),
                           (page + "/step", {"step": "2", "note": "to 1.4"}),
                           (page + "/rca", {"rootCause": "a bad deploy", "correctiveActions": "rolled back"}),
                           (f"/ns/{ns}/services/checkout/pause", {"paused": "true"})):
            resp = browser.post(two.url + path, data={**data, "csrf": token})
            assert resp.status_code == 302, (path, resp.status_code, resp.text[:500])
        assert ">Resume<" in browser.get(one.url + "/services").text
        assert "a bad deploy" in browser.get(one.url + page + "/report.md").text
        # The first replica, at once: the list (its watch-fed memory, no older than the writes)
        # and the incident page show them.
        listing = browser.get(one.url + "/incidents")
        assert row_state(listing.text, ns, name) == "acknowledged"
        assert "ana@example.com" in listing.text
        html = browser.get(one.url + page).text
        assert "looking from replica two" in html and "ana@example.com" in html
        got = kube_client.get(kube.INCIDENTS, name, ns)
        assert got["spec"]["state"] == "acknowledged" and got["spec"]["assignee"] == "ana@example.com"
        assert got["metadata"]["annotations"]["paramedic.dev/actor"] == a.username
        assert [(c["author"], c["text"]) for c in got["spec"]["comments"]] == [(a.username, "looking from replica two")]
        assert [(r["step"], r["author"]) for r in got["spec"]["runbookSteps"]] == [(2, a.username)]
        assert got["spec"]["rca"]["rootCause"] == "a bad deploy"
        # Resolve on the first replica, with a token the second one rendered.
        token = csrf_of(browser.get(two.url + page).text)
        assert browser.post(one.url + page + "/state", data={"state": "resolved", "csrf": token}).status_code == 302
        assert row_state(browser.get(two.url + "/incidents").text, ns, name) == "resolved"
        # Sign out on the second replica: the first refuses the same cookie from then on.
        cookie = browser.cookies.get(COOKIE)
        assert cookie
        assert browser.post(two.url + "/signout", data={"csrf": token}).status_code == 302
    for console in consoles:
        with httpx.Client(timeout=30, cookies={COOKIE: cookie}) as copy:
            resp = copy.get(console.url + "/incidents")
            assert resp.status_code == 302 and resp.headers["Location"].startswith("/signin"), console.url
            refused = copy.post(console.url + page + "/state", data={"state": "open", "csrf": token})
            assert refused.status_code == 302 and refused.headers["Location"].startswith("/signin")
    assert kube_client.get(kube.INCIDENTS, name, ns)["spec"]["state"] == "resolved"
    for console in consoles:
        assert "Traceback" not in console.logs(), console.logs()[-3000:]


def freeze_watches(app: Any) -> int:
    """Stop every watch of the app's signed-in people: their memory stays as it is and still counts as
    fresh, as a replica's does while its watch lags behind a write made through another."""
    frozen = 0
    for person in list(app.extensions[STATE].people._people.values()):
        for informer in person.informers.values():
            informer.stop()
            frozen += 1
    return frozen


def test_a_write_through_one_replica_shows_on_the_other_even_when_its_watch_lags(kubeconfig, kube_client, tenants):
    """Deterministic form of the first test's list check: the other replica's watch does not
    move at all, yet the person's list there shows their write (its resourceVersion rides in
    the signed cookie, so that replica reads past its memory)."""
    a, _ = tenants
    inc = make_incident(kube_client, a.namespace, "Lagging watch")
    ns, name = a.namespace, inc["metadata"]["name"]
    one, two = console_app(kubeconfig), console_app(kubeconfig)  # same key, one API server
    first, second = one.test_client(), two.test_client()
    form = first.get("/signin").get_data(as_text=True)
    assert first.post("/signin", data={"token": a.token, "csrf": csrf_of(form)}).status_code == 302

    def carry(src: Any, dst: Any) -> None:
        dst.set_cookie(COOKIE, src.get_cookie(COOKIE).value)

    assert row_state(first.get("/incidents").get_data(as_text=True), ns, name) == "open"
    assert freeze_watches(one) >= 1
    carry(first, second)
    token = csrf_of(second.get(f"/ns/{ns}/incidents/{name}").get_data(as_text=True))
    wrote = second.post(f"/ns/{ns}/incidents/{name}/state", data={"state": "acknowledged", "csrf": token})
    assert wrote.status_code == 302 and "Set-Cookie" in wrote.headers
    # The list's poll, sent with the cookie as it was before the write, leaves the cookie alone
    # (it would put back the one without the write's version).
    assert "Set-Cookie" not in first.get("/incidents/rows").headers
    carry(second, first)
    assert row_state(first.get("/incidents").get_data(as_text=True), ns, name) == "acknowledged"
    rows = first.get("/incidents/rows?state=acknowledged").get_data(as_text=True)
    assert row_state(rows, ns, name) == "acknowledged"
    for app in (one, two):
        app.extensions[STATE].people.close()


# --- receivers ---------------------------------------------------------------------------------

TOKEN = "replicas-" + uuid.uuid4().hex
RETRIES = 20


def is_receiver(url: str) -> bool:
    """Whether the receiver answers there (a free port can be taken by another program between
    its choice and gunicorn's bind; the other program's /healthz may answer 200 too)."""
    resp = httpx.post(url + "/api/v1/alertmanager", json={}, timeout=10)
    return resp.status_code == 401 and 'realm="paramedic"' in resp.headers.get("WWW-Authenticate", "")


@pytest.fixture
def receivers(kubeconfig, namespace, tmp_path):
    started: list[WebhookProcess] = []
    try:
        for _ in range(6):
            if len(started) == 2:
                break
            proc = WebhookProcess(kubeconfig, namespace, tmp_path, TOKEN)
            try:
                proc.start()
                ours = is_receiver(proc.url) and proc.proc is not None and proc.proc.poll() is None
            except AssertionError:  # it exited: the port was taken
                ours = False
            if ours:
                started.append(proc)
            else:
                proc.stop()
        assert len(started) == 2, "two receivers did not start"
        yield started
    finally:
        for proc in started:
            proc.stop()


class Deliveries:
    """Posts as Alertmanager does: 5xx retried (here after a short pause), 4xx never."""

    def __init__(self) -> None:
        self.retried: list[int] = []
        self._lock = threading.Lock()

    def post(self, url: str, body: dict) -> dict:
        with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http:
            for _ in range(RETRIES):
                resp = http.post(url + "/api/v1/alertmanager", json=body)
                if resp.status_code < 500:
                    assert resp.status_code == 200, resp.text
                    return resp.json()
                with self._lock:
                    self.retried.append(resp.status_code)
                assert resp.status_code == 503, resp.text  # a 500 would be retried for nothing
                threading.Event().wait(0.2)
        raise AssertionError(f"{url}: still {resp.status_code} after {RETRIES} deliveries: {resp.text}")

    def at_once(self, urls: list[str], body: dict) -> list[dict]:
        """The same body to every URL at the same moment (threads behind a barrier)."""
        barrier = threading.Barrier(len(urls))
        answers: list[Any] = [None] * len(urls)

        def one(i: int) -> None:
            barrier.wait()
            try:
                answers[i] = self.post(urls[i], body)
            except BaseException as exc:  # reported below, in the test's thread
                answers[i] = exc
        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        return answers


def of_services(client: kube.KubeClient, ns: str, services: set[str]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {s: [] for s in services}
    for inc in client.list(kube.INCIDENTS, ns):
        if inc["spec"]["service"] in services:
            found[inc["spec"]["service"]].append(inc)
    return found


def recorded_keys(incs: list[dict]) -> list[str]:
    return sorted(a["key"] for inc in incs for a in inc.get("status", {}).get("alerts", []))


def timeline_count(incs: list[dict], kind: str) -> int:
    return sum(1 for inc in incs for e in inc.get("status", {}).get("timeline", []) if e["type"] == kind)


ROUNDS = 4
GROUPS = 3
ALERTS = 4


def test_the_same_batch_to_both_receivers_at_once_is_one_incident_each_alert_once(
        kube_client, namespace, receivers, operator_factory):
    operator_factory(namespace)
    urls = [r.url for r in receivers] * 2  # two Alertmanagers, each reaching either replica
    deliveries = Deliveries()
    for rnd in range(ROUNDS):
        services = {f"ha{rnd}-{g}-{uuid.uuid4().hex[:4]}" for g in range(GROUPS)}
        for svc in services:
            make_service(kube_client, namespace, svc)
        starts = datetime.now(UTC)
        alerts = [am_alert(app=svc, instance=f"10.0.{rnd}.{i}", namespace=namespace,
                           starts=starts + timedelta(minutes=7 * (i == ALERTS - 1)))  # one of a later window
                  for svc in sorted(services) for i in range(ALERTS)]
        body = am_payload(*alerts)
        retried = len(deliveries.retried)
        answers = deliveries.at_once(urls, body)
        if len(deliveries.retried) == retried:  # (a retried delivery's answer tells of its last attempt only)
            assert sum(a["created"] for a in answers) == GROUPS, answers
            assert sum(a["joined"] for a in answers) == GROUPS * ALERTS
        for answer in answers:
            assert all(o["outcome"] in ("recorded", "duplicate") for o in answer["alerts"]), answer["alerts"]
        found = of_services(kube_client, namespace, services)
        assert all(len(incs) == 1 for incs in found.values()), {s: [i["metadata"]["name"] for i in v]
                                                                  for s, v in found.items()}
        every = [inc for incs in found.values() for inc in incs]
        keys = [o["key"] for o in answers[0]["alerts"]]
        assert recorded_keys(every) == sorted(keys) and len(set(keys)) == GROUPS * ALERTS  # each once
        # All of a group recorded by one write: one summary entry each (a second writer would add one).
        firing = timeline_count(every, "alert-firing")
        assert firing == GROUPS
        # repeat_interval: the whole batch again, to both at once: nothing new.
        again = deliveries.at_once(urls, body)
        assert sum(a["created"] + a["joined"] for a in again) == 0
        assert all(a["deduplicated"] == GROUPS * ALERTS for a in again)
        now = [kube_client.get(kube.INCIDENTS, inc["metadata"]["name"], namespace) for inc in every]
        assert timeline_count(now, "alert-firing") == firing and recorded_keys(now) == sorted(keys)
        # The resolutions, to both at once: each recorded once, and the operator resolves each incident.
        retried = len(deliveries.retried)
        gone = deliveries.at_once(urls, am_payload(*[resolved(a) for a in alerts]))
        if len(deliveries.retried) == retried:
            assert sum(a["resolved"] for a in gone) == GROUPS * ALERTS
            # (Every answer that finds all of an incident's alerts resolved says so; the timeline says it once.)
            assert sum(a["autoResolvable"] for a in gone) >= GROUPS
        assert all(a["ignored"] == 0 for a in gone)
        for inc in every:
            done = wait_object(kube_client, kube.INCIDENTS, inc["metadata"]["name"], namespace,
                               resolved_by_operator, 60, "the operator resolving an incident of both receivers")
            assert timeline_count([done], "alert-resolved") == 1 and timeline_count([done], "alerts-resolved") == 1
            assert len(done["status"]["alerts"]) == ALERTS
            assert all(a["resolvedAt"] and a["endsAt"] for a in done["status"]["alerts"])
            assert {records.entry_labels(done, a)["app"] for a in done["status"]["alerts"]} == {
                done["spec"]["service"]}
    print(f"replicas: {len(deliveries.retried)} deliveries answered {sorted(set(deliveries.retried))} and retried")
    for proc in receivers:
        logs = proc.logs()
        assert "Traceback" not in logs and "unexpected error" not in logs, logs[-3000:]


def test_alerts_one_after_the_other_through_either_receiver_join_the_active_incident(
        kube_client, namespace, receivers):
    """Each delivery answered before the next goes to the other replica: the second never opens a
    second incident beside the first's (its own writes are not what the other replica has seen)."""
    deliveries = Deliveries()
    for rnd in range(10):
        svc = f"seq{rnd}-{uuid.uuid4().hex[:4]}"
        make_service(kube_client, namespace, svc)
        starts = datetime.now(UTC)
        first = am_alert(app=svc, instance="a", namespace=namespace, starts=starts)
        later = am_alert(app=svc, instance="b", namespace=namespace, starts=starts + timedelta(minutes=7))
        one, two = (receivers[rnd % 2], receivers[1 - rnd % 2])
        assert deliveries.post(one.url, am_payload(first))["created"] == 1
        out = deliveries.post(two.url, am_payload(later))
        assert out["created"] == 0 and out["joined"] == 1, out
        [inc] = of_services(kube_client, namespace, {svc})[svc]
        assert len(inc["status"]["alerts"]) == 2
        # Its resolution, through the first replica at once: found where the other one recorded it.
        out = deliveries.post(one.url, am_payload(resolved(later)))
        assert out["resolved"] == 1 and out["ignored"] == 0, out
