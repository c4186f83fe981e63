"""Tenant attacks on Paramedic's outbound requests (issue #16, SSRF), against the real API
server and the real operator.

A namespace user writes probe URLs and per-service hook URLs. Loopback stands in for
every address the operator must not reach (cloud metadata above all: its addresses are
never contacted, not even here); a stand-in server counts every request it gets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from devtools.rawserver import RawServer
from paramedic import kube
from tests.helpers import wait_for, wait_object

pytestmark = pytest.mark.e2e

REFUSED = "is a loopback address, refused unless PARAMEDIC_OUTBOUND_ALLOW_CIDRS names it"
PROBE_REFUSED = "refused: the target is a loopback address"


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


def hook_entry(inc: dict) -> dict | None:
    """The incident's webhook delivery entry once it is no longer pending."""
    return next((e for e in (inc.get("status") or {}).get("notifications") or []
                 if e.get("channel") == "webhook" and e.get("result") != "pending"), None)


def hook_outcome(client, namespace: str, incident: str, what: str) -> dict:
    """The incident's webhook delivery entry, waited for."""
    return hook_entry(wait_object(client, kube.INCIDENTS, incident, namespace, hook_entry, 60, what))


def service_when(client, namespace: str, name: str, predicate, what: str) -> dict:
    """The MonitoredService's status once `predicate` holds over all of it."""
    return wait_object(client, kube.MONITORED_SERVICES, name, namespace, lambda s: predicate(s["status"]), 60,
                       what)["status"]


def test_loopback_in_every_form_is_refused_by_default(tenants, kube_client, kubeconfig, operators, stand_in):
    team, _ = tenants
    # The default: no admin allowlist (the test harness sets one, so it is emptied here).
    operators(kubeconfig, team.namespace, env={"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": ""})
    forms = {"plain": "127.0.0.1", "mapped": "[::ffff:127.0.0.1]", "decimal": "2130706433"}
    for name, host in forms.items():
        base = f"http://{host}:{stand_in.port}"
        create_as_tenant(team, name, f"{base}/healthz", f"{base}/hook/{name}")

    for name in forms:
        last = service_when(kube_client, team.namespace, name, lambda s: s["lastProbe"]["ok"] is False,
                            f"the refused probe of {name} recorded")["lastProbe"]
        # A class and the operator's words: the target is named by its address class only.
        assert last["reason"] == "ForbiddenAddress" and last["error"].startswith(PROBE_REFUSED), last

        entry = hook_outcome(kube_client, team.namespace, f"{name}-down-1", f"the refused hook of {name} recorded")
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
        entry = hook_outcome(kube_client, team.namespace, "split-down-1", "the probe's incident and its hook's outcome")
        last = kube_client.get(kube.MONITORED_SERVICES, "split", team.namespace)["status"]["lastProbe"]
        assert last.get("statusCode") == 503 and target.hits >= 1, last  # the probe went through
        assert entry["result"] == "failed" and REFUSED in entry["error"], entry  # the hook did not
        assert hook.hits == 0
    finally:
        target.stop()
        hook.stop()


CANARY = "CANARY-d41d8cd9-internal-detail"


class RawTarget(RawServer):
    """A loopback probe target speaking raw bytes, in a mode the test switches:
    "endless" (200 and a chunked body without end), "garbled" (not HTTP; its words carry the
    canary), "teapot" (503, the canary in its reason phrase, a header and the body) or "ok".
    Counts connections and, per connection, the bytes the client let it send."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.connections = 0
        self.sent: list[int] = []
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/healthz"

    def serve(self, conn: socket.socket) -> None:
        self.connections += 1
        sent = 0
        try:
            conn.settimeout(10)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            if self.mode == "endless":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
                chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
                while not self._stop.is_set():  # until the client hangs up
                    conn.sendall(chunk)
                    sent += len(chunk)
            elif self.mode == "garbled":
                conn.sendall(f"{CANARY} says no\r\n\r\n".encode())
            elif self.mode == "teapot":
                body = f"internal error at {CANARY}".encode()
                conn.sendall(f"HTTP/1.1 503 {CANARY}\r\nX-Detail: {CANARY}\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n".encode() + body)
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        except OSError:
            pass
        finally:
            self.sent.append(sent)
            conn.close()



def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def serving_metrics(op) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def probe_only(name: str, url: str, **probe: object) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "target": {"name": name}, "severity": "low",
        "probe": {"url": url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 1, **probe}}}


def test_a_probe_of_an_endless_body_reads_a_bounded_part_and_the_operator_lives(tenants, kube_client, kubeconfig,
                                                                                operators):
    team, _ = tenants
    target = RawTarget("endless")
    try:
        # The admin allowlists loopback for probes alone: the stand-in of a tenant's own server.
        op = operators(kubeconfig, team.namespace, env={"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "",
                                                       "PARAMEDIC_PROBE_ALLOW_CIDRS": "127.0.0.1/32"})
        wait_for(lambda: serving_metrics(op), 60, "the operator serving /metrics")
        time.sleep(2)
        idle = rss_mb(op.proc.pid)
        tenant = team.client()
        try:
            tenant.create(kube.MONITORED_SERVICES, probe_only("firehose", target.url, timeoutSeconds=5,
                                                              intervalSeconds=5), team.namespace)
        finally:
            tenant.close()

        status = service_when(kube_client, team.namespace, "firehose", lambda s: s["health"] == "Healthy",
                              "the endless target probed and Healthy (its status judged, not its body)")
        wait_for(lambda: len(target.sent) >= 3, 60, "three probes of the endless target over")
        last = status["lastProbe"]
        assert last["ok"] is True and last["statusCode"] == 200 and last["latencyMs"] < 5000, last
        assert op.proc.poll() is None, "the operator is alive"
        # Each probe hung up after a bounded read: the target pushed what the kernel's buffers
        # take, never the stream (which would run for the whole 5 s timeout, gigabytes on loopback).
        assert max(target.sent) < 32 * 1024 * 1024, target.sent
        grown = rss_mb(op.proc.pid) - idle
        assert grown < 50, f"the operator's RSS grew by {grown:.0f} MB"
    finally:
        target.stop()


def test_probe_failures_record_a_class_never_the_targets_words_and_recovery_clears_them(
        tenants, kube_client, kubeconfig, operators):
    team, _ = tenants
    garbled, teapot = RawTarget("garbled"), RawTarget("teapot")
    try:
        op = operators(kubeconfig, team.namespace, env={"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "",
                                                       "PARAMEDIC_PROBE_ALLOW_CIDRS": "127.0.0.1/32"})
        tenant = team.client()
        try:
            for name, target in (("garbled", garbled), ("teapot", teapot)):
                tenant.create(kube.MONITORED_SERVICES, probe_only(name, target.url), team.namespace)
        finally:
            tenant.close()

        def failed(name: str) -> dict:
            return service_when(kube_client, team.namespace, name, lambda s: s["lastProbe"]["ok"] is False,
                                f"{name}'s failure recorded")["lastProbe"]

        last = failed("garbled")
        assert last["reason"] == "BadResponse" and last["error"] == "not a valid HTTP response", last
        assert "statusCode" not in last, last  # the parser's made-up 400 is no answer
        last = failed("teapot")
        assert last["reason"] == "UnexpectedStatus" and last["error"] == "status 503, expected 200", last
        assert last["statusCode"] == 503
        wait_for(lambda: len(kube_client.list(kube.INCIDENTS, team.namespace)) >= 2, 60, "both incidents opened")
        places = {"services": json.dumps(kube_client.list(kube.MONITORED_SERVICES, team.namespace)),
                  "incidents": json.dumps(kube_client.list(kube.INCIDENTS, team.namespace)),
                  "events": json.dumps(kube_client.list(kube.EVENTS, team.namespace)),
                  "operator log": op.logs()}
        assert not [where for where, text in places.items() if CANARY in text], places

        # Recovery: the fields a success does not have are gone from the API server's copy
        # (a merge patch that merely left them out would keep the old error).
        garbled.mode = "ok"

        status = service_when(kube_client, team.namespace, "garbled", lambda s: s["health"] == "Healthy",
                              "garbled Healthy again")
        assert status["lastProbe"]["ok"] is True and status["lastProbe"]["statusCode"] == 200, status
        assert "error" not in status["lastProbe"] and "reason" not in status["lastProbe"], status["lastProbe"]
    finally:
        garbled.stop()
        teapot.stop()
