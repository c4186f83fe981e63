"""Real local servers and processes the end-to-end tests drive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.cluster import REPO, free_port, tools_bin
from devtools.wait import wait_for
from paramedic import kube
from paramedic.domain.text import cut
from paramedic.domain.vocabulary import IN_PROGRESS_RESULTS

VENV_BIN = Path(sys.executable).parent


def kubectl_paramedic(kubeconfig: Path | str, namespace: str, *args: str) -> subprocess.CompletedProcess:
    """The installed `kubectl paramedic` plugin against the test cluster, as the admin."""
    return subprocess.run([str(VENV_BIN / "kubectl-paramedic"), "--kubeconfig", str(kubeconfig), "-n", namespace,
                           *args], capture_output=True, text=True, timeout=60)


def wait_object(client: kube.KubeClient, resource: kube.Resource, name: str, namespace: str | None,
                predicate: Callable[[dict], Any], timeout: float, what: str) -> dict:
    """GET the object until `predicate(obj)` holds over the whole of it; that object is returned.

    The one wait of the e2e and chaos tests for what the operator writes. The operator often
    writes an object twice in a row (spec, then status; one status field, then the next), so a
    wait for one field followed by a second read of another races those writes. Instead the
    predicate checks every field the test then reads, in the one object it returns. A missing
    object (404) is waited for; a predicate that raises (a field not there yet) counts as false.
    On timeout the failure shows the last object read.
    """
    seen: dict[str, Any] = {}

    def holds() -> dict | None:
        obj = seen["last"] = client.get_or_none(resource, name, namespace)
        return obj if obj is not None and predicate(obj) else None

    def last() -> str:
        obj = seen.get("last")
        where = f"{resource.kind} {namespace + '/' if namespace else ''}{name}"
        if obj is None:
            return f"{where}: not found"
        shown = {k: v for k, v in obj.items() if k != "metadata"}
        shown["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
        return f"last {where}:\n" + cut(json.dumps(shown, indent=1, sort_keys=True, default=str), 6000)

    return wait_for(holds, timeout, what, describe=last)


def wait_serving(proc: subprocess.Popen, url: str, what: str, logs: Callable[[], str], timeout: float = 60,
                 verify: Any = True) -> None:
    """Until `url` answers 200; fails at once, showing the end of `logs()`, if `proc` exits first."""
    import httpx

    def serving() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}: {logs()[-2000:]}")
        return httpx.get(url, timeout=2, verify=verify).status_code == 200

    wait_for(serving, timeout, f"{what} serving {url}", ignore=(httpx.HTTPError,))


def uninstall_release(helm: list[str], env: dict[str, str], kubeconfig: Path | str, release: str,
                      namespace: str) -> subprocess.CompletedProcess:
    """`helm uninstall`, then the release's admission policies whatever became of it: they are
    cluster-wide, and one left behind refuses every status write of later tests."""
    out = subprocess.run([*helm, "uninstall", release, "--namespace", namespace, "--wait", "--timeout", "2m"],
                         capture_output=True, text=True, env=env)
    subprocess.run([str(tools_bin() / "kubectl"), "--kubeconfig", str(kubeconfig), "delete", "--ignore-not-found",
                    "validatingadmissionpolicies,validatingadmissionpolicybindings",
                    "-l", f"app.kubernetes.io/instance={release}"], capture_output=True)
    return out


def stop_group(proc: subprocess.Popen | None, sig: int, grace: float) -> None:
    """Signal the process group `proc` leads (started with a new session); SIGKILL it if it has
    not ended within `grace` seconds."""
    if proc and proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def verified(incident: dict) -> bool:
    """The incident's last remediation attempt has an outcome: it is neither running nor verifying.
    The probe may resolve an incident before the attempt's verification is written."""
    attempts = ((incident.get("status") or {}).get("remediation") or {}).get("attempts") or []
    return bool(attempts) and attempts[-1].get("result") not in (None, *IN_PROGRESS_RESULTS)


def smtp_env(port: int) -> dict[str, str]:
    """The operator's settings for mailing through a `MailSink` on `port`."""
    return {"PARAMEDIC_SMTP_HOST": "127.0.0.1", "PARAMEDIC_SMTP_PORT": str(port),
            "PARAMEDIC_SMTP_FROM": "paramedic@example.com", "PARAMEDIC_ADMIN_EMAILS": "admin@example.com",
            "PARAMEDIC_SMTP_TIMEOUT_SECONDS": "2"}


class SwitchableService:
    """A local HTTP service that can be made healthy, failing, slow or unreachable."""

    def __init__(self) -> None:
        self.mode = "healthy"
        self.slow_seconds = 1.0
        self.hits = 0
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self) -> None:
        svc = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                svc.hits += 1
                if svc.mode == "slow":
                    time.sleep(svc.slow_seconds)
                code = 500 if svc.mode == "failing" else 200
                body = b"ok" if code == 200 else b"broken"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Unreachable: nothing listens on the port any more."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def set(self, mode: str) -> None:
        if mode == "unreachable":
            self.stop()
        else:
            if self._server is None:
                self.start()
            self.mode = mode


TEST_OUTBOUND_ALLOW_CIDRS = "127.0.0.0/8,10.77.0.0/24"


class OperatorProcess:
    """`paramedic-operator` as a real subprocess against the test control plane."""

    def __init__(self, kubeconfig: Path, namespaces: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 standalone: bool = True, extra_args: list[str] | None = None, tag: str = ""):
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_dir / f"operator-{'-'.join(namespaces)}{'-' + tag if tag else ''}.log"
        self.env = env or {}
        self.standalone = standalone
        self.extra_args = list(extra_args or [])
        self.metrics_port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> OperatorProcess:
        env = dict(os.environ)
        env.update({
            "PARAMEDIC_KUBECONFIG": str(self.kubeconfig),
            "PARAMEDIC_HEALTH_PORT": str(free_port()),
            "PARAMEDIC_METRICS_PORT": str(self.metrics_port),
            "PARAMEDIC_PLAYBOOKS_DIR": str(REPO / "playbooks"),
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            # The admin allowlist the tests' stand-ins need: probe targets, hooks and mail sinks
            # live on loopback and the real node's pod bridge, which the default refuses.
            # A test of the default passes PARAMEDIC_OUTBOUND_ALLOW_CIDRS="" in `env`.
            "PARAMEDIC_OUTBOUND_ALLOW_CIDRS": TEST_OUTBOUND_ALLOW_CIDRS,
        })
        if self.namespaces:
            # Paramedic's own namespace holds the key sealing remediation attempts (a Secret the
            # operator creates there): the test's namespace, which exists, unless `env` says.
            env["PARAMEDIC_NAMESPACE"] = self.namespaces[0]
        env.update(self.env)
        args = [str(VENV_BIN / "paramedic-operator")] + (["--standalone"] if self.standalone else [])
        for ns in self.namespaces:
            args += ["--namespace", ns]
        args += self.extra_args
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        stop_group(self.proc, sig, 20)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class WebhookProcess:
    """`paramedic-webhook` (gunicorn) as a real subprocess on a fixed loopback port, restartable."""

    def __init__(self, kubeconfig: Path, namespace: str, log_dir: Path, token: str,
                 env: dict[str, str] | None = None, port: int | None = None, remediate: bool = True):
        self.kubeconfig = kubeconfig
        self.port = port or free_port()
        self.log_path = log_dir / f"webhook-{self.port}.log"
        self.token_file = log_dir / f"webhook-{self.port}.token"
        self.token_file.write_text(token + "\n")
        # `remediate`: whether the token above may trigger remediation (off by default in the
        # product; these tests' admin turns it on unless a test says otherwise).
        self.env = {"PARAMEDIC_KUBECONFIG": str(kubeconfig), "PARAMEDIC_NAMESPACE": namespace,
                    "PARAMEDIC_WEBHOOK_TOKEN_FILE": str(self.token_file),
                    "PARAMEDIC_WEBHOOK_TOKEN_REMEDIATE": "true" if remediate else "false", **(env or {})}
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> WebhookProcess:
        env = {k: v for k, v in os.environ.items() if k != "PARAMEDIC_WEBHOOK_TOKEN"}
        env.update(self.env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(VENV_BIN / "paramedic-webhook"), "--bind", f"127.0.0.1:{self.port}"],
                                     env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if wait:
            wait_serving(self.proc, self.url + "/healthz", "paramedic-webhook", self.logs)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (gunicorn's master and its workers)."""
        stop_group(self.proc, sig, 40)
        if self.proc is not None:
            # Orphaned workers of a killed master still hold the port for a moment.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
