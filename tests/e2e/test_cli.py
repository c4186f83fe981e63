"""`kubectl-paramedic` as a user runs it: a subprocess against the real control plane.

The operator is not running here, so only what the CLI writes (spec, annotations)
and what the API server enforces (CEL lifecycle rules) is visible.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from paramedic import kube
from paramedic.domain import oncall
from paramedic.domain.timeutil import iso, utcnow

pytestmark = pytest.mark.e2e

CLI = Path(sys.executable).parent / "kubectl-paramedic"


@pytest.fixture
def cli(kubeconfig):
    def run(*args: str, env: dict[str, str] | None = None, kubeconfig_path: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_WEBHOOK")}
        full_env.update(env or {})
        return subprocess.run([str(CLI), "--kubeconfig", str(kubeconfig_path or kubeconfig), *args],
                              capture_output=True, text=True, env=full_env, timeout=timeout)
    return run


def make_incident(client, ns, name, state="open", **spec):
    body = {"metadata": {"name": name},
            "spec": {"service": spec.pop("service", "checkout"), "severity": spec.pop("severity", "high"),
                     "title": spec.pop("title", f"{name} is down"), "state": state, **spec}}
    return client.create(kube.INCIDENTS, body, ns)


def whoami(client) -> str:
    review = client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return review["status"]["userInfo"]["username"]


def test_full_lifecycle_ack_rca_resolve_close_report(cli, kube_client, namespace, tmp_path):
    make_incident(kube_client, namespace, "checkout-1", severity="critical",
                  runbookURL="https://runbooks.example.com/checkout")

    out = cli("list", "-n", namespace)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()
    assert header.split() == ["NAME", "STATE", "SEVERITY", "SERVICE", "ASSIGNEE", "AGE", "SLA", "LEFT"]
    assert row.split()[:5] == ["checkout-1", "open", "critical", "checkout", "<none>"]

    out = cli("ack", "checkout-1", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert "acknowledged (was open)" in out.stdout
    inc = kube_client.get(kube.INCIDENTS, "checkout-1", namespace)
    assert inc["spec"]["state"] == "acknowledged"
    assert inc["metadata"]["annotations"]["paramedic.dev/actor"] == whoami(kube_client)

    again = cli("ack", "checkout-1", "-n", namespace)
    assert again.returncode == 0 and "already acknowledged" in again.stdout

    out = cli("-n", namespace, "rca", "checkout-1", "--root-cause", "config push set pool size | 0",
              "--contributing-factors", "no canary\nloose alerts", "--corrective-actions", "rolled back")
    assert out.returncode == 0, out.stderr
    rca = kube_client.get(kube.INCIDENTS, "checkout-1", namespace)["spec"]["rca"]
    assert rca == {"rootCause": "config push set pool size | 0", "contributingFactors": "no canary\nloose alerts",
                   "correctiveActions": "rolled back"}

    out = cli("resolve", "checkout-1", "-n", namespace, "-m", "pool size restored")
    assert out.returncode == 0, out.stderr
    ann = kube_client.get(kube.INCIDENTS, "checkout-1", namespace)["metadata"]["annotations"]
    assert ann["paramedic.dev/reason"] == "pool size restored"

    out = cli("close", "checkout-1", "-n", namespace)
    assert out.returncode == 0, out.stderr
    inc = kube_client.get(kube.INCIDENTS, "checkout-1", namespace)
    assert inc["spec"]["state"] == "closed"
    assert "paramedic.dev/reason" not in inc["metadata"]["annotations"]  # no stale reason carried over

    target = tmp_path / "pm.md"
    out = cli("report", "checkout-1", "-n", namespace, "-f", str(target))
    assert out.returncode == 0, out.stderr
    text = target.read_text()
    assert text.startswith("# Post-mortem: checkout-1 is down")
    assert "| State | closed |" in text and "| Severity | critical |" in text
    assert "config push set pool size | 0" in text  # prose, not a table cell
    assert "no canary\nloose alerts" in text
    assert "### Prevention actions\n\n_Not written yet._" in text
    assert "<https://runbooks.example.com/checkout>" in text
    shown = cli("report", "checkout-1", "-n", namespace).stdout
    assert shown.splitlines()[3:] == text.splitlines()[3:]  # line 3 holds the generation time


def test_refusals_show_the_api_servers_message(cli, kube_client, namespace):
    make_incident(kube_client, namespace, "back", state="resolved")
    out = cli("ack", "back", "-n", namespace)
    assert out.returncode == 1
    assert "state cannot move back from resolved to acknowledged" in out.stderr
    assert kube_client.get(kube.INCIDENTS, "back", namespace)["spec"]["state"] == "resolved"

    out = cli("close", "back", "-n", namespace)
    assert out.returncode == 1
    assert "closing needs a root cause" in out.stderr

    make_incident(kube_client, namespace, "early", rca={"rootCause": "known"})
    out = cli("close", "early", "-n", namespace)
    assert out.returncode == 1
    assert "can be closed only once it is resolved; it is open" in out.stderr
    assert kube_client.get(kube.INCIDENTS, "early", namespace)["spec"]["state"] == "open"

    # A closed incident keeps its root cause: clearing it is refused too.
    make_incident(kube_client, namespace, "done", state="resolved", rca={"rootCause": "disk full"})
    assert cli("close", "done", "-n", namespace).returncode == 0
    out = cli("rca", "done", "-n", namespace, "--root-cause", " ")
    assert out.returncode == 1 and "closing needs a root cause" in out.stderr


def test_not_found_usage_and_unreachable(cli, namespace, tmp_path, kubeconfig):
    out = cli("ack", "ghost", "-n", namespace)
    assert out.returncode == 1
    assert "ghost" in out.stderr and "not found" in out.stderr and namespace in out.stderr

    assert cli("assign", "ghost", "not-an-email", "-n", namespace).returncode == 2
    assert cli("-A", "show", "ghost").returncode == 2
    assert cli("rca", "ghost", "-n", namespace).returncode == 2
    assert cli("stats", "--window", "soon").returncode == 2

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = yaml.safe_load(Path(kubeconfig).read_text())
    dead["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = tmp_path / "dead-kubeconfig"
    path.write_text(yaml.safe_dump(dead))
    out = cli("list", "-n", namespace, kubeconfig_path=path)
    assert out.returncode == 3
    assert "unreachable" in out.stderr


def test_list_all_namespaces_json_and_filters(cli, kube_client, namespace):
    make_incident(kube_client, namespace, "a", assignee="alice@example.com")
    make_incident(kube_client, namespace, "b", state="resolved", service="search")
    out = cli("list", "-A", "--active")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    mine = [line.split() for line in lines[1:] if line.startswith(namespace + " ")]
    assert [r[1] for r in mine] == ["a"] and mine[0][5] == "alice@example.com"

    out = cli("list", "-n", namespace, "-o", "json")
    data = json.loads(out.stdout)
    assert data["kind"] == "List" and sorted(i["metadata"]["name"] for i in data["items"]) == ["a", "b"]
    out = cli("list", "-n", namespace, "--state", "resolved", "-o", "yaml")
    assert [i["metadata"]["name"] for i in yaml.safe_load(out.stdout)["items"]] == ["b"]

    out = cli("show", "a", "-n", namespace)
    assert out.returncode == 0 and "Assignee:" in out.stdout and "alice@example.com" in out.stdout
    assert json.loads(cli("show", "a", "-n", namespace, "-o", "json").stdout)["metadata"]["name"] == "a"


def test_assign_and_rca_edit(cli, kube_client, namespace, tmp_path):
    make_incident(kube_client, namespace, "edit-me", rca={"correctiveActions": "restart"})
    out = cli("assign", "edit-me", "bob@example.com", "-n", namespace)
    assert out.returncode == 0, out.stderr
    assert kube_client.get(kube.INCIDENTS, "edit-me", namespace)["spec"]["assignee"] == "bob@example.com"

    editor = tmp_path / "editor.py"
    editor.write_text(
        "import sys\n"
        "path = sys.argv[1]\n"
        "text = open(path).read()\n"
        "assert 'correctiveActions: restart' in text, text\n"
        "text = text.replace(\"rootCause: ''\", 'rootCause: |\\n  disk full\\n  on node-3')\n"
        "open(path, 'w').write(text)\n")
    out = cli("rca", "edit-me", "-n", namespace, "--edit", env={"EDITOR": f"{sys.executable} {editor}"})
    assert out.returncode == 0, out.stderr
    rca = kube_client.get(kube.INCIDENTS, "edit-me", namespace)["spec"]["rca"]
    assert rca == {"rootCause": "disk full\non node-3", "correctiveActions": "restart"}

    out = cli("rca", "edit-me", "-n", namespace, "--edit", env={"EDITOR": "true"})
    assert out.returncode == 0 and "cancelled" in out.stdout

    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nopen(sys.argv[1], 'a').write('\\nrootcause: typo\\n')\n")
    out = cli("rca", "edit-me", "-n", namespace, "--edit", env={"EDITOR": f"{sys.executable} {bad}"})
    assert out.returncode == 1 and "unknown field(s) rootcause" in out.stderr and "kept in" in out.stderr
    kept = out.stderr.rsplit("kept in ", 1)[1].strip()
    assert "rootcause: typo" in Path(kept).read_text()  # nothing the user typed is lost
    Path(kept).unlink()


def test_oncall(cli, kube_client, namespace):
    now = utcnow()
    spec = {"participants": [{"name": "Alice", "email": "alice@example.com"},
                             {"name": "Bob", "email": "bob@example.com"}],
            "rotation": {"start": iso(now - timedelta(hours=30)), "lengthHours": 24},
            "overrides": [{"start": iso(now - timedelta(hours=1)), "end": iso(now + timedelta(hours=2)),
                           "name": "Carol", "email": "carol@example.com"}]}
    kube_client.create(kube.ONCALL_SCHEDULES, {"metadata": {"name": "payments"}, "spec": spec}, namespace)
    kube_client.create(kube.ONCALL_SCHEDULES, {"metadata": {"name": "search"}, "spec": {
        "participants": [{"email": "dan@example.com"}], "rotation": {"start": iso(now)}}}, namespace)

    out = cli("oncall", "payments", "-n", namespace, "-o", "json")
    assert out.returncode == 0, out.stderr
    view = json.loads(out.stdout)
    handoff = oncall.next_handoff(spec, now)
    assert view["onCall"] == {"name": "Carol", "email": "carol@example.com"} and view["override"] is True
    assert abs((handoff - now).total_seconds() - 2 * 3600) < 60
    assert view["next"] == {"name": "Bob", "email": "bob@example.com"}

    out = cli("oncall", "-n", namespace)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["TEAM", "ON", "CALL", "OVERRIDE"]
    assert lines[1].startswith("payments") and "Carol <carol@example.com>" in lines[1] and " yes " in lines[1]
    assert lines[2].startswith("search") and "dan@example.com" in lines[2] and "<never>" in lines[2]

    assert cli("oncall", "nobody", "-n", namespace).returncode == 1


def test_stats(cli, kube_client, namespace):
    for name, state, severity, mtta, breached in (("s1", "resolved", "critical", 60, True),
                                                  ("s2", "acknowledged", "high", 180, False),
                                                  ("s3", "open", "high", None, False)):
        make_incident(kube_client, namespace, name, state=state, severity=severity)
        status = {"createdAt": iso(utcnow()), "sla": {"breached": breached}}
        if mtta is not None:
            status["mttaSeconds"] = mtta
        kube_client.patch(kube.INCIDENTS, name, {"status": status}, namespace, subresource="status")

    out = cli("stats", "-n", namespace, "--window", "7d", "-o", "json")
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["total"] == 3 and stats["active"] == 2 and stats["window"] == 7 * 86400
    assert stats["byState"] == {"open": 1, "acknowledged": 1, "resolved": 1}
    assert stats["bySeverity"] == {"critical": 1, "high": 2}
    assert stats["mtta"]["mean"] == 120 and stats["mtta"]["p50"] == 120
    assert stats["slaBreachRate"] == pytest.approx(1 / 3)

    out = cli("stats", "-n", namespace)
    assert out.returncode == 0 and "SLA breached: 1 of 3 (33.3%)" in out.stdout


class _Capture(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict, bytes]] = []
    status = 202

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append((self.path, dict(self.headers), body))
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"incidents": ["ns/x"]}')

    def log_message(self, *args):
        pass


@pytest.fixture
def capture_server():
    _Capture.requests = []
    _Capture.status = 202
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Capture
    server.shutdown()
    server.server_close()


def test_fire_posts_the_generic_alert(cli, capture_server, tmp_path):
    url, handler = capture_server
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    out = cli("fire", "--service", "checkout", "--severity", "critical", "--message", "checkout 5xx",
              "--label", "env=prod", "-n", "shop",
              env={"PARAMEDIC_WEBHOOK_URL": url, "PARAMEDIC_WEBHOOK_TOKEN_FILE": str(token_file)})
    assert out.returncode == 0, out.stderr
    path, headers, body = handler.requests[-1]
    assert path == "/api/v1/alerts"
    assert headers["Authorization"] == "Bearer s3cret"
    payload = json.loads(body)
    assert payload["service"] == "checkout" and payload["severity"] == "critical"
    assert payload["message"] == "checkout 5xx"
    assert payload["labels"] == {"env": "prod", "namespace": "shop"}
    assert payload["timestamp"].endswith("Z")

    handler.status = 401
    out = cli("fire", "--service", "checkout", "--message", "m", "--url", url, "--token", "wrong")
    assert out.returncode == 1 and "401" in out.stderr
    assert json.loads(handler.requests[-1][2])["severity"] == "high"
    assert handler.requests[-1][1]["Authorization"] == "Bearer wrong"

    assert cli("fire", "--service", "checkout", "--message", "m").returncode == 2  # no URL anywhere
    assert cli("fire", "--service", "c", "--message", "m", "--url", url, "--label", "bad").returncode == 2


def test_fire_through_the_real_webhook_opens_an_incident(cli, kube_client, kubeconfig, namespace):
    from werkzeug.serving import make_server

    from paramedic.settings import Settings
    from paramedic.webhook.app import create_app

    # A token for every namespace, as the admin of a single-team set-up chooses explicitly.
    app = create_app(Settings(kubeconfig=str(kubeconfig), webhook_token="fire-token",
                              webhook_token_namespaces=["*"]), kube_client)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        out = cli("fire", "-n", namespace, "--service", "checkout", "--severity", "medium",
                  "--message", "checkout answers 503", "--url", url, "--token", "fire-token")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["status"] == "ok"
        items = kube_client.list(kube.INCIDENTS, namespace)
        assert len(items) == 1
        assert items[0]["spec"]["service"] == "checkout" and items[0]["spec"]["severity"] == "medium"
        assert items[0]["spec"]["source"] == "api"

        out = cli("fire", "-n", namespace, "--service", "checkout", "--message", "m", "--url", url, "--token", "no")
        assert out.returncode == 1 and "401" in out.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_cr_values_are_shown_never_obeyed_by_the_terminal(cli, kube_client, namespace, tmp_path):
    """A title, comment and timeline entry carrying a clipboard write (OSC 52), cursor moves, CRLF and a
    bidi override: `show`, `list`, `report` print them as text; `-o json` keeps them, escaped."""
    title = "down \x1b]52;c;cm0gLXJmIH4=\x07\x1b[2A\x1b[2Kall fine\r\n\u202eevil\u202c"
    make_incident(kube_client, namespace, "hostile", title=title, description="line\x9b2A\x1b]8;;https://x\x07link")
    kube_client.patch(kube.INCIDENTS, "hostile", {"status": {"timeline": [
        {"time": "2026-03-01T12:00:00Z", "type": "comment", "actor": "m\x1b[31mallory", "message": "x\x1b[1;1Hy"}]}},
        namespace, subresource="status")
    terminal = ("\x1b", "\x07", "\x9b", "\u202e", "\r")
    for args in (("show", "hostile"), ("list",), ("report", "hostile")):
        out = cli(*args, "-n", namespace)
        assert out.returncode == 0, out.stderr
        assert not any(c in out.stdout for c in terminal), (args, repr(out.stdout))
        assert "52;c;" not in out.stdout and "[2A" not in out.stdout
    shown = cli("show", "hostile", "-n", namespace).stdout
    assert "down all fine" in shown and "evil" in shown and "mallory" in shown and "linelink" in shown
    out = cli("show", "hostile", "-n", namespace, "-o", "json")
    assert "\x1b" not in out.stdout and json.loads(out.stdout)["spec"]["title"] == title
    report = tmp_path / "pm.md"
    assert cli("report", "hostile", "-n", namespace, "-f", str(report)).returncode == 0
    assert not any(c in report.read_text() for c in terminal)
