"""Start-up preflight: before Kopf runs, find out what the operator would wait for, and say so.

Kopf waits silently when what it needs is missing: with no Paramedic CRDs it watches
nothing, and a forbidden list retries quietly. So before `kopf.run` the operator checks,
through `paramedic.kube`:

- the API server answers and accepts the credentials (else: an ERROR per attempt, and
  retries with exponential backoff);
- Paramedic's CRDs are served (API discovery, which any identity may read);
- RBAC allows list and watch of each watched resource and patch of its status, in each
  watched namespace or cluster-wide (SelfSubjectAccessReview); when the namespaces to
  watch are listed and the namespaces themselves may not be listed, Kopf's scanning is
  turned off (it would retry for about a minute before watching anything);
- unless standalone: the replicas' Leases are usable in Paramedic's own namespace
  (PARAMEDIC_NAMESPACE): it exists, and RBAC allows every verb the shards use on
  leases.coordination.k8s.io there. Without them a replica would hold no shard and
  handle nothing, so they are waited for like a CRD.

Missing CRDs or permissions are logged as an ERROR naming each missing piece and the
fix, then re-checked every PARAMEDIC_PREFLIGHT_INTERVAL_SECONDS, so applying them later
lets the operator start without a restart. Meanwhile /healthz answers 200 with
`{"status": "waiting", "waitingFor": [...]}`: the process is alive and doing the right
thing, and a restart would not fix a missing CRD (it would only add CrashLoopBackOff's
delay once it is fixed).

The decisions are the pure functions here (`needs`, `decide`, `connection_problem`,
`retry_delay`, `Reporter`); `inspect` and `wait_until_ready` are the I/O.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from paramedic import kube
from paramedic.domain.resources import Resource
from paramedic.settings import Settings

log = logging.getLogger("paramedic.operator.preflight")

PARAMEDIC_RESOURCES = (kube.INCIDENTS, kube.MONITORED_SERVICES, kube.ONCALL_SCHEDULES)
# Every verb the shards use on their Leases (operator/shards.py), in Paramedic's namespace only
# (tests/chart/test_rbac_needs.py holds this, the code's calls and the Role equal).
LEASE_VERBS = ("get", "list", "create", "patch", "delete")

CRDS_FIX = "kubectl apply -f manifests/crds/ (or install the chart charts/paramedic, which carries them)"
RBAC_FIX = ("grant them with manifests/rbac.yaml (ClusterRole paramedic-operator) or the chart (rbac.create=true), "
            "which hold every rule the operator needs")
LEASES_FIX = ("grant them with manifests/rbac.yaml (Role and RoleBinding paramedic-operator-leases in Paramedic's "
              "namespace) or the chart (rbac.create=true); or run one replica alone with --standalone, which uses "
              "no Lease")
BACKOFF_CAP_SECONDS = 30.0
FULL_REPORT_EVERY_SECONDS = 300.0


def crd_name(res: kube.Resource) -> str:
    return f"{res.plural}.{res.group}"


def scopes(namespaces: Sequence[str]) -> list[str | None]:
    """Where the operator watches: each namespace, or (None) the whole cluster."""
    return list(namespaces) or [None]


@dataclass(frozen=True)
class Need:
    """One permission the operator needs: `verb` on a resource, in a namespace or cluster-wide (None)."""

    verb: str
    resource: kube.Resource
    subresource: str = ""
    namespace: str | None = None

    @property
    def what(self) -> str:
        group = f".{self.resource.group}" if self.resource.group else ""
        return f"{self.resource.plural}{'/' + self.subresource if self.subresource else ''}{group}"

    def describe(self) -> str:
        where = f"in namespace {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.verb} {self.what} {where}"

    def can_i(self, user: str = "") -> str:
        """The kubectl command that shows the same answer."""
        where = f" -n {self.namespace}" if self.namespace else " --all-namespaces"
        return f"kubectl auth can-i {self.verb} {self.what}{where}" + (f" --as={user}" if user else "")

    def review(self) -> dict:
        attrs = {"group": self.resource.group, "resource": self.resource.plural, "verb": self.verb}
        if self.subresource:
            attrs["subresource"] = self.subresource
        if self.namespace:
            attrs["namespace"] = self.namespace
        return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}

    @property
    def lease(self) -> bool:
        return self.resource == kube.LEASES

    @property
    def scanning(self) -> bool:
        return self.resource == kube.NAMESPACES


def needs(namespaces: Sequence[str], leases_namespace: str | None) -> list[Need]:
    """What Kopf's watches and the reconcilers' status writes need, in every watched scope, and
    the shards' Leases in `leases_namespace` (None: standalone, no Lease)."""
    out: list[Need] = []
    for ns in scopes(namespaces):
        for res in PARAMEDIC_RESOURCES:
            out += [Need("list", res, namespace=ns), Need("watch", res, namespace=ns),
                    Need("patch", res, "status", namespace=ns)]
    if leases_namespace is not None:
        out += [Need(verb, kube.LEASES, namespace=leases_namespace) for verb in LEASE_VERBS]
    if namespaces:  # Kopf's namespace scanning; without it the namespaces given are watched as they are
        out += [Need("list", kube.NAMESPACES), Need("watch", kube.NAMESPACES)]
    return out


@dataclass
class Findings:
    """What `inspect` found on the API server."""

    served: set[str] = field(default_factory=set)  # "plural.group" of the resources asked about
    namespace_missing: bool = False  # Paramedic's namespace, where the Leases live, does not exist
    denied: list[Need] = field(default_factory=list)
    rbac_unchecked: str = ""  # why permissions could not be checked, if they could not
    user: str = ""  # who the API server says we are, when it says


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)  # the operator waits until none is left
    warnings: list[str] = field(default_factory=list)
    waiting_for: list[str] = field(default_factory=list)  # short forms, for /healthz and repeated lines
    scanning: bool = True  # Kopf's namespace and CRD scanning

    @property
    def ready(self) -> bool:
        return not self.problems


def decide(found: Findings, namespaces: Sequence[str], leases_namespace: str | None) -> Verdict:
    """What the findings mean. `leases_namespace` None: standalone, no Lease is used."""
    v = Verdict()
    who = found.user or "the operator's identity"

    missing = [crd_name(r) for r in PARAMEDIC_RESOURCES if crd_name(r) not in found.served]
    if missing:
        v.problems.append(f"Paramedic's CRDs are not installed: {', '.join(missing)}. Nothing is watched until "
                          f"they are. Fix: {CRDS_FIX}.")
        v.waiting_for.append("CRDs " + ", ".join(missing))

    denied = [n for n in found.denied if not n.lease and not n.scanning]
    if denied:
        lines = "\n".join(f"  - {n.describe()}" for n in denied)
        v.problems.append(f"RBAC forbids {who} {len(denied)} permission(s) the operator needs:\n{lines}\n"
                          f"Fix: {RBAC_FIX}. Check with: {denied[0].can_i(found.user)}")
        v.waiting_for.append("RBAC: " + "; ".join(n.describe() for n in denied))

    if leases_namespace is not None:
        if found.namespace_missing:
            v.problems.append(f"Paramedic's namespace {leases_namespace} (PARAMEDIC_NAMESPACE) does not exist: the "
                              f"replicas' Leases live there, and without them no shard is held and nothing is "
                              f"handled. Fix: kubectl create namespace {leases_namespace}, or set "
                              f"PARAMEDIC_NAMESPACE to the namespace Paramedic is installed in.")
            v.waiting_for.append(f"namespace {leases_namespace}")
        refused = [n for n in found.denied if n.lease]
        if refused:
            verbs = ", ".join(n.verb for n in refused)
            v.problems.append(f"RBAC forbids {who} {verbs} on leases.coordination.k8s.io in namespace "
                              f"{leases_namespace}: the replicas share the work through Leases there, and without "
                              f"them no shard is held and nothing is handled. Fix: {LEASES_FIX}. Check with: "
                              f"{refused[0].can_i(found.user)}")
            v.waiting_for.append(f"Leases in namespace {leases_namespace}: {verbs}")

    unscanned = [n for n in found.denied if n.scanning]
    if unscanned:
        # Kopf would retry the forbidden namespace listing for about a minute before going on.
        v.scanning = False
        v.warnings.append(f"{who} may not {' or '.join(n.describe() for n in unscanned)}: Kopf's scanning is off, "
                          f"so {', '.join(namespaces)} are watched as given, and a namespace or CRD created or "
                          f"re-created while the operator runs is only seen after a restart")

    if found.rbac_unchecked:
        v.warnings.append(f"could not check the operator's permissions ({found.rbac_unchecked}); going on: "
                          f"a forbidden watch will only show in Kopf's own retries")
    return v


# --- connecting ------------------------------------------------------------------

def credentials_source(kubeconfig: str = "", env: Mapping[str, str] | None = None) -> str:
    """Where the credentials come from, for messages (the order `kube.Connection.load` uses)."""
    env = os.environ if env is None else env
    if kubeconfig:
        return f"kubeconfig {kubeconfig}"
    if env.get("KUBECONFIG"):
        return f"kubeconfig {env['KUBECONFIG']} ($KUBECONFIG)"
    if kube.uses_service_account(env=env):
        return "the pod's service account"
    return "kubeconfig ~/.kube/config"


def connection_problem(exc: BaseException | None, host: str, source: str) -> str:
    """What a failed request says about the connection, in words a newcomer can act on."""
    if isinstance(exc, kube.ApiError) and exc.status == 401:
        return (f"the API server at {host} refused the credentials from {source} (401 Unauthorized): the token "
                f"or client certificate is wrong or expired")
    if isinstance(exc, kube.ApiError):
        return f"the API server at {host} answered {exc} (credentials from {source})"
    return f"cannot reach the API server at {host} (credentials from {source}): {exc}"


def retry_delay(attempt: int, cap: float = BACKOFF_CAP_SECONDS) -> float:
    """Seconds before attempt `attempt + 1`: 1, 2, 4, ... up to `cap`."""
    return min(cap, 2.0 ** max(0, attempt - 1))


class Reporter:
    """The full ERROR when what is missing changes, and at least every few minutes; a
    one-line ERROR on the re-checks in between, so a long wait is loud but not a flood."""

    def __init__(self, interval: float, full_every: float = FULL_REPORT_EVERY_SECONDS):
        self.interval, self.full_every = interval, full_every
        self._last: list[str] | None = None
        self._last_full = 0.0

    def lines(self, verdict: Verdict, now: float) -> list[tuple[int, str]]:
        if verdict.problems != self._last or now - self._last_full >= self.full_every:
            self._last, self._last_full = list(verdict.problems), now
            out = [(logging.ERROR, f"waiting (re-checking every {self.interval:g}s): {p}") for p in verdict.problems]
            return out + [(logging.WARNING, w) for w in verdict.warnings]
        return [(logging.ERROR, f"still waiting for {'; '.join(verdict.waiting_for)} "
                                f"(re-checking every {self.interval:g}s)")]


# --- I/O ---------------------------------------------------------------------------

def inspect(client: kube.KubeClient, namespaces: Sequence[str], leases_namespace: str | None,
            workers: int = 8) -> Findings:
    """Ask the API server. Raises kube.Unavailable / kube.ApiError when it cannot be asked at all."""
    found = Findings()
    found.served |= {f"{p}.{kube.GROUP}" for p in client.served(kube.GROUP, kube.VERSION) or ()}
    if leases_namespace is not None:
        # An access review allows verbs in a namespace that does not exist; a Lease cannot be made there.
        try:
            found.namespace_missing = client.get_or_none(kube.NAMESPACES, leases_namespace) is None
        except kube.ApiError as exc:
            if exc.status != 403:
                raise
            # May not read namespaces: then a missing one shows only in the shards' own errors.
    found.user = whoami(client)
    wanted = needs(namespaces, leases_namespace)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(lambda n: _allowed(client, n), wanted))
    for need, answer in zip(wanted, answers, strict=True):
        if isinstance(answer, kube.ApiError):
            found.rbac_unchecked = f"SelfSubjectAccessReview: {answer}"
        elif not answer:
            found.denied.append(need)
    return found


def _allowed(client: kube.KubeClient, need: Need) -> bool | kube.ApiError:
    try:
        out = client.create(kube.SELF_SUBJECT_ACCESS_REVIEWS, need.review())
    except kube.ApiError as exc:
        if exc.status == 401:
            raise
        return exc
    return bool(Resource(out).status.get("allowed"))


def whoami(client: kube.KubeClient) -> str:
    """The user name the API server sees (SelfSubjectReview); empty when it does not say."""
    try:
        return client.user_name()
    except kube.ApiError as exc:
        if exc.status == 401:
            raise
        return ""


class WaitingHealth:
    """/healthz while the preflight waits: 200 with what it waits for (alive, not stuck)."""

    def __init__(self, port: int, host: str = "0.0.0.0"):
        self.port, self.host = port, host
        self.waiting_for: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    def update(self, waiting_for: Iterable[str]) -> None:
        self.waiting_for = list(waiting_for)
        if self._server is None:
            self._start()

    def _start(self) -> None:
        health = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?", 1)[0] != "/healthz":
                    self.send_error(404)
                    return
                body = json.dumps({"status": "waiting", "waitingFor": health.waiting_for}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        try:
            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            log.warning("cannot serve /healthz on port %d while waiting: %s", self.port, exc)
            self._server = None
            self.port = -1  # do not try again
            return
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="preflight-healthz", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class ConfigurationError(Exception):
    """Nothing to retry: the credentials cannot even be loaded."""


def wait_until_ready(settings: Settings, namespaces: Sequence[str], leases: bool,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> Verdict:
    """Block until the operator has what it needs (with `leases`, the shards' Leases in
    Paramedic's namespace too); the verdict says whether Kopf may scan namespaces."""
    source = credentials_source(settings.kubeconfig)
    try:
        conn = kube.Connection.load(settings.kubeconfig)
    except Exception as exc:  # the loaders raise many kinds: a missing file, bad YAML, no context
        raise ConfigurationError(f"cannot load Kubernetes credentials from {source}: "
                                 f"{exc.__class__.__name__}: {exc}") from exc
    client = kube.KubeClient(conn, timeout=settings.api_timeout_seconds)
    health = WaitingHealth(settings.health_port)
    reporter = Reporter(settings.preflight_interval_seconds)
    where = ", ".join(f"namespace {n}" for n in namespaces) or "all namespaces"
    leases_namespace = settings.namespace if leases else None
    log.info("preflight: checking the API server at %s (credentials from %s), Paramedic's CRDs, RBAC for %s%s",
             conn.host, source, where, f" and the Leases in namespace {leases_namespace}" if leases else "")

    def unreachable(state: RetryCallState) -> None:
        problem = connection_problem(state.outcome.exception() if state.outcome else None, conn.host, source)
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.error("preflight attempt %d: %s; retrying in %gs", state.attempt_number, problem, delay)
        health.update([problem])

    # An unreachable API server or refused credentials: the same checks again, 1 s doubling to the cap.
    retrying = Retrying(retry=retry_if_exception_type((kube.Unavailable, kube.ApiError)),
                        wait=lambda state: retry_delay(state.attempt_number), sleep=sleep,
                        before_sleep=unreachable, reraise=True)
    try:
        while True:
            found = retrying(inspect, client, namespaces, leases_namespace)
            failures = int(retrying.statistics.get("attempt_number", 1)) - 1
            if failures:
                log.info("preflight: the API server at %s answered after %d failed attempt(s)", conn.host, failures)
            verdict = decide(found, namespaces, leases_namespace)
            if verdict.ready:
                for w in verdict.warnings:
                    log.warning(w)
                log.info("preflight passed: CRDs served, permissions granted%s; starting Kopf",
                         f", Leases usable in namespace {leases_namespace}" if leases
                         else " (standalone: no Leases, every shard is this replica's)")
                return verdict
            for level, line in reporter.lines(verdict, clock()):
                log.log(level, line)
            health.update(verdict.waiting_for)
            sleep(settings.preflight_interval_seconds)
    finally:
        health.stop()
        client.close()
