"""Tenant attacks on Paramedic's outbound requests (issue #16, SSRF), against the real API
server and the real operator.

A namespace user writes probe URLs and per-service hook URLs. Loopback stands in for
every address the operator must not reach (cloud metadata above all: its addresses are
never contacted, not even here); a stand-in server counts every request it gets.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from paramedic import kube
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

REFUSED = "is a loopback address, refused unless PARAMEDIC_OUTBOUND_ALLOW_CIDRS names it"


class Hook:
    """A hook server on loopback that counts requests and answers `status` with `body`."""

    def __init__(self, status: int = 200, body: bytes = b"ok") -> None:
        self.hits = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer()

            def _answer(self) -> None:
                hook.hits += 1
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in():
    server = Hook()
    yield server
    server.stop()


def service(name: str, probe_url: str, hook_url: str) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "target": {"name": name}, "severity": "low",
        "probe": {"url": probe_url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1},
        "notify": {"webhookURL": hook_url}}}


def create_as_tenant(team, name: str, probe_url: str, hook_url: str) -> None:
    """The tenant writes the MonitoredService with its own token."""
    tenant = team.client()
    try:
        tenant.create(kube.MONITORED_SERVICES, service(name, probe_url, hook_url), team.namespace)
    finally:
        tenant.close()


def hook_outcome(client, namespace: str, incident: str) -> dict | None:
    """The incident's webhook delivery entry once it is no longer pending."""
    inc = client.get_or_none(kube.INCIDENTS, incident, namespace) or {}
    return next((e for e in (inc.get("status") or {}).get("notifications") or []
                 if e.get("channel") == "webhook" and e.get("result") != "pending"), None)


def test_loopback_in_every_form_is_refused_by_default(tenants, kube_client, kubeconfig, operators, stand_in):
    team, _ = tenants
    # The default: no admin allowlist (the test harness sets one, so it is emptied here).
    operators(kubeconfig, team.namespace, env={"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": ""})
    forms = {"plain": "127.0.0.1", "mapped": "[::ffff:127.0.0.1]", "decimal": "2130706433"}
    for name, host in forms.items():
        base = f"http://{host}:{stand_in.port}"
        create_as_tenant(team, name, f"{base}/healthz", f"{base}/hook/{name}")

    for name in forms:
        def refused_probe(name: str = name) -> dict | None:
            status = kube_client.get(kube.MONITORED_SERVICES, name, team.namespace).get("status") or {}
            last = status.get("lastProbe") or {}
            return last if last and not last.get("ok", True) else None

        last = wait_for(refused_probe, 60, f"the refused probe of {name} recorded")
        assert last["error"].startswith("refused: ") and REFUSED in last["error"], last

        entry = wait_for(lambda name=name: hook_outcome(kube_client, team.namespace, f"{name}-down-1"), 60,
                         f"the refused hook of {name} recorded")
        # Refused once within the call, never sent, and final: no later delivery round.
        assert entry["result"] == "failed" and entry["attempts"] == 1 and "nextAttemptAt" not in entry, entry
        assert entry["error"].startswith("webhook hook http://") and REFUSED in entry["error"], entry
    assert stand_in.hits == 0, "no probe and no hook reached the loopback stand-in"


def test_an_allowlisted_hook_never_copies_its_answer_into_the_incident(tenants, kube_client, kubeconfig, operators):
    _, team = tenants
    secret = f"SECRET-{uuid.uuid4().hex}"
    hook = Hook(status=500, body=f"internal error, token={secret}".encode())
    target = Hook(status=503, body=b"down")
    try:
        op = operators(kubeconfig, team.namespace, env={"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "127.0.0.1/32"})
        create_as_tenant(team, "leaky", f"http://127.0.0.1:{target.port}/healthz", f"http://127.0.0.1:{hook.port}/hook")

        def failed_delivery() -> list | None:
            incs = kube_client.list(kube.INCIDENTS, team.namespace)
            for inc in incs:
                for entry in (inc.get("status") or {}).get("notifications") or []:
                    if entry.get("channel") == "webhook" and entry.get("result") in ("failed", "retrying"):
                        return incs
            return None

        incs = wait_for(failed_delivery, 60, "the hook's 500 recorded")
        assert hook.hits >= 1, "the allowlisted hook was called"
        entry = next(e for e in incs[0]["status"]["notifications"] if e.get("channel") == "webhook")
        assert entry["error"].endswith("answered HTTP 500 Internal Server Error"), entry
        places = {"incidents": json.dumps(incs),
                  "events": json.dumps(kube_client.list(kube.EVENTS, team.namespace)),
                  "operator log": op.logs()}
        assert not [where for where, text in places.items() if secret in text or "internal error" in text], places
    finally:
        hook.stop()
        target.stop()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://example.com/", "http://"])
def test_hook_urls_other_than_http_are_refused_at_admission(tenants, url):
    team, _ = tenants
    with pytest.raises(kube.ApiError) as err:  # refused at admission: nothing is ever probed
        create_as_tenant(team, "odd", "http://example.com/", url)
    assert err.value.status == 422 and "notify.webhookURL must" in str(err.value), err.value


def test_a_probe_only_allowlist_lets_probes_through_and_never_hooks(tenants, kube_client, kubeconfig, operators):
    team, _ = tenants
    target, hook = Hook(status=503, body=b"down"), Hook()
    try:
        operators(kubeconfig, team.namespace, env={"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "",
                                                   "PARAMEDIC_PROBE_ALLOW_CIDRS": "127.0.0.1/32"})
        create_as_tenant(team, "split", f"http://127.0.0.1:{target.port}/healthz", f"http://127.0.0.1:{hook.port}/hook")
        entry = wait_for(lambda: hook_outcome(kube_client, team.namespace, "split-down-1"), 60,
                         "the probe's incident and its hook's outcome")
        last = kube_client.get(kube.MONITORED_SERVICES, "split", team.namespace)["status"]["lastProbe"]
        assert last.get("statusCode") == 503 and target.hits >= 1, last  # the probe went through
        assert entry["result"] == "failed" and REFUSED in entry["error"], entry  # the hook did not
        assert hook.hits == 0
    finally:
        target.stop()
        hook.stop()
