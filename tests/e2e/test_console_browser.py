"""The web console in a real browser (Debian's chromium, driven by chromium-driver through
Selenium) against the real control plane, the real receiver and the real operator.

Screenshots of each page go to artifacts/console/ (PARAMEDIC_ARTIFACTS overrides the folder).
Without chromium the tests skip, saying why, except in CI (CI=true), where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import httpx
import pytest

from devtools.cluster import REPO
from paramedic import kube
from tests.console_support import READ_ONLY_RULES, ConsoleProcess, make_incident, person
from tests.helpers import WebhookProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(os.environ.get("PARAMEDIC_ARTIFACTS") or REPO / "artifacts") / "console"
WAIT = 30


def _browser_binaries() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        why = "Debian's chromium and chromium-driver are not installed (hack/apt-deps.sh installs them)"
        if os.environ.get("CI"):
            pytest.fail(f"no browser in CI: {why}")
        pytest.skip(f"no browser: {why}")
    return chromium, driver


@pytest.fixture
def chrome(tmp_path):
    chromium, driver = _browser_binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        # Loopback only: every other host goes to a dead local proxy, and no name is resolved.
        "--proxy-server=http://127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        "--no-default-browser-check", "--disable-default-apps", "--disable-extensions",
        "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--metrics-recording-only",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    ):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    # An explicit driver path: Selenium Manager (which would download one) is never run.
    service = Service(executable_path=driver, log_output=str(tmp_path / "chromedriver.log"))
    browser = webdriver.Chrome(service=service, options=options)
    browser.downloads = downloads
    yield browser
    browser.quit()


@pytest.fixture
def console(kubeconfig, tmp_path):
    proc = ConsoleProcess(kubeconfig, tmp_path).start()
    yield proc
    proc.stop()


def shot(browser, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def until(browser, cond, what: str):
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        WebDriverException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    def looking(b):
        try:
            return cond(b)
        except WebDriverException as exc:
            # chromedriver's other word for a stale element, when the page was replaced mid-read.
            if "does not belong to the document" in str(exc):
                return False
            raise

    # A form's POST reloads the page: an element found just before may be gone when read. Look again.
    return WebDriverWait(browser, WAIT, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        looking, message=f"waiting for {what}")


def css(browser, selector: str):
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, selector)


def all_css(browser, selector: str):
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, selector)


def sign_in(browser, console: ConsoleProcess, token: str) -> None:
    browser.get(console.url + "/incidents")
    until(browser, lambda b: b.current_url.startswith(console.url + "/signin"), "the sign-in page")
    css(browser, "#token").send_keys(token)
    css(browser, "form button[type=submit]").click()
    until(browser, lambda b: b.current_url.startswith(console.url + "/incidents"), "the incidents page")


def alert(namespace: str, name: str) -> dict:
    from paramedic.domain.alert import labels_fingerprint
    from paramedic.domain.timeutil import iso_ms, utcnow

    labels = {"alertname": name, "severity": "critical", "namespace": namespace, "service": "checkout"}
    return {"version": "4", "receiver": "paramedic", "status": "firing", "groupKey": "{}:{}", "groupLabels": {},
            "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://127.0.0.1:9093", "truncatedAlerts": 0,
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": "checkout answers 503"},
                        "startsAt": iso_ms(utcnow()), "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
                        "fingerprint": labels_fingerprint(labels)}]}


def test_a_responder_works_an_incident_from_alert_to_report(kubeconfig, kube_client, tenants, operators, tmp_path,
                                                            chrome, console):
    a, _ = tenants
    operators(kubeconfig, a.namespace)
    token = "e2e-" + uuid.uuid4().hex
    webhook = WebhookProcess(kubeconfig, a.namespace, tmp_path, token).start()
    try:
        chrome.get(console.url + "/signin")
        shot(chrome, "signin")
        # Keyboard first: the first Tab reaches the skip link.
        from selenium.webdriver.common.keys import Keys
        css(chrome, "body").send_keys(Keys.TAB)
        assert chrome.switch_to.active_element.get_attribute("class") == "skip"
        sign_in(chrome, console, a.token)
        assert a.username in css(chrome, ".who").text
        assert not all_css(chrome, "tbody tr[data-incident]")
        chrome.execute_script("window.paramedicNoReload = true")

        # An alert opens an incident through the real receiver; it shows up without a reload.
        resp = httpx.post(webhook.url + "/api/v1/alertmanager", json=alert(a.namespace, "CheckoutDown"),
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 200, resp.text
        row = until(chrome, lambda b: all_css(b, "tbody tr[data-incident]"), "the new incident in the list")[0]
        assert chrome.execute_script("return window.paramedicNoReload") is True
        assert "CheckoutDown" in row.text or "checkout" in row.text
        assert css(chrome, "[data-count=open]").text == "1"
        shot(chrome, "incidents")
        ns, name = row.get_attribute("data-incident").split("/")

        css(chrome, "tbody tr[data-incident] a").click()
        until(chrome, lambda b: b.current_url.endswith(f"/ns/{ns}/incidents/{name}"), "the incident page")
        assert css(chrome, "#state").text == "open"
        assert all_css(chrome, "a.generatorURL")
        assert not all_css(chrome, "#action-closed")  # closing is offered only once resolved
        css(chrome, "#reason").send_keys("looking at it")
        css(chrome, "#action-acknowledged").click()
        until(chrome, lambda b: css(b, "#state").text == "acknowledged", "acknowledged")

        # The operator records the person's Kubernetes identity as the actor.
        def timeline_names_me(b) -> bool:
            b.refresh()
            return a.username in css(b, "ol.timeline").text
        until(chrome, timeline_names_me, "the timeline to name the person")
        shot(chrome, "incident")

        # A comment, signed as the person.
        css(chrome, "#comment-text").send_keys("checking the <pool>")
        css(chrome, "#action-comment").click()
        until(chrome, lambda b: "checking the <pool>" in css(b, "#entries").text, "the comment on the page")
        assert a.username in css(chrome, "#entries").text
        comments = kube_client.get(kube.INCIDENTS, name, ns)["spec"]["comments"]
        assert [(c["author"], c["text"]) for c in comments] == [(a.username, "checking the <pool>")]

        css(chrome, "#action-resolved").click()
        until(chrome, lambda b: css(b, "#state").text == "resolved", "resolved")
        assert css(chrome, "button[title='write the root cause first']").get_attribute("disabled")
        css(chrome, "#rca-rootCause").send_keys("a bad release of checkout")
        css(chrome, "#rca-correctiveActions").send_keys("rolled back")
        css(chrome, "#action-rca").click()
        close = until(chrome, lambda b: all_css(b, "#action-closed"), "the Close button once a root cause is written")
        close[0].click()
        until(chrome, lambda b: css(b, "#state").text == "closed", "closed")
        assert "a bad release of checkout" in css(chrome, "article.markdown").text
        shot(chrome, "incident-closed")

        css(chrome, "#download-report").click()
        report = until(chrome, lambda b: [p for p in b.downloads.glob("*.md")], "the Markdown report download")[0]
        text = report.read_text()
        assert text.startswith("# Post-mortem") and "a bad release of checkout" in text and name in text

        got = kube_client.get(kube.INCIDENTS, name, ns)
        assert got["spec"]["state"] == "closed" and got["spec"]["rca"]["rootCause"] == "a bad release of checkout"

        for page in ("services", "oncall", "insights"):
            chrome.get(f"{console.url}/{page}")
            until(chrome, lambda b: css(b, "h1").text, page)
            shot(chrome, page)
        assert len(all_css(chrome, "svg.chart")) == 6

        # Phone width: the page fits, wide tables scroll inside their box.
        chrome.set_window_size(390, 844)
        chrome.get(console.url + "/incidents")
        until(chrome, lambda b: all_css(b, "tbody tr[data-incident]"), "the list at phone width")
        assert chrome.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        shot(chrome, "incidents-phone")
    finally:
        webhook.stop()


def test_a_read_only_person_gets_no_actions_and_a_forged_post_is_a_403(kube_client, tenants, chrome, console):
    a, _ = tenants
    inc = make_incident(kube_client, a.namespace, "Look, don't touch")
    name = inc["metadata"]["name"]
    # Evidence as the operator writes it, with markup in an Event's message: shown as text, never run.
    hostile = "<img src=x onerror=\"window.pwned=1\"><script>window.pwned=1</script>"
    kube_client.patch(kube.INCIDENTS, name, {"status": {
        "evidence": {"target": "Deployment/checkout", "gatheredAt": "2026-03-01T11:56:00Z", "rollouts": [],
                     "containers": [], "nodes": [], "logs": [],
                     "events": [{"ref": "event/e1", "time": "2026-03-01T11:54:00Z", "object": "Pod/checkout-x",
                                 "reason": "BackOff", "message": hostile, "count": 3}]},
        "hints": [{"rule": "crash-loop", "summary": "checkout-x restarts", "suggestedAction": "inspect-logs",
                   "evidence": ["event/e1"]}]}}, a.namespace, subresource="status")
    viewer, _ = person(kube_client, a.namespace, "viewer", READ_ONLY_RULES)
    sign_in(chrome, console, viewer)
    chrome.get(f"{console.url}/ns/{a.namespace}/incidents/{name}")
    until(chrome, lambda b: css(b, "#state").text == "open", "the incident page")
    assert not all_css(chrome, "button[name=state]") and not all_css(chrome, "#rca-form")
    assert not all_css(chrome, "#action-assign") and not all_css(chrome, "#comment-form")
    assert hostile in css(chrome, "#ev-event-e1").text and "checkout-x restarts" in css(chrome, "#h-hints + ol").text
    assert chrome.execute_script("return window.pwned") is None and not all_css(chrome, "img[src=x]")
    shot(chrome, "incident-read-only")
    # A forged form with a valid CSRF token (the one the page carries for sign-out).
    chrome.execute_script("""
        const form = document.createElement('form');
        form.method = 'post'; form.action = arguments[0];
        for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value], ['state', 'acknowledged']]) {
            const input = document.createElement('input'); input.name = k; input.value = v; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
    """, f"/ns/{a.namespace}/incidents/{name}/state")
    until(chrome, lambda b: "403" in css(b, "h1").text, "the 403 page")
    assert "refused this with your credentials" in css(chrome, "main").text
    shot(chrome, "forbidden")
    assert kube_client.get(kube.INCIDENTS, name, a.namespace)["spec"].get("state", "open") == "open"
