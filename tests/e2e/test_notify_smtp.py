"""Notification delivery against real servers on loopback: aiosmtpd (plain, STARTTLS,
implicit TLS, AUTH) and a small HTTP server standing in for Slack and a generic webhook.
No cluster needed, but for the last test: hostile alert text through the real receiver and operator."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from prometheus_client import REGISTRY

from paramedic import kube, netguard
from paramedic.domain import notify_render as nr
from paramedic.notify import Notifier
from paramedic.settings import Settings

pytestmark = pytest.mark.e2e

INCIDENT = {
    "metadata": {"name": "checkout-7f3a", "namespace": "shop"},
    "spec": {"service": "checkout", "severity": "critical", "title": "checkout is down",
             "description": "probe_success == 0 for 1m", "state": "open", "assignee": "alice@example.com",
             "runbookURL": "https://runbooks.example.com/checkout"},
}
RECIPIENTS = ["alice@example.com", "ops@example.com"]
SLACK_SECRET = "XXXXSECRETXXXX"


def notification(event: str = "opened", detail: str = "3 consecutive probe failures: HTTP 503") -> nr.Notification:
    return nr.notification_from_incident(INCIDENT, event, detail, RECIPIENTS, "https://grafana.example.com/d/p")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sent_count(channel: str, result: str) -> float:
    return REGISTRY.get_sample_value("paramedic_notifications_sent_total",
                                     {"channel": channel, "result": result}) or 0.0


# --- SMTP server -----------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    tls: bool
    login: bytes | None


class Recorder:
    """aiosmtpd handler keeping every envelope it accepts."""

    def __init__(self) -> None:
        self.received: list[Received] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message,
                                      session.ssl is not None, login))
        return "250 Message accepted"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"bot" and auth_data.password == b"s3cret"
    # handled=False: aiosmtpd answers 535 itself on failure.
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> tuple[ssl.SSLContext, Path]:
    """A private CA and a server certificate for 127.0.0.1; the CA as a PEM file for the client."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    ca_file = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server_ctx, ca_file


@pytest.fixture
def smtp_server():
    """Start aiosmtpd controllers on demand; all stopped after the test."""
    started: list[Controller] = []

    def start(port: int | None = None, **kwargs) -> tuple[Controller, Recorder]:
        recorder = Recorder()
        controller = Controller(recorder, hostname="127.0.0.1", port=port or free_port(),
                                server_hostname="mx.test", **kwargs)
        controller.start()
        started.append(controller)
        return controller, recorder

    yield start
    for controller in started:
        try:
            controller.stop()
        except AssertionError:  # already stopped by the test
            pass


def settings(port: int, **overrides) -> Settings:
    values = dict(smtp_host="127.0.0.1", smtp_port=port, smtp_from="Paramedic <paramedic@example.com>",
                  smtp_timeout_seconds=5.0)
    values.update(overrides)
    return Settings(**values)  # validated as it is built (SettingsError)


def deliver(s: Settings, n: nr.Notification | None = None, channels=frozenset({"email"}), **kwargs):
    async def run():
        async with Notifier(s, tries=kwargs.pop("tries", 2), backoff=0.05, max_backoff=0.1,
                            http_timeout=kwargs.pop("http_timeout", 5.0)) as notifier:
            return await notifier.deliver(n or notification(), set(channels), **kwargs)
    return asyncio.run(run())


def assert_mail(received: Received) -> None:
    assert received.mail_from == "paramedic@example.com"
    assert received.rcpt_tos == RECIPIENTS
    msg = received.message
    # strip(): a header folded right after "Subject:" unfolds with a leading space that
    # Python's parser keeps and mail clients drop.
    assert msg["Subject"].strip() == "[Paramedic] [CRITICAL] Incident opened: checkout is down (shop/checkout-7f3a)"
    assert [a.addr_spec for a in msg["To"].addresses] == RECIPIENTS
    assert msg["Message-ID"] and msg["Date"]
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        assert "3 consecutive probe failures: HTTP 503" in body
        assert "https://runbooks.example.com/checkout" in body
        assert "kubectl paramedic ack checkout-7f3a -n shop" in body
    assert '<a href="https://runbooks.example.com/checkout">' in html


# --- SMTP tests -------------------------------------------------------------------------


def test_plain_smtp_delivers_text_and_html(smtp_server):
    controller, recorder = smtp_server()
    before = sent_count("email", "sent")
    [result] = deliver(settings(controller.port))
    assert result.ok and result.channel == "email" and result.attempts == 1 and result.error == ""
    assert result.recipients == RECIPIENTS
    assert len(recorder.received) == 1
    assert_mail(recorder.received[0])
    assert not recorder.received[0].tls
    assert sent_count("email", "sent") == before + 1


def test_a_page_sent_again_keeps_its_message_id_and_each_send_has_its_own(smtp_server):
    # A replica that takes over before the first send was recorded sends the page again: mail
    # systems show the two as one (one Message-ID), while each send stays traceable.
    controller, recorder = smtp_server()
    page = dataclasses.replace(notification(), delivery_id="0b7c5f5e-uid.opened")
    deliver(settings(controller.port), page)
    deliver(settings(controller.port), page)
    deliver(settings(controller.port), dataclasses.replace(page, delivery_id="0b7c5f5e-uid.escalated:2"))
    first, again, other = (r.message for r in recorder.received)
    assert first["Message-ID"] == again["Message-ID"] == "<paramedic.0b7c5f5e-uid.opened@example.com>"
    assert other["Message-ID"] == "<paramedic.0b7c5f5e-uid.escalated-2@example.com>"
    assert len({m["X-Paramedic-Send-ID"] for m in (first, again, other)}) == 3
    assert nr.render_webhook(page)["deliveryId"] == "0b7c5f5e-uid.opened"


def test_starttls_with_private_ca_and_auth(smtp_server, tls, tmp_path):
    server_ctx, ca_file = tls
    controller, recorder = smtp_server(tls_context=server_ctx, require_starttls=True,
                                       authenticator=authenticator, auth_required=True)
    password_file = tmp_path / "password"
    password_file.write_text("s3cret\n")
    s = settings(controller.port, smtp_security="starttls", smtp_ca_file=str(ca_file),
                 smtp_username="bot", smtp_password_file=str(password_file))
    [result] = deliver(s)
    assert result.ok, result.error
    [received] = recorder.received
    assert received.tls and received.login == b"bot"
    assert_mail(received)


def test_starttls_refuses_an_untrusted_certificate_without_retrying(smtp_server, tls):
    server_ctx, _ = tls
    controller, recorder = smtp_server(tls_context=server_ctx, require_starttls=True)
    [result] = deliver(settings(controller.port, smtp_security="starttls"), tries=3)
    assert not result.ok and result.attempts == 1
    assert "not trusted" in result.error and "127.0.0.1" in result.error
    assert recorder.received == []


def test_wrong_password_fails_cleanly_and_never_shows_the_password(smtp_server, tls):
    server_ctx, ca_file = tls
    controller, recorder = smtp_server(tls_context=server_ctx, require_starttls=True,
                                       authenticator=authenticator, auth_required=True)
    s = settings(controller.port, smtp_security="starttls", smtp_ca_file=str(ca_file),
                 smtp_username="bot", smtp_password="hunter2-wrong")
    [result] = deliver(s, tries=3)
    assert not result.ok and result.attempts == 1  # permanent: retrying will not fix it
    assert "refused login" in result.error and "535" in result.error
    assert "hunter2" not in result.error
    assert recorder.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_without_tls_when_the_server_allows_it(smtp_server):
    controller, recorder = smtp_server(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    [result] = deliver(settings(controller.port, smtp_username="bot", smtp_password="s3cret"))
    assert result.ok, result.error
    assert recorder.received[0].login == b"bot" and not recorder.received[0].tls


def test_implicit_tls(smtp_server, tls):
    server_ctx, ca_file = tls
    controller, recorder = smtp_server(ssl_context=server_ctx)
    [result] = deliver(settings(controller.port, smtp_security="tls", smtp_ca_file=str(ca_file)))
    assert result.ok, result.error
    [received] = recorder.received
    assert_mail(received)


def test_server_down_fails_fast_then_delivers_when_it_is_back(smtp_server):
    port = free_port()
    s = settings(port, smtp_timeout_seconds=2.0)
    failed_before = sent_count("email", "failed")
    started = time.monotonic()
    [result] = deliver(s, tries=2)
    assert time.monotonic() - started < 2.0
    assert not result.ok and result.attempts == 2
    assert f"cannot connect to SMTP 127.0.0.1:{port}" in result.error
    assert "refused" in result.error.lower()
    assert sent_count("email", "failed") == failed_before + 2  # every try is counted

    # The operator records it for a later round...
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    entries = nr.record_delivery([], nr.notification_key("opened"), "opened", result, now)
    assert entries[0]["result"] == "retrying" and "cannot connect" in entries[0]["error"]

    # ...and the next round, with the server back on the same port, gets through.
    controller, recorder = smtp_server(port=port)
    [result] = deliver(s)
    assert result.ok, result.error
    assert_mail(recorder.received[0])
    entries = nr.record_delivery(entries, nr.notification_key("opened"), "opened", result, now)
    assert entries[0]["result"] == "sent" and entries[0]["attempts"] == 2


def test_silent_server_times_out_without_blocking_the_event_loop():
    """Something accepts connections but never greets: the try ends at the timeout, and the
    event loop keeps running meanwhile (smtplib runs in a thread)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # never accepted: connect succeeds, no greeting ever comes
    try:
        s = settings(listener.getsockname()[1], smtp_timeout_seconds=0.5)

        async def run():
            ticks = 0

            async def ticker():
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.02)
                    ticks += 1

            task = asyncio.create_task(ticker())
            async with Notifier(s, tries=1) as notifier:
                started = time.monotonic()
                [result] = await notifier.deliver(notification(), {"email"})
                elapsed = time.monotonic() - started
            task.cancel()
            return result, elapsed, ticks

        result, elapsed, ticks = asyncio.run(run())
    finally:
        listener.close()
    assert not result.ok and "timed out" in result.error
    assert 0.4 < elapsed < 3.0
    assert ticks >= 10


def test_unconfigured_channels_are_skipped_not_failed():
    skipped_before = sent_count("email", "skipped")
    results = deliver(Settings(), channels={"email", "slack", "webhook"})
    assert {r.channel: r.result for r in results} == {"email": "skipped", "slack": "skipped", "webhook": "skipped"}
    assert "PARAMEDIC_SMTP_HOST" in results[0].error
    assert sent_count("email", "skipped") == skipped_before + 1


def test_no_recipients_is_skipped(smtp_server):
    controller, recorder = smtp_server()
    n = nr.notification_from_incident(INCIDENT, "opened", "x", ["", "not-an-address"])
    [result] = deliver(settings(controller.port), n)
    assert result.skipped and result.error == "no recipients"
    assert recorder.received == []


# --- HTTP webhooks ----------------------------------------------------------------------


class HookServer:
    """Records JSON bodies; answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []
        self.status = 200
        self.location = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                outer.requests.append((self.path, body))
                payload = b"ok" if outer.status == 200 else b"internal_error"
                self.send_response(outer.status)
                if outer.location:
                    self.send_header("Location", outer.location)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    server = HookServer()
    yield server
    server.close()


LOOPBACK = ["127.0.0.0/8"]
"""The admin allowlist a hook server on loopback needs: hooks refuse loopback by default."""


def test_slack_and_webhook_bodies(hook):
    s = Settings(notify_webhook_url=hook.url + "/generic?token=abc", outbound_allow_cidrs=LOOPBACK)
    slack_url = f"{hook.url}/services/T000/B000/{SLACK_SECRET}"
    results = deliver(s, notification("remediation", "restart: rollout finished in 12 s"),
                      channels={"slack", "webhook", "email"}, slack_url=slack_url)
    by_channel = {r.channel: r for r in results}
    assert by_channel["slack"].ok and by_channel["webhook"].ok and by_channel["email"].skipped
    bodies = dict(hook.requests)
    slack = bodies[f"/services/T000/B000/{SLACK_SECRET}"]
    assert "checkout is down" in slack["text"]
    assert slack["blocks"][1]["text"]["text"] == "restart: rollout finished in 12 s"
    assert any("open runbook" in f["text"] for f in slack["blocks"][2]["fields"])
    generic = bodies["/generic?token=abc"]
    assert generic["event"] == "remediation" and generic["incident"]["name"] == "checkout-7f3a"
    assert generic["detail"] == "restart: rollout finished in 12 s"
    assert generic["commands"]["ack"] == "kubectl paramedic ack checkout-7f3a -n shop"


def test_webhook_500_is_a_failure_with_the_status_code_and_no_secret(hook):
    hook.status = 500
    failed_before = sent_count("slack", "failed")
    slack_url = f"{hook.url}/services/T000/B000/{SLACK_SECRET}"
    [result] = deliver(Settings(outbound_allow_cidrs=LOOPBACK), channels={"slack"}, slack_url=slack_url, tries=3)
    assert not result.ok and result.attempts == 3  # 5xx is transient: retried within the call
    port = hook.server.server_address[1]
    assert result.error == f"POST http://127.0.0.1:{port}/… answered HTTP 500 Internal Server Error"
    assert "internal_error" not in result.error, "the hook's response body is never copied"
    assert SLACK_SECRET not in result.error
    assert len(hook.requests) == 3
    assert sent_count("slack", "failed") == failed_before + 3
    entry = nr.record_delivery([], "opened", "opened", result, datetime(2026, 3, 1, tzinfo=UTC))[0]
    assert entry["result"] == "retrying" and "HTTP 500" in entry["error"]

    hook.status = 200
    [result] = deliver(Settings(slack_webhook_url=slack_url, outbound_allow_cidrs=LOOPBACK), channels={"slack"})
    assert result.ok


def test_webhook_4xx_is_permanent(hook):
    hook.status = 404
    [result] = deliver(Settings(notify_webhook_url=hook.url + "/gone", outbound_allow_cidrs=LOOPBACK),
                       channels={"webhook"}, tries=3)
    assert not result.ok and result.attempts == 1 and "HTTP 404" in result.error


def test_webhook_unreachable(hook):
    url = f"http://127.0.0.1:{free_port()}/services/{SLACK_SECRET}"
    [result] = deliver(Settings(outbound_allow_cidrs=LOOPBACK), channels={"slack"}, slack_url=url, tries=2)
    assert not result.ok and result.attempts == 2
    assert "cannot connect" in result.error and SLACK_SECRET not in result.error


def test_a_hook_name_that_does_not_resolve_is_retried(hook, monkeypatch):
    # A name that does not resolve is a transient failure, retried like a refused connection.
    monkeypatch.setattr(netguard.aiohttp, "ThreadedResolver", lambda: FakeResolver({}))
    [result] = deliver(Settings(), channels={"webhook"}, webhook_url="http://no-such-host.invalid/hook", tries=2)
    assert not result.ok and result.attempts == 2 and "cannot resolve the host" in result.error


class FakeResolver:
    """Stands in for the system resolver (no test asks the machine's DNS)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    async def resolve(self, host, port=0, family=socket.AF_INET):
        if host not in self.answers:
            raise OSError(f"{host} does not resolve")
        return [{"hostname": host, "host": self.answers[host], "port": port, "family": family, "proto": 0, "flags": 0}]

    async def close(self):
        return None


def refused_count(kind: str, reason: str) -> float:
    return REGISTRY.get_sample_value("paramedic_outbound_refused_total", {"kind": kind, "reason": reason}) or 0.0


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.1", "127.0.0.1.", "[::1]"])
def test_hooks_on_loopback_are_refused_by_default_in_every_form(hook, host):
    before = refused_count("hook", "loopback")
    url = f"http://{host}:{hook.server.server_address[1]}/services/{SLACK_SECRET}"
    [result] = deliver(Settings(), channels={"slack"}, slack_url=url, tries=3)
    assert not result.ok and result.attempts == 1, "refused once, never retried"
    assert "is a loopback address, refused unless PARAMEDIC_OUTBOUND_ALLOW_CIDRS names it" in result.error
    assert SLACK_SECRET not in result.error
    assert hook.requests == []
    assert refused_count("hook", "loopback") == before + 1


def test_hooks_refuse_private_addresses_unless_allowlisted(hook, monkeypatch):
    # Refused before any connection is tried: nothing leaves the machine.
    [result] = deliver(Settings(), channels={"webhook"}, webhook_url="http://10.96.0.10/hook", tries=2)
    assert not result.ok and result.attempts == 1 and "10.96.0.10 is a private address" in result.error

    # A name is checked on the address it resolves to, and that address is the one connected to.
    monkeypatch.setattr(netguard.aiohttp, "ThreadedResolver", lambda: FakeResolver({"hooks.example": "127.0.0.1"}))
    url = f"http://hooks.example:{hook.server.server_address[1]}/named"
    [result] = deliver(Settings(), channels={"webhook"}, webhook_url=url, tries=2)
    assert not result.ok and "hooks.example (127.0.0.1) is a loopback address" in result.error
    assert hook.requests == []
    [result] = deliver(Settings(outbound_allow_cidrs=["127.0.0.1/32"]), channels={"webhook"}, webhook_url=url)
    assert result.ok and [path for path, _ in hook.requests] == ["/named"]


def test_hooks_ignore_environment_proxies_and_redirects(hook, monkeypatch):
    proxy = HookServer()
    elsewhere = HookServer()
    try:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        allowed = Settings(outbound_allow_cidrs=LOOPBACK)
        [result] = deliver(allowed, channels={"webhook"}, webhook_url=hook.url + "/direct")
        assert result.ok and [path for path, _ in hook.requests] == ["/direct"]
        assert proxy.requests == [], "the environment's proxy is never used"

        hook.status = 307
        hook.location = elsewhere.url + "/moved"
        [result] = deliver(allowed, channels={"webhook"}, webhook_url=hook.url + "/redirect", tries=3)
        assert not result.ok and result.attempts == 1 and "answered HTTP 307 Temporary Redirect" in result.error
        assert elsewhere.requests == [], "redirects are never followed"
    finally:
        proxy.close()
        elsewhere.close()


def test_mail_and_slack_link_to_the_console_when_its_url_is_set(smtp_server, hook):
    controller, recorder = smtp_server()
    linked = nr.notification_from_incident(INCIDENT, "opened", "down", RECIPIENTS, "",
                                           console_url="https://console.example.com/")
    slack_url = f"{hook.url}/services/T000/B000/{SLACK_SECRET}"
    results = deliver(settings(controller.port, outbound_allow_cidrs=["127.0.0.1/32"]), linked,  # the loopback hook
                      channels={"email", "slack"}, slack_url=slack_url)
    assert all(r.ok for r in results)
    page = "https://console.example.com/ns/shop/incidents/checkout-7f3a"
    msg = recorder.received[0].message
    assert page in msg.get_body(preferencelist=("plain",)).get_content()
    assert f'<a href="{page}"' in msg.get_body(preferencelist=("html",)).get_content()
    slack = dict(hook.requests)[f"/services/T000/B000/{SLACK_SECRET}"]
    assert any(f"<{page}|open the incident>" in f["text"] for f in slack["blocks"][2]["fields"])
    # Without the setting there is no link at all.
    deliver(settings(controller.port))
    assert "console.example.com" not in recorder.received[1].message.as_string()


# --- hostile alert text through the real receiver and operator, to people ---------------------------

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
CURSOR_UP = "\x1b[2A\x1b[2K"
TERMINAL = ("\x1b", "\x07", "\x9b", "\u202e", "\x7f")


def test_hostile_alert_text_arrives_inert_by_mail_slack_and_the_cli(kube_client, namespace, operator_factory, hook,
                                                                   kubeconfig):
    """An alert whose summary and labels carry a Slack mention, markup, a clipboard write (OSC 52) and
    cursor moves, and a service whose runbook URL tries to end its Slack link: the e-mail, the Slack
    body and `kubectl paramedic show` show them as text and nothing acts on them."""
    import subprocess
    import sys

    from devtools.mail import MailSink
    from paramedic.webhook.app import create_app
    from tests.e2e.test_webhook import TOKEN as RECEIVER_TOKEN
    from tests.e2e.test_webhook import Receiver, am_alert, am_payload, receiver_settings
    from tests.helpers import smtp_env, wait_for

    kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "checkout"}, "spec": {
        "target": {"name": "checkout"}, "alertSelector": {"matchLabels": {"app": "checkout"}},
        "runbookURL": "https://runbooks.example.com/x><!channel>|click"}}, namespace)
    summary = f"Checkout down <!channel> <script>alert(1)</script> {OSC52}{CURSOR_UP}hidden \u202eevil"
    alert = am_alert("CheckoutDown", app="checkout", namespace=namespace, note=f"<!here>{OSC52}")
    alert["annotations"] = {"summary": summary, "description": f"<img src=x onerror=alert(1)>{CURSOR_UP}"}
    mail = MailSink().start()
    receiver = Receiver(create_app(receiver_settings(namespace), kube_client))
    try:
        slack_path = f"/services/T000/B000/{SLACK_SECRET}"
        operator_factory(namespace, env={**smtp_env(mail.port), "PARAMEDIC_SLACK_WEBHOOK_URL": hook.url + slack_path,
                                         "PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8",
                                         "PARAMEDIC_NOTIFY_EVIDENCE_WAIT_SECONDS": "0"})
        with httpx.Client(headers={"Authorization": f"Bearer {RECEIVER_TOKEN}"}, timeout=30) as http:
            resp = http.post(receiver.url + "/api/v1/alertmanager", json=am_payload(alert))
            assert resp.status_code == 200, resp.text
        [inc] = kube_client.list(kube.INCIDENTS, namespace)
        name = inc["metadata"]["name"]
        [message] = wait_for(lambda: mail.messages or None, 60, "the opened e-mail")
        slack = wait_for(lambda: dict(hook.requests).get(slack_path), 60, "the Slack message")
    finally:
        receiver.stop()
        mail.stop()

    # E-mail: one-line subject, no terminal controls anywhere, markup escaped in the HTML part.
    subject, text, html = message["subject"], message["text"], message["html"]
    assert "Checkout down" in subject and "hidden" in subject
    for part in (subject, text, html):
        assert not any(c in part for c in TERMINAL), repr(part)
        assert "52;c;" not in part and "[2A" not in part
    assert "\r" not in subject and "\n" not in subject
    raw_headers = message["raw"].split(b"\r\n\r\n", 1)[0].decode()
    assert "\x1b" not in raw_headers
    assert "<script>" not in html and "<img" not in html and "&lt;script&gt;" in html and "&lt;!channel&gt;" in html
    assert "<script>alert(1)</script>" in text  # plain text: markup is only text there

    # Slack: no mention, no markup, and the runbook link keeps its target with `>`, `<` and `|` encoded.
    mrkdwn = [slack["text"], slack["blocks"][1]["text"]["text"]] + [f["text"] for f in slack["blocks"][2]["fields"]]
    joined = "\n".join(mrkdwn)
    assert "<!channel>" not in joined and "<!here>" not in joined and "<script>" not in joined
    assert "&lt;!channel&gt;" in joined
    assert "<https://runbooks.example.com/x%3E%3C!channel%3E%7Cclick|open runbook>" in joined
    assert not any(c in joined + slack["blocks"][0]["text"]["text"] for c in TERMINAL)

    # The CLI as a person runs it: the same incident, shown as text.
    cli = Path(sys.executable).parent / "kubectl-paramedic"
    shown = subprocess.run([str(cli), "--kubeconfig", str(kubeconfig), "-n", namespace, "show", name],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert not any(c in shown.stdout for c in TERMINAL + ("\r",)), repr(shown.stdout)
    assert "Checkout down <!channel> <script>alert(1)</script>" in shown.stdout and "hidden" in shown.stdout
    listed = subprocess.run([str(cli), "--kubeconfig", str(kubeconfig), "-n", namespace, "list"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and name in listed.stdout and "\x1b" not in listed.stdout
