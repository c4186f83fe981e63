"""The web console against the real control plane, with people's own tokens: RBAC decides."""

from __future__ import annotations

import pytest

from paramedic import kube
from tests.console_support import READ_ONLY_RULES, console_app, csrf_of, make_incident, person
from tests.tenancy import ROLE_RULES

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


def test_tenant_role_rules_are_what_the_console_tests_assume():
    # The tenants may patch incidents (actions offered) but not read other namespaces.
    assert any("patch" in r["verbs"] and "incidents" in r["resources"] for r in ROLE_RULES)
