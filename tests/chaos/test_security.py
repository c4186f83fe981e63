"""Security properties under use: the receiver needs a token, secrets never surface in
logs, status or Events, and probes never reach metadata addresses.

Covered elsewhere and not repeated here: least-privilege RBAC (tests/e2e/test_packaging.py
`kubectl auth can-i` checks and tests/chart/test_chart_files.py), non-root pods with a
read-only root filesystem (tests/chart/test_chart_files.py), the SMTP password on a failed
login (tests/e2e/test_notify_smtp.py).
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from devtools.cluster import free_port
from paramedic import kube
from tests.e2e.test_webhook import am_alert, am_payload
from tests.helpers import WebhookProcess, wait_object

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

EVENTS_CORE = kube.Resource("", "v1", "events", "Event")


def test_the_receiver_refuses_to_start_without_a_token(kubeconfig, namespace, tmp_path):
    # Also covered: tests/unit/test_webhook_http.py (create_app) and tests/e2e/test_webhook.py (no token at all).
    blank = WebhookProcess(kubeconfig, namespace, tmp_path, token="   ")  # a token file of whitespace is no token
    blank.start(wait=False)
    assert blank.proc.wait(timeout=60) == 2 and "bearer token" in blank.logs()
    insecure = WebhookProcess(kubeconfig, namespace, tmp_path, token=" ", env={"PARAMEDIC_WEBHOOK_INSECURE": "1"})
    try:
        insecure.start()
        resp = httpx.post(insecure.url + "/api/v1/alertmanager", json=am_payload(), timeout=10)
        assert resp.status_code == 200, "insecure mode is the one way to run without a token"
        assert "no webhook token configured" in insecure.logs()
    finally:
        insecure.stop()


class FailingHook:
    """A chat webhook on loopback that always answers 500 (its URL path is a secret)."""

    def __init__(self) -> None:
        self.hits = 0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                hook.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(500)
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"oops")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, secret: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/services/{secret}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_secrets_never_appear_in_logs_status_or_events(kube_client, namespace, operators, webhooks, kubeconfig,
                                                         tmp_path):
    smtp_password = "smtp-" + uuid.uuid4().hex
    token = "tok-" + uuid.uuid4().hex
    slack_secret = "T000/B000/" + uuid.uuid4().hex
    wrong_token = token[:-4] + "XXXX"  # a near miss must not be echoed either
    cluster_token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"].get("token") or "no-token-in-kubeconfig"
    secrets = {"SMTP password": smtp_password, "webhook token": token, "Slack URL secret": slack_secret,
               "wrong token": wrong_token, "cluster token": cluster_token}

    logins: list[bytes] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.password == smtp_password.encode()
        if ok:
            logins.append(auth_data.login)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    class Sink:
        received: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            Sink.received.append(envelope)
            return "250 OK"

    smtp = Controller(Sink(), hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                      auth_require_tls=False)
    smtp.start()
    hook = FailingHook()
    try:
        password_file = tmp_path / "smtp-password"
        password_file.write_text(smtp_password + "\n")
        kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "vault"}, "spec": {
            "target": {"name": "vault"}, "alertSelector": {"matchLabels": {"app": "vault"}},
            "notify": {"admins": ["ops@example.com"]}}}, namespace)
        op = operators(kubeconfig, namespace, env={
            "PARAMEDIC_SMTP_HOST": "127.0.0.1", "PARAMEDIC_SMTP_PORT": str(smtp.port),
            "PARAMEDIC_SMTP_USERNAME": "bot", "PARAMEDIC_SMTP_PASSWORD_FILE": str(password_file),
            "PARAMEDIC_SMTP_FROM": "paramedic@example.com", "PARAMEDIC_SLACK_WEBHOOK_URL": hook.url(slack_secret),
            "PARAMEDIC_LOG_LEVEL": "DEBUG"}, extra_args=["--verbose"])
        receiver = webhooks(kubeconfig, namespace, token, env={"PARAMEDIC_LOG_LEVEL": "DEBUG"})
        url = receiver.url + "/api/v1/alertmanager"
        body = am_payload(am_alert("VaultSealed", app="vault", namespace=namespace))
        for bad in (wrong_token, token.upper(), "x"):
            assert httpx.post(url, json=body, headers={"Authorization": f"Bearer {bad}"}, timeout=10).status_code == 401
        resp = httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert resp.status_code == 200, resp.text
        [name] = [i.split("/")[1] for i in resp.json()["incidents"]]

        # The operator mails (logging in with the password) and fails on Slack (500, retried).
        def delivered(inc: dict) -> bool:
            notes = inc["status"]["notifications"]
            return any(n.get("channel") == "email" and n.get("result") == "sent" for n in notes) \
                and any(n.get("channel") == "slack" and n.get("result") in ("retrying", "failed") for n in notes)

        notes = wait_object(kube_client, kube.INCIDENTS, name, namespace, delivered, 60,
                            "an e-mail sent and a Slack failure recorded")["status"]["notifications"]
        assert logins == [b"bot"] * len(logins) and logins, "the operator never logged in to SMTP"
        assert hook.hits >= 1
        assert any(n.get("error") for n in notes if n.get("channel") == "slack"), notes
    finally:
        smtp.stop()
        hook.stop()

    places = {
        "operator log": op.logs(),
        "webhook log": receiver.logs(),
        "incidents": json.dumps(kube_client.list(kube.INCIDENTS, namespace)),
        "services": json.dumps(kube_client.list(kube.MONITORED_SERVICES, namespace)),
        "events": (json.dumps(kube_client.list(kube.EVENTS, namespace))
                   + json.dumps(kube_client.list(EVENTS_CORE, namespace))),
    }
    assert len(places["operator log"]) > 1000 and "DEBUG" in places["operator log"], \
        "the operator logged too little to judge"
    leaks = [f"{what} in the {where}" for where, text in places.items() for what, secret in secrets.items()
             if secret in text]
    assert not leaks, leaks

