"""`make demo`: the whole self-healing story on one machine.

    python -m devtools.demo          # set up, break the demo service, narrate, leave it running
    python -m devtools.demo down     # stop what it left running (`make demo-down`)

It reuses a running control plane with a real node (PARAMEDIC_DEMO_KUBECONFIG, else
the one a previous demo started, else `make cluster-up`'s) or starts its own, with the
machine's real node, in the demo's folder (stopped again by `down`); builds Paramedic's
image if its inputs changed and loads it into the node; runs the demo service as a real
container on the real node (Deployment and Service `demo`); starts an SMTP server keeping
mail as files, blackbox_exporter, Prometheus, Alertmanager, and Paramedic's webhook and
operator as local processes, on free loopback ports, with logs and pids in the demo's
folder; applies a MonitoredService and an OnCallSchedule; then rolls out a bad release
(its container runs and is Ready, but fails its health check) and narrates detection,
alert, incident, assignment, e-mail, the restart that does not help, the Ansible
rollback that does, recovery with the containers' IDs, and the post-mortem.

Environment: DEMO_EXIT=1 stops everything once the story is told (CI);
PARAMEDIC_DEMO_DIR (default .paramedic/demo), PARAMEDIC_DEMO_NAMESPACE (default
paramedic-demo), PARAMEDIC_DEMO_KUBECONFIG (a cluster to reuse; never stopped).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import httpx
import yaml

from paramedic import kube
from paramedic.domain.report import render_postmortem
from paramedic.domain.timeutil import utcnow
from paramedic.domain.vocabulary import ENDED_UNSUCCESSFULLY, IN_PROGRESS_RESULTS, AttemptResult

from . import node as devnode
from .cluster import IMAGE, REPO, DevCluster, apply_crds, free_port, image_archive, tools_bin
from .proc import alive, cmdline, terminate
from .wait import WaitTimeout, wait_for

HACK = REPO / "hack" / "demo"
VENV_BIN = Path(sys.executable).parent
BINARIES = {
    "prometheus": "/usr/bin/prometheus",
    "alertmanager": "/usr/bin/prometheus-alertmanager",
    "blackbox": "/usr/bin/prometheus-blackbox-exporter",
}
ALERT_NAME = "DemoServiceDown"
# The demo Service's fixed ClusterIP: its probe targets are known before it exists.
DEMO_CLUSTER_IP = "10.0.0.80"
RESPONDER = "responder"
"""The demo's on-call person for the web console: a ServiceAccount with a Role in the demo's namespace."""
RESPONDER_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["paramedic.dev"], "resources": ["incidents", "monitoredservices"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["paramedic.dev"], "resources": ["oncallschedules"], "verbs": ["get", "list", "watch"]},
]
POLL = 0.4
SETTLE_SECONDS = 5.0  # after resolution, how long late records (alert resolution, playbook result) may take
# Seconds after the break by which each step of the story must have happened.
DEADLINES = {
    "probe": 25, "alert": 50, "incident": 35, "assigned": 45, "mail": 55, "alert-recorded": 65,
    "restart": 55, "ansible": 110, "recovered": 150, "resolved": 160, "story-end": 190,
}


class DemoError(Exception):
    """A checkpoint was not reached: what was expected, and where to look."""


def say(text: str) -> None:
    print(text, flush=True)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- processes ------------------------------------------------------------------------------


def stop_process(pid: int, match: str, grace: float = 10.0) -> bool:
    """SIGTERM the process group led by `pid`, then SIGKILL; only if its command line has `match`.

    The check guards against a stale record naming a recycled pid.
    """
    if not pid or not alive(pid) or match not in " ".join(cmdline(pid)):
        return False
    terminate(pid, grace)
    return True


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        return httpx.get(url, timeout=timeout).status_code
    except (httpx.HTTPError, OSError):
        return None


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


_PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")


def render(template: str, values: dict[str, Any], *, as_json: bool = False) -> str:
    """Fill @@NAME@@ placeholders; every one must be known, and none may be left."""
    out = template
    for key, value in values.items():
        text = json.dumps(value) if as_json or not isinstance(value, (str, int)) else str(value)
        out = out.replace(f"@@{key}@@", text)
    left = _PLACEHOLDER.search(out)
    if left:
        raise DemoError(f"template placeholder {left.group(0)} has no value")
    return out


# --- the demo's environment ------------------------------------------------------------------


@dataclass
class Demo:
    root: Path
    namespace: str
    exit_after: bool
    out: Callable[[str], None] = say
    state: dict[str, Any] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    kubeconfig: Path | None = None
    client: kube.KubeClient | None = None

    @classmethod
    def from_env(cls) -> Demo:
        root = Path(os.environ.get("PARAMEDIC_DEMO_DIR") or REPO / ".paramedic" / "demo").resolve()
        return cls(root=root, namespace=os.environ.get("PARAMEDIC_DEMO_NAMESPACE") or "paramedic-demo",
                   exit_after=_env_flag("DEMO_EXIT"))

    # paths
    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def mail_dir(self) -> Path:
        return self.root / "mail"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def token_file(self) -> Path:
        return self.root / "webhook-token"

    @property
    def console_token_file(self) -> Path:
        return self.root / "console-token"

    def url(self, name: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    @staticmethod
    def service_url(path: str = "") -> str:
        return f"http://{DEMO_CLUSTER_IP}:8080{path}"

    @property
    def health_url(self) -> str:
        return self.service_url("/healthz")

    def save_state(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, self.state_file)

    def line(self, label: str, text: str) -> None:
        self.out(f"  {label:<14} {text}")

    # --- set-up ---------------------------------------------------------------------------
    def setup(self) -> None:
        started = time.monotonic()
        self.out("Paramedic demo: a service breaks, Paramedic notices, pages, repairs and reports.")
        self.out(f"(state, logs and mail in {_rel(self.root)}/)\n")
        missing = [f"{path} ({name})" for name, path in BINARIES.items() if not os.access(path, os.X_OK)]
        if missing:
            raise DemoError(f"missing {', '.join(missing)}: run `make apt` (hack/apt-deps.sh) first")
        if self.state_file.exists():
            # A previous demo is still up: stop its processes, keep its cluster.
            stop_recorded(self.root, stop_cluster=False, delete_namespace=False, log=lambda m: None)
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in ("mail", "logs", "prometheus-data", "alertmanager-data"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
            (self.root / sub).mkdir(parents=True)
        for old in self.root.glob("postmortem-*.md"):
            old.unlink()
        self.state = {"namespace": self.namespace, "processes": {}, "clusterStarted": False}
        self._cluster()
        self.save_state()
        self.client = kube.KubeClient(kube.Connection.load(str(self.kubeconfig)))
        self._crds()
        self._clean_namespace()

        self._image()
        for name in ("smtp", "blackbox", "alertmanager", "prometheus", "webhook", "operator",
                     "operator-health", "console"):
            self.ports[name] = free_port()
        self.state["ports"] = self.ports
        self.token_file.write_text(secrets.token_urlsafe(24) + "\n")
        self.token_file.chmod(0o600)
        self._configs()

        self._start_smtp()
        self._start("blackbox", [BINARIES["blackbox"], f"--config.file={self.root / 'blackbox.yml'}",
                                 f"--web.listen-address=127.0.0.1:{self.ports['blackbox']}"],
                    ready=lambda: _http_status(self.url("blackbox", "/metrics")) == 200,
                    what=f"blackbox_exporter on {self.url('blackbox')}")
        self._start("alertmanager", [BINARIES["alertmanager"], f"--config.file={self.root / 'alertmanager.yml'}",
                                     f"--storage.path={self.root / 'alertmanager-data'}",
                                     f"--web.listen-address=127.0.0.1:{self.ports['alertmanager']}",
                                     f"--web.external-url={self.url('alertmanager')}",
                                     "--cluster.listen-address="],
                    ready=lambda: _http_status(self.url("alertmanager", "/-/ready")) == 200,
                    what=f"Alertmanager on {self.url('alertmanager')}")
        self._start("webhook", [str(VENV_BIN / "paramedic-webhook"), "--bind", f"127.0.0.1:{self.ports['webhook']}"],
                    ready=lambda: _http_status(self.url("webhook", "/readyz")) == 200,
                    what=f"Paramedic webhook on {self.url('webhook')}", timeout=60)
        # As users run it: it takes every shard through Leases in the demo's namespace, no set-up.
        self._start("operator", [str(VENV_BIN / "paramedic-operator"), "--identity", "demo-operator",
                                 "--namespace", self.namespace],
                    ready=lambda: _http_status(self.url("operator-health", "/healthz")) == 200,
                    what=f"Paramedic operator (health on {self.url('operator-health', '/healthz')})", timeout=90)
        self._start("console", [str(VENV_BIN / "paramedic-console"), "--bind", f"127.0.0.1:{self.ports['console']}"],
                    ready=lambda: _http_status(self.url("console", "/healthz")) == 200,
                    what=f"Paramedic console on {self.url('console')}", timeout=60)
        self.line("services", f"SMTP :{self.ports['smtp']}, blackbox :{self.ports['blackbox']}, "
                              f"Alertmanager :{self.ports['alertmanager']}, "
                              f"Prometheus :{self.ports['prometheus']} (once the demo service answers), "
                              f"webhook :{self.ports['webhook']}, operator (metrics :{self.ports['operator']}), "
                              f"console :{self.ports['console']}")
        self.line("paramedic", "the operator and the webhook run as local processes here; the Helm chart runs "
                               "them in pods from the same image (tests/e2e/test_in_cluster.py)")
        self._apply()
        # Prometheus only once the demo service answers: its blackbox probe of a container still
        # starting would fire DemoServiceDown, and its incident, before the story begins.
        self._start("prometheus", [BINARIES["prometheus"], f"--config.file={self.root / 'prometheus.yml'}",
                                   f"--storage.tsdb.path={self.root / 'prometheus-data'}",
                                   "--storage.tsdb.retention.time=1d",
                                   f"--web.external-url={self.url('prometheus')}",
                                   f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}"],
                    ready=lambda: _http_status(self.url("prometheus", "/-/ready")) == 200,
                    what=f"Prometheus on {self.url('prometheus')}")
        self._responder()
        self._wait_ready()
        self.out(f"  {'ready':<14} in {time.monotonic() - started:.1f}s\n")

    def _cluster(self) -> None:
        given = os.environ.get("PARAMEDIC_DEMO_KUBECONFIG")
        own = DevCluster(root=self.root / "cluster", kubeconfig=self.root / "kubeconfig", real_node="1")
        if given:
            self.kubeconfig = Path(given).resolve()
            if not self.kubeconfig.exists():
                raise DemoError(f"PARAMEDIC_DEMO_KUBECONFIG={given} does not exist")
            self.line("cluster", f"reusing {_rel(self.kubeconfig)} (PARAMEDIC_DEMO_KUBECONFIG)")
        elif own.running():  # a previous demo's, still up: it stays the demo's to stop
            self.line("cluster", f"reusing the demo's control plane ({_rel(own.kubeconfig)})")
            self.kubeconfig = own.kubeconfig
            self.state.update(clusterStarted=True, clusterRoot=str(own.root))
        elif DevCluster().running() and DevCluster().node() is not None:
            self.kubeconfig = DevCluster().kubeconfig
            self.line("cluster", f"reusing the dev cluster ({_rel(self.kubeconfig)}, `make cluster-up`)")
        else:
            self.line("cluster", "starting a local control plane (etcd, kube-apiserver, controller-manager, "
                                 "scheduler, kwok) and the real node (kubelet, containerd, runc, CNI)...")
            own.up(log=lambda msg: self.line("cluster", msg.replace(str(own.kubeconfig), _rel(own.kubeconfig))))
            self.kubeconfig = own.kubeconfig
            self.state.update(clusterStarted=True, clusterRoot=str(own.root))
        self.state["kubeconfig"] = str(self.kubeconfig)

    def _image(self) -> None:
        """Paramedic's image (it has Python) runs the demo service: built when its inputs changed,
        loaded into the real node's containerd without a registry."""
        node = devnode.RealNode.current(tools_bin())
        if node is None:
            raise DemoError("the demo runs its service on the machine's real node, and none runs "
                            f"(the cluster at {_rel(self.kubeconfig or Path('.'))} has kwok's node only; "
                            "the real node needs root: see the README)")
        started = time.monotonic()
        self.line("image", f"{IMAGE}: building if its inputs changed (make image; the first build takes minutes)...")
        try:
            with open(self.logs / "image-build.log", "ab") as log:
                tar = image_archive("paramedic", stderr=log)
        except subprocess.CalledProcessError as exc:
            raise DemoError(f"building the image failed (exit {exc.returncode}): "
                            f"{_tail(self.logs / 'image-build.log')}\n"
                            f"(log: {_rel(self.logs / 'image-build.log')})") from None
        node.import_images([tar])
        self.line("image", f"{IMAGE} in the node's containerd ({time.monotonic() - started:.0f}s)")

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(tools_bin() / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise DemoError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def _crds(self) -> None:
        assert self.kubeconfig is not None  # set by the cluster step before the CRDs
        try:
            apply_crds(self.kubeconfig)
        except subprocess.CalledProcessError as exc:
            raise DemoError(f"applying the CRDs failed: {(exc.stderr or exc.stdout or '').strip()}") from None

    def _clean_namespace(self) -> None:
        """A previous run's objects would skew the story (old incidents, probe counters)."""
        assert self.client is not None
        c = self.client
        existing = c.get_or_none(kube.NAMESPACES, self.namespace)
        if existing is not None and (existing.get("status") or {}).get("phase") == "Terminating":
            _wait(lambda: c.get_or_none(kube.NAMESPACES, self.namespace) is None, 120,
                  f"namespace {self.namespace} to finish terminating (a previous `make demo-down`)")
            existing = None
        # Created before the operator starts, so its watch begins on an existing namespace.
        self.state["namespaceApplied"] = True
        self.save_state()
        if existing is None:
            c.create(kube.NAMESPACES, {"metadata": {"name": self.namespace,
                                                    "labels": {"app.kubernetes.io/part-of": "paramedic-demo"}}})
            return
        self.kubectl("delete", "-n", self.namespace,
                     "incidents,monitoredservices,oncallschedules,deployments,services,configmaps",
                     "--all", "--cascade=foreground", "--wait=true", "--timeout=90s", timeout=120)

    def _configs(self) -> None:
        values = {
            "RULES_FILE": str(self.root / "rules.yml"), "ALERTMANAGER_PORT": self.ports["alertmanager"],
            "DEMO_HEALTH_URL": self.health_url, "BLACKBOX_PORT": self.ports["blackbox"],
            "OPERATOR_METRICS_PORT": self.ports["operator"], "WEBHOOK_PORT": self.ports["webhook"],
            "NAMESPACE": self.namespace, "TOKEN_FILE": str(self.token_file),
        }
        for name in ("prometheus.yml", "rules.yml", "alertmanager.yml", "blackbox.yml"):
            used = {k: v for k, v in values.items() if f"@@{k}@@" in (HACK / name).read_text()}
            (self.root / name).write_text(render((HACK / name).read_text(), used))
        hour = utcnow().replace(minute=0, second=0, microsecond=0)
        cluster = render((HACK / "cluster.yaml").read_text(), {
            "NAMESPACE": self.namespace,
            "ROTATION_START": hour.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "DEMO_HEALTH_URL": self.health_url,
            "DEMO_SERVICE_CODE": (HACK / "demo_service.py").read_text(),
            "NODE_SELECTOR": devnode.PLACEMENT["nodeSelector"],
            "TOLERATIONS": devnode.PLACEMENT["tolerations"],
            "IMAGE": IMAGE,
            "CLUSTER_IP": DEMO_CLUSTER_IP,
        }, as_json=True)
        (self.root / "cluster.yaml").write_text(cluster)

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_")}
        env.update({
            "PATH": f"{VENV_BIN}{os.pathsep}{tools_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "PARAMEDIC_KUBECONFIG": str(self.kubeconfig),
            # Kopf's login reads KUBECONFIG through the kubernetes client, which fixes its default
            # path at import time, before the operator could copy PARAMEDIC_KUBECONFIG there.
            "KUBECONFIG": str(self.kubeconfig),
            "PARAMEDIC_NAMESPACE": self.namespace,
            "PARAMEDIC_WEBHOOK_TOKEN_FILE": str(self.token_file),
            # The demo's one team: its token writes incidents in the demo namespace (the default, said).
            "PARAMEDIC_WEBHOOK_TOKEN_NAMESPACES": self.namespace,
            # ...and its alerts may trigger remediation (off unless the admin turns it on): the
            # demo's Alertmanager is the admin's own, its alert joins the probe's managed incident.
            "PARAMEDIC_WEBHOOK_TOKEN_REMEDIATE": "true",
            "PARAMEDIC_HEALTH_PORT": str(self.ports["operator-health"]),
            "PARAMEDIC_METRICS_PORT": str(self.ports["operator"]),
            "PARAMEDIC_PLAYBOOKS_DIR": str(REPO / "playbooks"),
            "PARAMEDIC_SMTP_HOST": "127.0.0.1",
            "PARAMEDIC_SMTP_PORT": str(self.ports["smtp"]),
            "PARAMEDIC_SMTP_FROM": "Paramedic <paramedic@demo.local>",
            "PARAMEDIC_ADMIN_EMAILS": "admin@example.com",
            "PARAMEDIC_DASHBOARD_URL": self.url("prometheus"),
            # The demo's services run on loopback or the real node's pod bridge, which probes
            # and hooks refuse unless the admin allowlist names them.
            "PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8,10.77.0.0/24",
            # Notifications link to the incident's page in the console.
            "PARAMEDIC_CONSOLE_URL": self.url("console"),
            # The console serves plain HTTP on loopback here: said explicitly (its cookie is Secure otherwise).
            "PARAMEDIC_CONSOLE_INSECURE_HTTP": "true",
        })
        return env

    def _start(self, name: str, args: list[str], *, ready: Callable[[], bool], what: str,
               timeout: float = 30) -> None:
        log_path = self.logs / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self._env(), cwd=self.root, start_new_session=True)
        self.procs[name] = proc
        # What stop_process checks before signalling: the program's own name.
        self.state["processes"][name] = {"pid": proc.pid, "match": Path(args[0]).name}
        self.save_state()
        def started() -> bool:
            if proc.poll() is not None:
                raise DemoError(f"{what} exited with code {proc.returncode} while starting\n"
                                f"{_tail(log_path)}\n(log: {_rel(log_path)})")
            return ready()

        try:
            wait_for(started, timeout, what, ignore=())
        except WaitTimeout:
            raise DemoError(f"{what} was not ready within {timeout:.0f}s (log: {_rel(log_path)})") from None

    def _responder(self) -> None:
        """The console's demo responder: a ServiceAccount with a Role in the demo's namespace, and
        a sign-in token for it (what `kubectl create token responder` prints: a TokenRequest)."""
        ns = self.namespace
        rbac = "rbac.authorization.k8s.io"
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": RESPONDER, "namespace": ns}},
            {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": RESPONDER, "namespace": ns},
             "rules": RESPONDER_RULES},
            {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": RESPONDER, "namespace": ns},
             "roleRef": {"apiGroup": rbac, "kind": "Role", "name": RESPONDER},
             "subjects": [{"kind": "ServiceAccount", "name": RESPONDER, "namespace": ns}]},
        ]))
        assert self.client is not None
        out = self.client.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{RESPONDER}/token",
                                  {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                   "spec": {"expirationSeconds": 86400}})
        self.console_token_file.write_text(out["status"]["token"] + "\n")
        self.console_token_file.chmod(0o600)
        self.line("console", f"{self.url('console')}  sign in as {RESPONDER} with the token in "
                             f"{_rel(self.console_token_file)} (a day's TokenRequest; its Role: incidents and "
                             f"services of {ns})")

    def _start_smtp(self) -> None:
        self._start("smtp", [sys.executable, str(HACK / "mail_sink.py"), "--port", str(self.ports["smtp"]),
                             "--dir", str(self.mail_dir)],
                    ready=lambda: _port_open(self.ports["smtp"]), what="the SMTP server (aiosmtpd)")
        self.state["processes"]["smtp"]["match"] = "mail_sink.py"
        self.save_state()

    def _apply(self) -> None:
        # The workload first, Paramedic's objects once it answers: a probe of a container still
        # starting would open an incident before the story begins.
        docs = [d for d in yaml.safe_load_all((self.root / "cluster.yaml").read_text()) if d]
        ours = [d for d in docs if d["apiVersion"].startswith("paramedic.dev/")]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([d for d in docs if d not in ours]))
        self.line("applied", f"namespace {self.namespace}: ConfigMap, Deployment and Service demo "
                             "(1 replica on the real node)")
        self._wait_checked(lambda: _http_status(self.health_url, timeout=1) == 200, 120,
                           f"the demo service's container to answer {self.health_url}",
                           f"kubectl describe pod -n {self.namespace} -l app=demo")
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(ours))
        self.line("applied", "OnCallSchedule demo, MonitoredService demo")

    def _wait_ready(self) -> None:
        assert self.client is not None
        c, ns = self.client, self.namespace

        def deployment_ready() -> bool:
            st = (c.get_or_none(kube.DEPLOYMENTS, "demo", ns) or {}).get("status") or {}
            return st.get("availableReplicas") == 1 and st.get("updatedReplicas") == 1

        def probe_healthy() -> bool:
            return ((c.get_or_none(kube.MONITORED_SERVICES, "demo", ns) or {}).get("status") or {}).get("health") \
                == "Healthy"

        self._wait_checked(deployment_ready, 90, "Deployment demo to have its container Ready on the real node",
                           f"kubectl describe pod -n {ns} -l app=demo; the node's logs in .paramedic/…/node/logs")
        self._wait_checked(probe_healthy, 60, "the operator to probe the demo service and mark it Healthy",
                           _rel(self.logs / "operator.log"))
        self._wait_checked(lambda: self.prom_probe_success() == 1, 60,
                           "Prometheus to scrape blackbox_exporter: probe_success 1",
                           _rel(self.logs / "prometheus.log"))
        # The service was down while its container started: an alert from then, still pending,
        # firing or active in Alertmanager, would arrive during the story and tell another one.
        self._wait_checked(lambda: self.prom_alert_state() == "" and not self.am_active(), 60,
                           f"no {ALERT_NAME} left over from start-up (pending, firing, or active in Alertmanager)",
                           _rel(self.logs / "alertmanager.log"))
        sched = (c.get_or_none(kube.ONCALL_SCHEDULES, "demo", ns) or {}).get("status") or {}
        on_call = (sched.get("currentOnCall") or {}).get("name") or "Alice"
        ids = ", ".join(sorted(container_ids(c, ns, "demo"))) or "?"
        self.line("checked", f"Deployment demo 1/1 ready (container {ids}), Paramedic's probe Healthy, "
                             f"Prometheus probe_success 1, {on_call} on call for team demo")

    def _wait_checked(self, cond: Callable[[], bool], timeout: float, what: str, logs: str) -> None:
        def checked() -> bool:
            self.check_processes()  # a process that died is a DemoError now, not a timeout later
            return cond()

        try:
            wait_for(checked, timeout, what, interval=0.3,
                     ignore=(kube.ApiError, kube.Unavailable, httpx.HTTPError, OSError))
        except WaitTimeout:
            raise DemoError(f"expected {what} within {timeout:.0f}s; it did not happen (logs: {logs})") from None

    def check_processes(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                log_path = self.logs / f"{name}.log"
                raise DemoError(f"{name} exited unexpectedly with code {proc.returncode}\n{_tail(log_path)}\n"
                                f"(log: {_rel(log_path)})")

    # --- queries the story polls -------------------------------------------------------------
    def prom_query(self, query: str) -> list[dict]:
        r = httpx.get(self.url("prometheus", "/api/v1/query"), params={"query": query}, timeout=3)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def prom_probe_success(self) -> int | None:
        result = self.prom_query('probe_success{job="demo-blackbox"}')
        return int(float(result[0]["value"][1])) if result else None

    def prom_alert_state(self) -> str:
        r = httpx.get(self.url("prometheus", "/api/v1/alerts"), timeout=3)
        r.raise_for_status()
        states = [a["state"] for a in r.json()["data"]["alerts"] if a["labels"].get("alertname") == ALERT_NAME]
        return "firing" if "firing" in states else ("pending" if states else "")

    def am_active(self) -> bool:
        r = httpx.get(self.url("alertmanager", "/api/v2/alerts"), params={"active": "true"}, timeout=3)
        r.raise_for_status()
        return any(a["labels"].get("alertname") == ALERT_NAME and a["status"]["state"] == "active" for a in r.json())

    def logs_hint(self) -> str:
        return f"logs in {_rel(self.logs)}/ (operator.log, webhook.log, prometheus.log, alertmanager.log, ...)"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        wait_for(cond, timeout, what, interval=0.3, ignore=())
    except WaitTimeout as exc:
        raise DemoError(str(exc)) from None


# --- the story ---------------------------------------------------------------------------------


@dataclass
class Story:
    demo: Demo
    t0: float = 0.0
    seen: dict[str, float] = field(default_factory=dict)
    mails: set[str] = field(default_factory=set)
    incident: str = ""
    others: set[str] = field(default_factory=set)
    attempts: dict[str, str] = field(default_factory=dict)   # attempt id -> last result told
    containers: set[str] = field(default_factory=set)      # IDs of the demo's Ready containers, as last told
    restarted_at: str = ""
    generation: int = 0
    rollout_told: bool = False
    last: dict = field(default_factory=dict)                 # the incident as last read

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def say(self, tag: str, text: str) -> None:
        self.demo.out(f"  {self.elapsed():6.1f}s  {'[' + tag + ']':<14} {text}")

    def detail(self, text: str) -> None:
        for line in text.splitlines():
            self.demo.out(f"  {'':6}   {'':<14}   {line}")

    def once(self, key: str) -> bool:
        """True the first time `key` is reached (the step is then told)."""
        if key in self.seen:
            return False
        self.seen[key] = self.elapsed()
        return True

    # the break -------------------------------------------------------------------------------
    def run(self) -> dict:
        d = self.demo
        self.mails = {p.name for p in d.mail_dir.glob("*.eml")}
        assert d.client is not None
        self.containers = container_ids(d.client, d.namespace, "demo")
        dep = d.client.get(kube.DEPLOYMENTS, "demo", d.namespace)
        self.generation = dep["metadata"]["generation"]
        d.out("The story (seconds since the break):")
        # A bad release: its container starts and is Ready (GET / works), but /healthz answers 500.
        d.kubectl("set", "env", "-n", d.namespace, "deployment/demo", "DEMO_HEALTH=broken")
        self.t0 = time.monotonic()
        self.say("break", f"a bad release of Deployment demo (env DEMO_HEALTH=broken) rolls out over container "
                          f"{', '.join(sorted(self.containers))}: its new container runs and is Ready, but "
                          f"{d.health_url} answers 500")
        while True:
            d.check_processes()
            self.poll()
            if self.finished():
                return self.last
            self.check_deadlines()
            time.sleep(POLL)

    def poll(self) -> None:
        for step in (self.poll_prometheus, self.poll_service, self.poll_incidents, self.poll_deployment,
                     self.poll_mail):
            try:
                step()
            except (kube.Unavailable, httpx.HTTPError, OSError, KeyError, ValueError, IndexError) as exc:
                # A slow or restarting component is not a failed story; deadlines decide that.
                self.seen.setdefault(f"error:{step.__name__}:{exc.__class__.__name__}", self.elapsed())

    def poll_prometheus(self) -> None:
        d = self.demo
        value = d.prom_probe_success()
        if value == 0 and self.once("blackbox-failed"):
            self.say("probe", "blackbox_exporter: probe_success 0 (Prometheus scraped the failed probe)")
        state = d.prom_alert_state() if "alert-firing" not in self.seen else "firing"
        if state == "pending" and self.once("alert-pending"):
            self.say("alert", f"Prometheus: {ALERT_NAME} pending (probe_success == 0, for: 4s)")
        if state == "firing" and self.once("alert-firing"):
            self.say("alert", f"Prometheus: {ALERT_NAME} firing, sent to Alertmanager")
        if "alert-firing" in self.seen and "alert-am-resolved" not in self.seen:
            active = d.am_active()
            if active and self.once("alert-am"):
                self.say("alert", f"Alertmanager: {ALERT_NAME} active; notifying the Paramedic webhook "
                                  f"(bearer token, send_resolved)")
            if not active and "alert-am" in self.seen and "recovered" in self.seen and self.once("alert-am-resolved"):
                self.say("alert", f"Alertmanager: {ALERT_NAME} resolved; the resolution goes to the webhook too")
        if value == 1 and "recovered" in self.seen and self.once("blackbox-ok"):
            self.say("recovery", "blackbox_exporter: probe_success 1 again")

    def poll_service(self) -> None:
        d = self.demo
        assert d.client is not None
        svc = d.client.get_or_none(kube.MONITORED_SERVICES, "demo", d.namespace) or {}
        st = svc.get("status") or {}
        probe = st.get("lastProbe") or {}
        if st.get("health") == "Down" and self.once("probe-down"):
            why = probe.get("error") or f"status {probe.get('statusCode')}"
            self.say("probe", f"Paramedic's probe: demo is Down after 2 consecutive failures ({why})")
        if st.get("health") == "Healthy" and "probe-down" in self.seen and self.once("probe-healthy"):
            self.say("recovery", "Paramedic's probe: demo is Healthy again (2 consecutive successes)")
        if _http_status(d.health_url, timeout=1) == 200 and "ansible-start" in self.seen and self.once("recovered"):
            self.say("recovery", f"{d.health_url} answers 200 again, from container "
                                 f"{', '.join(sorted(self.containers)) or '?'}")

    def poll_incidents(self) -> None:
        d = self.demo
        assert d.client is not None
        items = d.client.list(kube.INCIDENTS, d.namespace)
        items.sort(key=lambda o: (o["metadata"].get("creationTimestamp", ""), o["metadata"]["name"]))
        for obj in items:
            name = obj["metadata"]["name"]
            if not self.incident:
                self.incident = name
                self.once("incident")
                spec = obj["spec"]
                self.say("incident", f"Incident {name} opened by {spec.get('source')}: {spec.get('title')}")
                self.kubectl_get()
            elif name != self.incident and name not in self.others:
                self.others.add(name)
                self.say("incident", f"another Incident {name} ({obj['spec'].get('source')}): "
                                     f"{obj['spec'].get('title')}")
        inc = next((o for o in items if o["metadata"]["name"] == self.incident), None)
        if inc is None:
            return
        self.last = inc
        spec, st = inc["spec"], inc.get("status") or {}
        # The assignee lands in spec a moment before the timeline says who is on call: tell it from there.
        entry = next((e for e in st.get("timeline") or [] if e.get("type") == "assigned"), None)
        if spec.get("assignee") and entry and self.once("assigned"):
            self.say("on-call", entry.get("message") or f"assigned to {spec['assignee']}")
        alerts = st.get("alerts") or []
        if alerts and self.once("alert-recorded"):
            a = alerts[0]
            self.say("alert", f"webhook: Alertmanager's {a.get('alertname') or 'alert'} recorded on {self.incident} "
                              f"(status.alerts, {len(alerts)} alert{'s' if len(alerts) != 1 else ''})")
        if alerts and all(a.get("status") == "resolved" for a in alerts) and self.once("alert-resolved"):
            self.say("alert", f"webhook: Alertmanager sent the resolution; every alert of {self.incident} is resolved")
        for attempt in (st.get("remediation") or {}).get("attempts") or []:
            self.tell_attempt(attempt)
        state = spec.get("state")
        if state == "mitigated" and self.once("mitigated"):
            self.say("incident", f"{self.incident} mitigated: the remediation worked")
        if state in ("resolved", "closed") and st.get("mttrSeconds") is not None and self.once("resolved"):
            change: dict[str, Any] = next((e for e in reversed(st.get("timeline") or []) if e.get("type") == "state"
                                          and "resolved" in e.get("message", "")), {})
            by = f" by {change['actor']}" if change.get("actor") else ""
            nobody = " (nobody had to acknowledge it)" if st.get("acknowledgedAt") == st.get("resolvedAt") else ""
            self.say("resolved", f"{self.incident} resolved{by} ({change.get('message', state)}): "
                                 f"MTTA {_secs(st.get('mttaSeconds'))}, MTTR {_secs(st.get('mttrSeconds'))}{nobody}")
            self.kubectl_get()

    def tell_attempt(self, attempt: dict) -> None:
        aid, result = attempt.get("id", ""), attempt.get("result", "")
        if self.attempts.get(aid) == result:
            return
        first = aid not in self.attempts
        self.attempts[aid] = result
        n = int(attempt.get("index") or 0) + 1
        action = attempt.get("action", "")
        if first:
            self.once("restart" if action == "restart" else ("ansible-start" if action == "ansible" else action))
            what = attempt.get("detail") or action
            if action == "ansible":
                what += (" (ansible-runner, kubernetes.core): roll Deployment demo back to its last revision "
                         "with a different pod spec, then wait for the rollout")
            self.say("remediation", f"attempt {n}: {what}")
            if result == AttemptResult.RUNNING:
                return
        if action == "restart":
            self.poll_deployment()  # the rollout's own lines first: they happened before this result
        message = attempt.get("message", "")
        if result == AttemptResult.VERIFYING:
            extra = f"; playbook rc {attempt.get('rc')}, {attempt.get('status')}" if action == "ansible" else ""
            self.say("remediation", f"attempt {n} done ({message}{extra}); verifying the service recovers")
        elif result == AttemptResult.SUCCEEDED:
            self.once(f"attempt-{action}-succeeded")
            self.say("remediation", f"attempt {n} succeeded: {message}")
        elif result in ENDED_UNSUCCESSFULLY:
            self.say("remediation", f"attempt {n} {result.lower()}: {message}")
            if action == "ansible" and attempt.get("outputTail"):
                self.detail(attempt["outputTail"][-800:])
        else:
            self.say("remediation", f"attempt {n}: {result} {message}".rstrip())

    def poll_deployment(self) -> None:
        d = self.demo
        assert d.client is not None
        dep = d.client.get_or_none(kube.DEPLOYMENTS, "demo", d.namespace) or {}
        template = ((dep.get("spec") or {}).get("template") or {})
        ann = (template.get("metadata") or {}).get("annotations") or {}
        restarted = ann.get("kubectl.kubernetes.io/restartedAt", "")
        if restarted and restarted != self.restarted_at:
            self.restarted_at = restarted
            self.say("remediation", f"Deployment demo: rollout restart (template annotation restartedAt={restarted})")
        generation = (dep.get("metadata") or {}).get("generation", 0)
        if generation != self.generation:
            self.generation = generation
            self.rollout_told = False
            env = {e.get("name"): e.get("value") for c in (template.get("spec") or {}).get("containers") or []
                   for e in c.get("env") or []}
            rev = (dep.get("metadata", {}).get("annotations") or {}).get("deployment.kubernetes.io/revision", "?")
            if "ansible-start" in self.seen and "DEMO_HEALTH" not in env and self.once("rolled-back"):
                self.say("remediation", f"Deployment demo: pod template rolled back (revision {rev}, "
                                        "no DEMO_HEALTH=broken)")
        st = dep.get("status") or {}
        want = (dep.get("spec") or {}).get("replicas", 1)
        if not self.rollout_told and st.get("observedGeneration", 0) >= generation \
                and st.get("updatedReplicas") == want and st.get("availableReplicas") == want \
                and st.get("replicas") == want:
            ids = container_ids(d.client, d.namespace, "demo")
            if ids and ids != self.containers:
                self.rollout_told = True
                self.once("rollout-done")
                # kube-proxy moves the Service to the new pod a moment after the rollout ends.
                try:
                    code = wait_for(lambda: _http_status(d.health_url, timeout=1), 3, "/healthz", interval=0.1,
                                    ignore=())
                except WaitTimeout:
                    code = None
                self.say("remediation", f"Deployment demo: rollout finished on the real node: container "
                                        f"{', '.join(sorted(self.containers)) or '-'} → {', '.join(sorted(ids))} "
                                        f"(Ready; /healthz {code or 'unreachable'})")
                self.containers = ids

    def poll_mail(self) -> None:
        for path in sorted(self.demo.mail_dir.glob("*.eml")):
            if path.name in self.mails:
                continue
            self.mails.add(path.name)
            with open(path, "rb") as fh:
                msg = BytesParser(policy=policy.default).parse(fh)
            self.once("mail")
            to = msg.get("X-Original-To") or msg.get("To") or "?"
            subject = " ".join(str(msg.get("Subject") or "(no subject)").split())
            self.say("mail", f"to {to}: {subject}")

    def kubectl_get(self) -> None:
        proc = self.demo.kubectl("get", "inc", "-n", self.demo.namespace, self.incident, check=False, timeout=20)
        self.detail(f"$ kubectl get inc -n {self.demo.namespace} {self.incident}")
        self.detail((proc.stdout or proc.stderr).rstrip())

    # the end ---------------------------------------------------------------------------------
    def finished(self) -> bool:
        """Resolved, Alertmanager's resolution seen, every e-mail delivered; then a short grace for
        the last records (the alert's resolution on the incident, the playbook's result)."""
        if "resolved" not in self.seen:
            return False
        if "alert-firing" in self.seen and "alert-am-resolved" not in self.seen:
            return False
        st = self.last.get("status") or {}
        mails = [n for n in st.get("notifications") or [] if n.get("channel") in ("email", "pending")]
        if any(n.get("result") in ("pending", "retrying") for n in mails):
            return False
        if not any(n.get("event") == "resolved" and n.get("result") == "sent" for n in mails):
            return False
        if len(self.mails) < sum(1 for n in mails if n.get("result") == "sent"):
            return False
        attempts = (st.get("remediation") or {}).get("attempts") or []
        settled = ("alert-resolved" in self.seen or not st.get("alerts")) \
            and not any(a.get("result") in IN_PROGRESS_RESULTS for a in attempts)
        return settled or self.elapsed() - self.seen["resolved"] > SETTLE_SECONDS

    REQUIRED = (
        ("probe", ("probe-down", "blackbox-failed"), "the probes to fail: Paramedic's probe marking demo Down, "
                                                     "or blackbox_exporter's probe_success 0 in Prometheus"),
        ("incident", ("incident",), "an Incident in the namespace (opened by the operator's probe or the webhook)"),
        ("assigned", ("assigned",), "the incident assigned to the on-call person of team demo"),
        ("alert", ("alert-firing",), f"Prometheus to fire {ALERT_NAME} (rule in rules.yml, for: 4s)"),
        ("mail", ("mail",), "an e-mail in the mail folder (the operator sends through the demo's SMTP server)"),
        ("alert-recorded", ("alert-recorded",), "Alertmanager's alert recorded on the incident by the webhook"),
        ("restart", ("restart",), "remediation attempt 1: a rollout restart of Deployment demo"),
        ("ansible", ("ansible-start",), "remediation attempt 2: the Ansible playbook rollback-deployment.yml"),
        ("recovered", ("recovered",), "the demo service answering 200 again after the playbook rolled it back"),
        ("resolved", ("resolved",), "the incident resolved (probe recovered or all alerts resolved), with MTTR"),
        ("story-end", ("__finished__",), "Alertmanager's resolution and every e-mail delivered "
                                         "(incl. the 'resolved' one)"),
    )

    def check_deadlines(self) -> None:
        now = self.elapsed()
        rem = (self.last.get("status") or {}).get("remediation") or {}
        if rem.get("phase") in ("Exhausted", "Capped") and "recovered" not in self.seen:
            raise DemoError(f"at {now:.0f}s: expected the remediation to repair the demo service; instead: "
                            f"{rem.get('message')}\n{self.diagnostics()}{self.demo.logs_hint()}")
        for key, marks, expected in self.REQUIRED:
            if now > DEADLINES[key] and not any(m in self.seen for m in marks):
                raise DemoError(f"at {now:.0f}s: expected {expected} within {DEADLINES[key]}s of the break; "
                                f"it did not happen.\n{self.diagnostics()}{self.demo.logs_hint()}")

    def diagnostics(self) -> str:
        st = self.last.get("status") or {}
        lines = []
        if self.incident:
            lines.append(f"incident {self.incident}: state {self.last.get('spec', {}).get('state')}, "
                         f"remediation {(st.get('remediation') or {}).get('phase')}: "
                         f"{(st.get('remediation') or {}).get('message', '')}")
            for e in (st.get("timeline") or [])[-12:]:
                lines.append(f"  {e.get('time', '')} {e.get('type', '')}: {e.get('message', '')}")
            for n in st.get("notifications") or []:
                if n.get("result") not in ("sent", "skipped"):
                    lines.append(f"  notification {n.get('key')} via {n.get('channel')}: {n.get('result')} "
                                 f"{n.get('error', '')}")
        errors = sorted(k for k in self.seen if k.startswith("error:"))
        if errors:
            lines.append("polling errors seen: " + ", ".join(e.split(":", 1)[1] for e in errors))
        return "".join(line + "\n" for line in lines)


def container_ids(client: kube.KubeClient, namespace: str, app: str) -> set[str]:
    """Short IDs of the Ready containers of an app's pods that are not going away."""
    out = set()
    for pod in client.list(kube.PODS, namespace, labels={"app": app}):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("ready") and cs.get("containerID"):
                out.add(cs["containerID"].split("://", 1)[-1][:12])
    return out


def _secs(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    return f"{value:.0f}s" if value < 120 else f"{value / 60:.1f} min"


# --- the end of the story -------------------------------------------------------------------------


def write_postmortem(demo: Demo, incident: dict) -> Path:
    assert demo.client is not None
    fresh = demo.client.get(kube.INCIDENTS, incident["metadata"]["name"], demo.namespace)
    path = demo.root / f"postmortem-{fresh['metadata']['name']}.md"
    path.write_text(render_postmortem(fresh, utcnow()))
    return path


def try_next(demo: Demo, incident: str) -> None:
    ns = demo.namespace
    kcfg = demo.kubeconfig
    bins = f"{REPO / '.paramedic' / 'bin'}:{VENV_BIN}"
    lines = [
        "",
        "Everything is still running. Try:",
        f"  export KUBECONFIG={kcfg} PATH={bins}:$PATH",
        f"  kubectl get inc,msvc,oncall -n {ns}",
        f"  kubectl get inc {incident} -n {ns} -o yaml         # timeline, alerts, remediation, notifications",
        f"  kubectl paramedic list -n {ns}",
        f"  kubectl paramedic show {incident} -n {ns}",
        f"  kubectl paramedic rca {incident} -n {ns} --root-cause 'a bad release (DEMO_HEALTH=broken)'",
        f"  kubectl paramedic close {incident} -n {ns}",
        f"  kubectl paramedic report {incident} -n {ns}",
        f"  kubectl paramedic oncall demo -n {ns}",
        f"  kubectl paramedic stats -n {ns}",
        f"  curl -X POST {demo.service_url('/break')}     # break it in memory: the restart heals this one",
        f"  kubectl get pods -n {ns} -o wide                 # the demo's real container on {devnode.NODE_NAME}",
        "  # an alert no MonitoredService matches: an unmanaged incident, recorded, not remediated",
        f"  PARAMEDIC_WEBHOOK_URL={demo.url('webhook')} PARAMEDIC_WEBHOOK_TOKEN_FILE={demo.token_file} \\",
        f"    kubectl paramedic fire -n {ns} --service billing --severity low --message 'disk 80% full'",
        "",
        f"  console        {demo.url('console')}   (sign in with the token below: the demo responder)",
        f"  token          {demo.console_token_file.read_text().strip() if demo.console_token_file.exists() else '-'}",
        f"  Prometheus     {demo.url('prometheus', '/alerts')}",
        f"  Alertmanager   {demo.url('alertmanager')}",
        f"  mail           {_rel(demo.mail_dir)}/*.eml",
        f"  logs           {_rel(demo.logs)}/",
        "",
        "  make demo-down                                  # stops all of it",
    ]
    for line in lines:
        demo.out(line)


def run(demo: Demo) -> int:
    begun = time.monotonic()
    try:
        demo.setup()
        story = Story(demo)
        incident = story.run()
        name = incident["metadata"]["name"]
        path = write_postmortem(demo, incident)
        story.say("report", f"post-mortem written to {_rel(path)} (paramedic.domain.report; also "
                            f"`kubectl paramedic report {name}`)")
        took = story.seen.get("resolved", story.elapsed())
        demo.out(f"\nSelf-healed: detected, paged, repaired and resolved {took:.0f}s after the break, "
                 f"without a person (the whole demo took {time.monotonic() - begun:.0f}s).")
        if demo.exit_after:
            demo.out("DEMO_EXIT is set: stopping everything.")
            _down(demo.root, demo.out)
        else:
            try_next(demo, name)
        return 0
    except DemoError as exc:
        demo.out(f"\nDEMO FAILED: {exc}")
        return _after_failure(demo)
    except KeyboardInterrupt:
        demo.out("\ninterrupted.")
        return _after_failure(demo, code=130)
    except (kube.ApiError, kube.Unavailable, httpx.HTTPError, subprocess.SubprocessError, OSError) as exc:
        demo.out(f"\nDEMO FAILED: {exc.__class__.__name__}: {exc}\n{demo.logs_hint()}")
        return _after_failure(demo)
    finally:
        if demo.client is not None:
            demo.client.close()


def _after_failure(demo: Demo, code: int = 1) -> int:
    if demo.exit_after:
        _down(demo.root, demo.out)
    elif demo.state_file.exists():
        demo.out("What started is still running for a look; `make demo-down` stops it.")
    return code


# --- down -------------------------------------------------------------------------------------------


STOP_ORDER = ("console", "operator", "webhook", "prometheus", "alertmanager", "blackbox", "smtp")


def stop_recorded(root: Path, *, stop_cluster: bool, delete_namespace: bool, log: Callable[[str], None]) -> None:
    """Stop what a demo recorded in root/state.json; the cluster only if the demo started it."""
    state_file = root / "state.json"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return
    procs = state.get("processes") or {}
    for name in sorted(procs, key=lambda n: STOP_ORDER.index(n) if n in STOP_ORDER else -1):
        rec = procs[name]
        if stop_process(int(rec.get("pid") or 0), rec.get("match") or name):
            log(f"stopped {name} (pid {rec['pid']})")
    kubeconfig = state.get("kubeconfig")
    if state.get("clusterStarted") and stop_cluster:
        cluster_root = Path(state.get("clusterRoot") or root / "cluster")
        DevCluster(root=cluster_root, kubeconfig=Path(kubeconfig or root / "kubeconfig")).down(quiet=True)
        log("stopped the demo's control plane")
    elif delete_namespace and kubeconfig and state.get("namespaceApplied") and Path(kubeconfig).exists():
        # A shared cluster stays; the demo's namespace goes.
        ns = state.get("namespace") or "paramedic-demo"
        try:
            client = kube.KubeClient(kube.Connection.load(kubeconfig), timeout=5)
            try:
                client.delete(kube.NAMESPACES, ns)
            finally:
                client.close()
            log(f"deleting namespace {ns} (the cluster itself keeps running)")
        except Exception as exc:  # best effort on the way out: the kubeconfig loaders raise assorted types
            log(f"could not delete namespace {ns}: {exc}")
    state_file.unlink(missing_ok=True)


def _down(root: Path, log: Callable[[str], None]) -> None:
    if not (root / "state.json").exists():
        log(f"no demo running (nothing recorded in {_rel(root)}/state.json)")
        return
    stop_recorded(root, stop_cluster=True, delete_namespace=True, log=log)
    log("demo stopped")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv else "up"
    if cmd in ("up", "run"):
        return run(Demo.from_env())
    if cmd == "down":
        _down(Demo.from_env().root, say)
        return 0
    print("usage: python -m devtools.demo [down]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
