"""The web console against the real control plane, with people's own tokens: RBAC decides."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from paramedic import kube
from paramedic.console import sessions
from paramedic.console.auth import Keys
from tests.console_support import READ_ONLY_RULES, SESSIONS_NAMESPACE, console_app, csrf_of, make_incident, person
from tests.tenancy import ROLE_RULES, SERVICE_ACCOUNTS
from tests.unit.test_console_sessions import OFF_SITE

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(kubeconfig):
    return console_app(kubeconfig)


def sign_in(app, token: str, namespaces: str = ""):
    web = app.test_client()
    form = web.get("/signin").get_data(as_text=True)
    resp = web.post("/signin", data={"token": token, "namespaces": namespaces, "csrf": csrf_of(form)})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return web


def test_sign_in_shows_only_what_the_tokens_rbac_allows(app, kube_client, tenants):
    a, b = tenants
    mine = make_incident(kube_client, a.namespace, "Checkout <b>down</b>")
    theirs = make_incident(kube_client, b.namespace, "Not yours")
    web = sign_in(app, a.token)
    cookie = web.get_cookie("paramedic_console")
    assert cookie.http_only and cookie.same_site == "Lax"
    assert a.token not in cookie.value  # the token is sealed, not merely signed
    page = web.get("/incidents")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert mine["metadata"]["name"] in html and theirs["metadata"]["name"] not in html
    assert "Checkout &lt;b&gt;down&lt;/b&gt;" in html and "<b>down</b>" not in html
    assert a.username in html
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    # Their incident's page is refused by the API server, and shown as such.
    other = web.get(f"/ns/{b.namespace}/incidents/{theirs['metadata']['name']}")
    assert other.status_code == 403 and "403" in other.get_data(as_text=True)


def test_bad_token_is_refused_at_sign_in(app, tenants):
    web = app.test_client()
    token = csrf_of(web.get("/signin").get_data(as_text=True))
    resp = web.post("/signin", data={"token": "not-a-token", "csrf": token})
    assert resp.status_code == 401 and "did not accept" in resp.get_data(as_text=True)
    assert web.get("/incidents").status_code == 302
    # A sign-in posted from another site (no form of ours, so no CSRF token) signs nobody in.
    forged = app.test_client().post("/signin", data={"token": tenants[0].token})
    assert forged.status_code == 400


def test_bearer_header_per_request_without_a_session(app, kube_client, tenants):
    a, _ = tenants
    inc = make_incident(kube_client, a.namespace, "Header sign-in")
    web = app.test_client()
    page = web.get("/incidents", headers={"Authorization": f"Bearer {a.token}"})
    assert page.status_code == 200 and inc["metadata"]["name"] in page.get_data(as_text=True)
    assert web.get_cookie("paramedic_console") is None
    rows = web.get("/incidents/rows?q=header", headers={"Authorization": f"Bearer {a.token}"})
    assert inc["metadata"]["name"] in rows.get_data(as_text=True)


def test_lifecycle_with_the_persons_identity_then_report(app, kube_client, tenants):
    a, _ = tenants
    inc = make_incident(kube_client, a.namespace, "Lifecycle")
    name, ns = inc["metadata"]["name"], a.namespace
    web = sign_in(app, a.token)
    url = f"/ns/{ns}/incidents/{name}"
    html = web.get(url).get_data(as_text=True)
    token = csrf_of(html)
    assert 'value="acknowledged"' in html and 'value="closed"' not in html
    # Without the CSRF token nothing happens.
    assert web.post(url + "/state", data={"state": "acknowledged"}).status_code == 400
    assert kube_client.get(kube.INCIDENTS, name, ns)["spec"].get("state", "open") == "open"
    assert web.post(url + "/state", data={"state": "acknowledged", "reason": "on it", "csrf": token}).status_code == 302
    got = kube_client.get(kube.INCIDENTS, name, ns)
    assert got["spec"]["state"] == "acknowledged"
    assert got["metadata"]["annotations"]["paramedic.dev/actor"] == a.username
    assert got["metadata"]["annotations"]["paramedic.dev/reason"] == "on it"
    web.post(url + "/assign", data={"assignee": "ana@example.com", "csrf": token})
    web.post(url + "/state", data={"state": "resolved", "csrf": token})
    html = web.get(url).get_data(as_text=True)
    assert "write the root cause first" in html and 'value="closed"' not in html
    # The API server's CEL rule refuses closing without a root cause: shown, not hidden.
    refused = web.post(url + "/state", data={"state": "closed", "csrf": token})
    assert refused.status_code == 422
    web.post(url + "/rca", data={"rootCause": "a bad deploy", "correctiveActions": "rolled back", "csrf": token})
    assert 'value="closed"' in web.get(url).get_data(as_text=True)
    assert web.post(url + "/state", data={"state": "closed", "csrf": token}).status_code == 302
    got = kube_client.get(kube.INCIDENTS, name, ns)
    assert got["spec"]["state"] == "closed" and got["spec"]["assignee"] == "ana@example.com"
    assert got["spec"]["rca"]["rootCause"] == "a bad deploy"
    report = web.get(url + "/report.md")
    assert report.status_code == 200 and report.mimetype == "text/markdown"
    assert "attachment" in report.headers["Content-Disposition"]
    assert "a bad deploy" in report.get_data(as_text=True)


def test_read_only_person_sees_no_actions_and_a_forged_post_is_refused_by_the_api_server(app, kube_client, tenants):
    a, _ = tenants
    inc = make_incident(kube_client, a.namespace, "Look, don't touch")
    name = inc["metadata"]["name"]
    token, user = person(kube_client, a.namespace, "viewer", READ_ONLY_RULES)
    web = sign_in(app, token)
    url = f"/ns/{a.namespace}/incidents/{name}"
    html = web.get(url).get_data(as_text=True)
    assert "Look, don&#39;t touch" in html
    assert 'name="state"' not in html and "/assign" not in html and 'id="rca-form"' not in html
    forged = web.post(url + "/state", data={"state": "acknowledged", "csrf": csrf_of(html)})
    assert forged.status_code == 403
    assert "refused this with your credentials" in forged.get_data(as_text=True)
    assert kube_client.get(kube.INCIDENTS, name, a.namespace)["spec"].get("state", "open") == "open"


def test_services_oncall_and_insights_pages(app, kube_client, tenants):
    a, _ = tenants
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"},
                                                 "spec": {"target": {"kind": "Deployment", "name": "checkout"}}},
                       namespace=a.namespace)
    kube_client.create(kube.ONCALL_SCHEDULES, {"metadata": {"name": "payments"},
                                               "spec": {"participants": [{"name": "Ana", "email": "ana@example.com"},
                                                                         {"name": "Bo", "email": "bo@example.com"}],
                                                        "rotation": {"start": "2026-01-05T09:00:00Z", "lengthHours": 24},
                                                        "escalation": [{"afterMinutes": 15, "notify": "next"}]}},
                       namespace=a.namespace)
    make_incident(kube_client, a.namespace, "For the charts", severity="critical")
    web = sign_in(app, a.token)
    services = web.get("/services").get_data(as_text=True)
    assert "checkout" in services and ">Pause<" in services
    token = csrf_of(services)
    web.post(f"/ns/{a.namespace}/services/checkout/pause", data={"paused": "true", "csrf": token})
    svc = kube_client.get(kube.MONITORED_SERVICES, "checkout", a.namespace)
    assert svc["metadata"]["annotations"]["paramedic.dev/paused"] == "true"
    assert ">Resume<" in web.get("/services").get_data(as_text=True)
    oncall = web.get("/oncall").get_data(as_text=True)
    assert "ana@example.com" in oncall and "after 15 min: next" in oncall
    insights = web.get("/insights?range=7d")
    html = insights.get_data(as_text=True)
    assert insights.status_code == 200 and html.count("<svg") >= 6 and "s-critical" in html
    # A person who may read but not patch services gets no pause button.
    ro, _ = person(kube_client, a.namespace, "viewer", READ_ONLY_RULES)
    assert ">Resume<" not in sign_in(app, ro).get("/services").get_data(as_text=True)


# --- sessions: in the cluster, ended at once on every replica -----------------------------------

def session_secrets(client: kube.KubeClient) -> list[dict]:
    return client.list(kube.SECRETS, SESSIONS_NAMESPACE, labels={sessions.LABEL: "true"})


def test_sign_out_ends_a_copied_cookie_at_once_also_on_another_replica(kubeconfig, kube_client, tenants):
    a, _ = tenants
    inc = make_incident(kube_client, a.namespace, "Copied cookie")
    one, two = console_app(kubeconfig), console_app(kubeconfig)  # two replicas, one API server
    web = sign_in(one, a.token)
    cookie = web.get_cookie("paramedic_console")
    assert cookie.secure and cookie.http_only  # Secure: no PARAMEDIC_CONSOLE_INSECURE_HTTP here
    assert a.token not in cookie.value and a.token.split(".")[1] not in cookie.value
    [secret] = [s for s in session_secrets(kube_client)
                if s["metadata"]["name"] == sessions.secret_name(one.session_interface.get_signing_serializer(
                    one).loads(cookie.value)["sid"])]
    assert a.token not in str(secret)  # sealed with the console's key
    thief = two.test_client()
    thief.set_cookie("paramedic_console", cookie.value)
    page = web.get("/incidents")
    assert page.status_code == 200 and inc["metadata"]["name"] in page.get_data(as_text=True)
    assert inc["metadata"]["name"] in thief.get("/incidents").get_data(as_text=True)
    assert web.post("/signout", data={"csrf": csrf_of(page.get_data(as_text=True))}).status_code == 302
    assert kube_client.get_or_none(kube.SECRETS, secret["metadata"]["name"], SESSIONS_NAMESPACE) is None
    for replica in (one, two):  # at once: no waiting, no cache to run out
        copy = replica.test_client()
        copy.set_cookie("paramedic_console", cookie.value)
        resp = copy.get("/incidents")
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/signin"), replica
    assert thief.get(f"/ns/{a.namespace}/incidents/{inc['metadata']['name']}").status_code == 302


def short_token(admin: kube.KubeClient, namespace: str, name: str, seconds: int) -> str:
    out = admin.request("POST", SERVICE_ACCOUNTS.path(namespace, name, "token"),
                        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                         "spec": {"expirationSeconds": seconds}})
    return out["status"]["token"]


def test_a_session_never_outlives_its_token_nor_the_configured_lifetime(kubeconfig, kube_client, tenants):
    import time
    from datetime import timedelta

    from paramedic.domain.timeutil import utcnow

    a, _ = tenants
    person(kube_client, a.namespace, "brief", READ_ONLY_RULES)
    # The shortest TokenRequest the API server issues (10 minutes): the session ends with it,
    # not at the configured 12 hours.
    token = short_token(kube_client, a.namespace, "brief", 600)
    app = console_app(kubeconfig, console_session_seconds=43200)
    before = {s["metadata"]["name"] for s in session_secrets(kube_client)}
    sign_in(app, token)
    [secret] = [s for s in session_secrets(kube_client) if s["metadata"]["name"] not in before]
    ends = sessions.read_secret(secret, Keys.derive(b"k" * 32).unseal, utcnow())
    assert ends is not None and ends.expires == sessions.token_expiry(token)
    assert timedelta(seconds=590) < ends.expires - utcnow() <= timedelta(seconds=600)
    # A configured lifetime shorter than the token: the session ends then, on the API server's clock too.
    brief = console_app(kubeconfig, console_session_seconds=2)
    web = sign_in(brief, token)
    assert web.get("/incidents").status_code == 200
    time.sleep(2.5)
    resp = web.get("/incidents")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/signin")
    left = {s["metadata"]["name"] for s in session_secrets(kube_client)} - before
    assert left == {secret["metadata"]["name"]}  # the expired one met was deleted


@pytest.mark.parametrize("target", OFF_SITE)
def test_a_sign_in_never_sends_the_browser_off_site(app, tenants, target):
    a, _ = tenants
    web = app.test_client()
    form = web.get("/signin").get_data(as_text=True)
    resp = web.post("/signin?" + urlencode({"next": target}), data={"token": a.token, "csrf": csrf_of(form)})
    assert resp.status_code == 302 and resp.headers["Location"] == "/incidents", repr(target)


def test_tenant_role_rules_are_what_the_console_tests_assume():
    # The tenants may patch incidents (actions offered) but not read other namespaces.
    assert any("patch" in r["verbs"] and "incidents" in r["resources"] for r in ROLE_RULES)


# --- incident context and people's entries ------------------------------------------------------

ATTRIBUTION = "paramedic-incident-attribution"
POLICIES = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                         "ValidatingAdmissionPolicy", namespaced=False)
POLICY_BINDINGS = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                                "ValidatingAdmissionPolicyBinding", namespaced=False)
EVIDENCE = {
    "gatheredAt": "2026-03-01T11:56:00Z", "target": "Deployment/checkout", "truncated": False,
    "rollouts": [{"ref": "rollout/2", "revision": 2, "name": "checkout-7d9", "time": "2026-03-01T11:50:00Z",
                  "current": True, "images": ["checkout:1.5"], "previousRevision": 1,
                  "changes": ["image checkout: checkout:1.4 → checkout:1.5"]}],
    "containers": [{"ref": "pod/checkout-7d9-x/app", "pod": "checkout-7d9-x", "container": "app", "node": "n1",
                    "ready": False, "restarts": 4, "state": "Waiting", "reason": "CrashLoopBackOff",
                    "lastReason": "OOMKilled", "lastExitCode": 137, "memoryLimit": "64Mi",
                    "time": "2026-03-01T11:54:00Z"}],
    "events": [{"ref": "event/checkout.1", "time": "2026-03-01T11:54:00Z", "object": "Pod/checkout-7d9-x",
                "reason": "BackOff", "message": "<script>alert('ev')</script>", "count": 7}],
    "nodes": [], "logs": [{"ref": "log/checkout-7d9-x/app", "pod": "checkout-7d9-x", "container": "app",
                           "previous": True, "time": "2026-03-01T11:56:00Z", "lines": "fatal: <b>out of memory</b>"}],
}
HINTS = [{"rule": "oom", "summary": "app in checkout-7d9-x was OOMKilled (limit 64Mi)",
          "suggestedAction": "raise-memory-limit", "evidence": ["pod/checkout-7d9-x/app", "event/checkout.1"]}]


def attribution_docs() -> list[dict]:
    import yaml

    from devtools.cluster import REPO
    return [d for d in yaml.safe_load_all((REPO / "manifests" / "admission-policy.yaml").read_text())
            if d and d["metadata"]["name"] == ATTRIBUTION]


def forged_comment_refused(admin: kube.KubeClient, ns: str, name: str) -> bool:
    """A dry-run comment in someone else's name: refused once the attribution policy is active."""
    op = [{"op": "add", "path": "/spec/comments", "value": [{"author": "nobody@example.com", "text": "probe"}]}]
    try:
        admin.request("PATCH", kube.INCIDENTS.path(ns, name), op, kube.JSON_PATCH, params={"dryRun": "All"})
    except kube.ApiError as exc:
        return exc.status == 403 and "must name its author" in exc.message
    return False


@pytest.fixture
def attribution_policy(kube_client, tenants):
    """Only the attribution policy of manifests/admission-policy.yaml, active, and gone afterwards."""
    from devtools.wait import wait_for

    a, _ = tenants
    probe = make_incident(kube_client, a.namespace, "policy probe")["metadata"]["name"]
    policy, binding = attribution_docs()
    kube_client.create(POLICIES, policy)
    kube_client.create(POLICY_BINDINGS, binding)
    try:
        wait_for(lambda: forged_comment_refused(kube_client, a.namespace, probe), 60, "the attribution policy")
        yield
    finally:
        kube_client.delete(POLICY_BINDINGS, ATTRIBUTION)
        kube_client.delete(POLICIES, ATTRIBUTION)
        # Other tests must not meet it: wait until the same request passes again.
        wait_for(lambda: not forged_comment_refused(kube_client, a.namespace, probe), 60, "the policy to be gone")


def test_incident_context_is_shown_escaped_and_people_comment_in_their_own_name(app, kube_client, tenants,
                                                                                  attribution_policy):
    a, _ = tenants
    ns = a.namespace
    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"}, "spec": {
        "target": {"kind": "Deployment", "name": "checkout"},
        "runbook": {"steps": [{"title": "Look at the pool", "text": "dashboards <i>first</i>"},
                              {"title": "Roll back", "command": "kubectl rollout undo deploy/checkout"}]}}},
                       namespace=ns)
    kube_client.patch(kube.MONITORED_SERVICES, "checkout", {"status": {"maintenance": {
        "active": True, "until": "2099-01-01T00:00:00Z", "reason": "DB upgrade", "source": "window"}}}, ns,
                      subresource="status")
    before = make_incident(kube_client, ns, "Checkout OOM last month")
    inc = make_incident(kube_client, ns, "Checkout crash loops")
    name = inc["metadata"]["name"]
    # The status as the operator writes it.
    kube_client.patch(kube.INCIDENTS, name, {"status": {
        "evidence": EVIDENCE, "hints": HINTS,
        "seenBefore": [{"name": before["metadata"]["name"], "createdAt": "2026-02-01T00:00:00Z", "state": "closed",
                        "title": "Checkout OOM last month", "rootCause": "memory limit too low"}],
        "maintenance": {"until": "2099-01-01T00:00:00Z", "reason": "DB upgrade", "source": "window"}}}, ns,
                      subresource="status")
    web = sign_in(app, a.token)
    url = f"/ns/{ns}/incidents/{name}"
    html = web.get(url).get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;ev&#39;)&lt;/script&gt;" in html
    assert "fatal: &lt;b&gt;out of memory&lt;/b&gt;" in html and "<b>out of memory</b>" not in html
    assert "app in checkout-7d9-x was OOMKilled (limit 64Mi)" in html and "raise-memory-limit" in html
    assert 'href="#ev-pod-checkout-7d9-x-app"' in html and 'id="ev-pod-checkout-7d9-x-app"' in html
    assert "image checkout: checkout:1.4 → checkout:1.5" in html
    assert "last run: OOMKilled exit code 137" in html and "memory limit 64Mi" in html
    assert f'href="/ns/{ns}/incidents/{before["metadata"]["name"]}"' in html and "memory limit too low" in html
    assert 'id="maintenance"' in html and "DB upgrade" in html
    assert "dashboards &lt;i&gt;first&lt;/i&gt;" in html and "kubectl rollout undo deploy/checkout" in html
    assert 'id="comment-form"' in html and 'id="action-step-1"' in html
    token = csrf_of(html)
    # Without the CSRF token nothing is written.
    assert web.post(url + "/comment", data={"text": "no token"}).status_code == 400
    # A comment and a step mark land in the spec in the person's name (the attribution policy lets them).
    assert web.post(url + "/comment", data={"text": "looking at the <pool>", "csrf": token}).status_code == 302
    assert web.post(url + "/comment", data={"text": "second", "csrf": token}).status_code == 302
    assert web.post(url + "/step", data={"step": "2", "note": "to 1.4", "csrf": token}).status_code == 302
    spec = kube_client.get(kube.INCIDENTS, name, ns)["spec"]
    assert [(c["author"], c["text"]) for c in spec["comments"]] == [(a.username, "looking at the <pool>"),
                                                                    (a.username, "second")]
    assert all(c["time"].startswith("20") for c in spec["comments"])
    assert [(s["step"], s["title"], s["author"], s["note"]) for s in spec["runbookSteps"]] == [
        (2, "Roll back", a.username, "to 1.4")]
    html = web.get(url).get_data(as_text=True)
    assert "looking at the &lt;pool&gt;" in html and 'id="action-step-2"' not in html and 'id="action-step-1"' in html
    # A step already applied, or one that does not exist, is refused with the reason.
    again = web.post(url + "/step", data={"step": "2", "csrf": token})
    assert again.status_code == 400 and "already applied by" in again.get_data(as_text=True)
    assert web.post(url + "/step", data={"step": "9", "csrf": token}).status_code == 400
    assert web.post(url + "/comment", data={"text": "  ", "csrf": token}).status_code == 400
    # A read-only person is offered no form, and a forged post is refused by the API server (403 page).
    ro, _ = person(kube_client, ns, "reader", READ_ONLY_RULES)
    ro_web = sign_in(app, ro)
    ro_html = ro_web.get(url).get_data(as_text=True)
    assert "looking at the &lt;pool&gt;" in ro_html
    assert 'id="comment-form"' not in ro_html and 'id="action-step-1"' not in ro_html
    forged = ro_web.post(url + "/comment", data={"text": "sneaky", "csrf": csrf_of(ro_html)})
    assert forged.status_code == 403 and "403" in forged.get_data(as_text=True)
    assert len(kube_client.get(kube.INCIDENTS, name, ns)["spec"]["comments"]) == 2
    # The services page shows the maintenance and the runbook.
    services = web.get("/services").get_data(as_text=True)
    assert "maintenance" in services and "until 2099-01-01T00:00:00Z: DB upgrade" in services
    assert "Runbook (2 steps)" in services and "Look at the pool" in services


def test_the_scope_check_finds_the_same_scope_as_the_full_list_and_lists_no_items(kube_client, tenants):
    """Once a minute the console checks a person's rights with LISTs of one item: the real API
    server must give that walk the same answer as the full one."""
    from paramedic.console.app import list_visible

    a, b = tenants
    for _ in range(3):
        make_incident(kube_client, a.namespace, "scope check")
    client = a.client()
    try:
        items, denied, scope = list_visible(client, kube.INCIDENTS, [a.namespace, b.namespace])
        assert len(items) == 3 and (denied, scope) == ([b.namespace], [a.namespace])
        assert list_visible(client, kube.INCIDENTS, [a.namespace, b.namespace], scope_only=True) == (
            [], [b.namespace], [a.namespace])
        assert len(client.list_first(kube.INCIDENTS, a.namespace)) == 1
    finally:
        client.close()
    # The cluster admin may list everywhere: one request, cluster-wide.
    assert list_visible(kube_client, kube.INCIDENTS, [], scope_only=True) == ([], [], None)
