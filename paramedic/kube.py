"""The one Kubernetes client layer.

Connection details come from the `kubernetes` package's loaders (kubeconfig or
in-cluster service account); plain JSON in and out. Every call is described once, as
data: a `Request` (method, path and query, JSON body, content type, whether 404 means
"absent") built by a pure function, or a `Plan` (a generator of requests, for a LIST
over pages). Two executors send them, each with one pooled client per process:
`KubeClient` (sync, httpx) for the webhook, the CLI and the console, and
`AsyncKubeClient` (async, aiohttp) for the operator, whose request rate makes the
client's CPU per request matter (see bench/RESULTS.md). Both offer the same calls
(`_Calls`, defined once); the sync one adds `watch`, `served` and `healthy`. Errors are
mapped to a few exception types callers can act on.
"""
# Checked strictly but for this: each call is written once over its executor's result types
# (TypeVars), and returns what the transport decoded from JSON (Any) as that type.
# mypy: no-warn-return-any

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Self, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import httpx
from yarl import URL

from . import metrics
from .domain.resources import Resource as View
from .domain.resources import mapping, sequence

T = TypeVar("T")

GROUP = "paramedic.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
        if subresource:
            base += f"/{subresource}"
        return base


INCIDENTS = Resource(GROUP, VERSION, "incidents", "Incident")
MONITORED_SERVICES = Resource(GROUP, VERSION, "monitoredservices", "MonitoredService")
ONCALL_SCHEDULES = Resource(GROUP, VERSION, "oncallschedules", "OnCallSchedule")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
CONTROLLER_REVISIONS = Resource("apps", "v1", "controllerrevisions", "ControllerRevision")
PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
SECRETS = Resource("", "v1", "secrets", "Secret")  # the console's sessions, in Paramedic's namespace only
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
EVENTS = Resource("events.k8s.io", "v1", "events", "Event")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")  # the operator replicas' shards, in Paramedic's namespace
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", namespaced=False)
SELF_SUBJECT_ACCESS_REVIEWS = Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                                      "SelfSubjectAccessReview", namespaced=False)
SELF_SUBJECT_REVIEWS = Resource("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
                                namespaced=False)

WORKLOADS = {"Deployment": DEPLOYMENTS, "StatefulSet": STATEFULSETS, "DaemonSet": DAEMONSETS}


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, message: str, reason: str = "", body: Any = None):
        super().__init__(f"{status} {reason}: {message}" if reason else f"{status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: already exists, or the resourceVersion moved on."""


class Invalid(ApiError):
    """422: refused by the schema or a CEL rule; `message` says why."""


class Expired(ApiError):
    """410: the resourceVersion a watch or list asked for is no longer in the API server's history."""


class Unavailable(Exception):
    """The API server could not be reached or answered 5xx/429: try again later."""


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def uses_service_account(kubeconfig: str = "", env: Mapping[str, str] | None = None,
                         home_kubeconfig: str = "~/.kube/config") -> bool:
    """Whether credentials come from the pod's service account rather than a kubeconfig:
    no kubeconfig given (argument or $KUBECONFIG), none in the home directory, and
    KUBERNETES_SERVICE_HOST set. Paramedic's client and Kopf's login both follow this,
    so they talk to the same server as the same identity."""
    env = os.environ if env is None else env
    return not (kubeconfig or env.get("KUBECONFIG")) and not os.path.exists(os.path.expanduser(home_kubeconfig)) \
        and bool(env.get("KUBERNETES_SERVICE_HOST"))


def service_host_url(env: Mapping[str, str] | None = None) -> str | None:
    """The API server's in-cluster URL from KUBERNETES_SERVICE_HOST/PORT, as client-go builds it
    (no cluster DNS needed, unlike https://kubernetes.default.svc); None outside a pod."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"https://{host}:{port}"


@dataclass(frozen=True)
class Connection:
    host: str
    verify: ssl.SSLContext | bool
    token: Callable[[], str | None]

    @classmethod
    def load(cls, kubeconfig: str = "", context: str | None = None) -> Connection:
        from kubernetes import client, config  # the loaders handle every kubeconfig flavour

        cfg = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG", "")
        if uses_service_account(kubeconfig):
            config.load_incluster_config(client_configuration=cfg)
        else:
            config.load_kube_config(config_file=path or None, context=context, client_configuration=cfg,
                                    persist_config=False)
        ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.verify_ssl else None
        if ctx is None:
            verify: ssl.SSLContext | bool = False
        else:
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            verify = ctx

        refreshed = [0.0]

        def token() -> str | None:
            # In-cluster tokens rotate; the loader's refresh hook re-reads them. Rebuilding
            # it on every request costs more than the request, so at most once a minute.
            if cfg.refresh_api_key_hook is not None and time.monotonic() - refreshed[0] > 60:
                cfg.refresh_api_key_hook(cfg)
                refreshed[0] = time.monotonic()
            value = cfg.api_key.get("authorization") or cfg.api_key.get("BearerToken")
            if value and not value.lower().startswith("bearer "):
                value = "Bearer " + value
            return value

        return cls(host=cfg.host.rstrip("/"), verify=verify, token=token)


def _raise_for(status: int, content: bytes) -> None:
    """The exception an error status maps to."""
    text = content.decode(errors="replace")
    try:
        body = json.loads(content)
        message = body.get("message") or text
        reason = body.get("reason", "")
    except (ValueError, AttributeError):
        body, message, reason = text, text, ""
    if status == 404:
        raise NotFound(status, message, reason, body)
    if status == 409:
        raise Conflict(status, message, reason, body)
    if status == 422:
        raise Invalid(status, message, reason, body)
    if status == 410:
        raise Expired(status, message, reason, body)
    if status >= 500 or status == 429:
        raise Unavailable(f"API server answered {status}: {message}")
    raise ApiError(status, message, reason, body)


def resource_of(path: str) -> str:
    """The resource a request path names, with its subresource: `incidents/status`, `events`."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    # /api/v1/... or /apis/<group>/<version>/...; then [namespaces/<ns>/]<plural>[/<name>[/<sub>]]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    if not rest:
        return "-"
    return rest[0] + (f"/{rest[2]}" if len(rest) >= 3 else "")


def _count(method: str, path: str, code: str) -> None:
    metrics.KUBE_REQUESTS.labels(method, resource_of(path), code).inc()


def _query(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    clean = {k: v for k, v in params.items() if v is not None}
    return "?" + urlencode(clean) if clean else ""


def label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _headers(conn: Connection, content_type: str | None = None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    tok = conn.token()
    if tok:
        headers["Authorization"] = tok
    if content_type:
        headers["Content-Type"] = content_type
    return headers


class ReadFloor:
    """The newest resourceVersion this process has seen of one resource: reads "not older
    than" it are served by the API server's watch cache at once and still show every
    write this process made. (A LIST without a resourceVersion waits until that cache has
    caught up with etcd, which measured 60-80 ms here.) Before anything is seen, reads
    are quorum reads. Thread-safe; a hint in memory, nothing is lost with it."""

    def __init__(self) -> None:
        self._rv = 0
        self._lock = threading.Lock()

    def see(self, obj: Mapping[str, Any] | None) -> None:
        try:
            rv = int(View(mapping(obj)).resource_version or 0)
        except ValueError:
            return  # resourceVersions are opaque by contract; etcd's are integers, others are ignored
        with self._lock:
            if rv > self._rv:
                self._rv = rv

    def params(self) -> dict[str, str]:
        with self._lock:
            rv = self._rv
        return {"resourceVersion": str(rv), "resourceVersionMatch": "NotOlderThan"} if rv else {}


# --- requests, described once --------------------------------------------------------------


class Request(NamedTuple):
    """One API request as data; the executors (`KubeClient`, `AsyncKubeClient`) send it.
    A tuple, not a model: the operator builds thousands a second."""

    method: str
    target: str  # the path and its query, quoted
    body: str | None = None  # JSON text
    content_type: str | None = None  # of the body; None without one
    absent_ok: bool = False  # 404 answers None (get_or_none, delete) instead of raising NotFound
    text: bool = False  # the answer is plain text (a pod's log), not JSON


Plan = Generator[Request, Any, T]
"""A call of several requests (a LIST over pages): it yields each request, is sent each
answer, and returns the call's result. Each executor drives it (`_drive`)."""


def build(method: str, path: str, body: Any = None, content_type: str = "application/json",
          params: Mapping[str, Any] | None = None, absent_ok: bool = False, text: bool = False) -> Request:
    data = None if body is None else json.dumps(body)
    return Request(method, path + _query(params), data, content_type if data is not None else None, absent_ok, text)


def list_plan(res: Resource, namespace: str | None = None, labels: Mapping[str, str] | None = None,
              field_selector: str | None = None, cached: bool = False,
              floor: ReadFloor | None = None) -> Plan[list[dict[str, Any]]]:
    """Every item, page after page; the floor learns each page's resourceVersion."""
    params: dict[str, Any] = {"labelSelector": label_selector(labels) if labels else None,
                              "fieldSelector": field_selector or None}
    if cached:
        params["resourceVersion"] = "0"
    elif floor is not None:
        params.update(floor.params())
    items: list[dict[str, Any]] = []
    while True:
        out = yield build("GET", res.path(namespace), params=params)
        items.extend(out.get("items", []))
        if floor is not None:
            floor.see(out)
        cont = mapping(out.get("metadata")).get("continue")
        if not cont:
            return items
        # Later pages follow the first one's snapshot: no resourceVersion of their own.
        params = {k: v for k, v in params.items() if k not in ("resourceVersion", "resourceVersionMatch")}
        params["continue"] = cont


def first_plan(res: Resource, namespace: str | None = None) -> Plan[list[dict[str, Any]]]:
    out = yield build("GET", res.path(namespace), params={"limit": "1"})
    return list(sequence(out.get("items")))


def served_plan(group: str, version: str) -> Plan[set[str] | None]:
    out = yield Request("GET", f"/apis/{group}/{version}" if group else f"/api/{version}", absent_ok=True)
    if out is None:
        return None
    return {r["name"] for r in sequence(out.get("resources")) if "/" not in r.get("name", "/")}


def answer(req: Request, status: int, content: bytes) -> Any:
    """What a request's answer means: its JSON (or text), None for an expected 404, else the error raised."""
    _count(req.method, req.target, str(status))
    if status >= 400:
        if status == 404 and req.absent_ok:
            return None
        _raise_for(status, content)
    if req.text:
        return content.decode("utf-8", "replace")
    return json.loads(content) if content else None


def watch_event(line: bytes | str) -> dict[str, Any]:
    """One line of a watch stream as its event; an ERROR event raised (410 as Expired)."""
    event = json.loads(line)
    if event.get("type") == "ERROR":
        status = mapping(event.get("object"))
        code = int(status.get("code") or 500)
        if code == 410:
            raise Expired(code, status.get("message", "too old resource version"), "Expired", status)
        raise ApiError(code, status.get("message", "watch error"), status.get("reason", ""), status)
    return event


# --- the calls, defined once; each executor types their results -----------------------------

# What a call returns: the value itself (KubeClient) or a coroutine of it (AsyncKubeClient).
_Raw = TypeVar("_Raw")  # Any
_Obj = TypeVar("_Obj")  # dict
_Maybe = TypeVar("_Maybe")  # dict | None
_Items = TypeVar("_Items")  # list[dict]
_Done = TypeVar("_Done")  # None
_Text = TypeVar("_Text")  # str


class _Calls(Generic[_Raw, _Obj, _Maybe, _Items, _Done, _Text]):
    """Every call both clients offer, once: each method describes its request(s); `_send` and
    `_drive` are the executor's. (An executor that returns what it is given shows the requests.)"""

    def __init__(self, conn: Connection, timeout: float = 10.0, max_connections: int = 64):
        self.conn = conn
        self._timeout = timeout
        self._limit = max_connections

    @classmethod
    def from_settings(cls, settings: Any) -> Self:
        return cls(Connection.load(settings.kubeconfig), timeout=settings.api_timeout_seconds)

    def _send(self, req: Request) -> Any:
        raise NotImplementedError

    def _drive(self, plan: Plan[Any]) -> Any:
        raise NotImplementedError

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                params: Mapping[str, Any] | None = None) -> _Raw:
        return self._send(build(method, path, body, content_type, params))

    def get(self, res: Resource, name: str, namespace: str | None = None, subresource: str | None = None) -> _Obj:
        return self._send(Request("GET", res.path(namespace, name, subresource)))

    def get_or_none(self, res: Resource, name: str, namespace: str | None = None) -> _Maybe:
        return self._send(Request("GET", res.path(namespace, name), absent_ok=True))

    def get_text(self, res: Resource, name: str, namespace: str | None, subresource: str,
                 params: Mapping[str, Any] | None = None) -> _Text:
        """A subresource that answers plain text (a pod's log)."""
        return self._send(build("GET", res.path(namespace, name, subresource), params=params, text=True))

    def list(self, res: Resource, namespace: str | None = None, labels: Mapping[str, str] | None = None,
             field_selector: str | None = None, cached: bool = False, floor: ReadFloor | None = None) -> _Items:
        """All items; `cached` serves from the API server's watch cache (resourceVersion=0), cheap but may lag;
        `floor` serves from the watch cache too, but no older than what this process last saw."""
        return self._drive(list_plan(res, namespace, labels, field_selector, cached, floor))

    def list_first(self, res: Resource, namespace: str | None = None) -> _Items:
        """At most one item (a LIST with limit=1): as much a check of the right to list as a
        whole LIST, at a fraction of its cost."""
        return self._drive(first_plan(res, namespace))

    def create(self, res: Resource, body: dict[str, Any], namespace: str | None = None) -> _Obj:
        body = dict(body)
        body.setdefault("apiVersion", res.api_version)
        body.setdefault("kind", res.kind)
        return self._send(build("POST", res.path(namespace), body))

    def replace(self, res: Resource, name: str, body: dict[str, Any], namespace: str | None = None,
                subresource: str | None = None) -> _Obj:
        return self._send(build("PUT", res.path(namespace, name, subresource), body))

    def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None,
              subresource: str | None = None, content_type: str = MERGE) -> _Obj:
        return self._send(build("PATCH", res.path(namespace, name, subresource), patch, content_type))

    def delete(self, res: Resource, name: str, namespace: str | None = None) -> _Done:
        return self._send(Request("DELETE", res.path(namespace, name), absent_ok=True))  # already gone is done


class KubeClient(_Calls[Any, dict[str, Any], dict[str, Any] | None, list[dict[str, Any]], None, str]):
    """Synchronous executor (webhook, CLI, console, tests). Thread-safe: httpx pools connections."""

    def __init__(self, conn: Connection, timeout: float = 10.0, max_connections: int = 64):
        super().__init__(conn, timeout, max_connections)
        self._http = httpx.Client(base_url=conn.host, verify=conn.verify, timeout=timeout,
                                  limits=httpx.Limits(max_connections=max_connections,
                                                      max_keepalive_connections=max_connections))
        self._watch_http: httpx.Client | None = None
        self._watch_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()
        if self._watch_http is not None:
            self._watch_http.close()

    def _send(self, req: Request) -> Any:
        try:
            resp = self._http.request(req.method, req.target, content=req.body,
                                      headers=_headers(self.conn, req.content_type))
        except httpx.TransportError as exc:
            _count(req.method, req.target, "error")
            raise Unavailable(f"API server unreachable: {exc.__class__.__name__}: {exc}") from exc
        return answer(req, resp.status_code, resp.content)

    def _drive(self, plan: Plan[Any]) -> Any:
        try:
            req = next(plan)
            while True:
                req = plan.send(self._send(req))
        except StopIteration as done:
            return done.value

    def watch(self, res: Resource, namespace: str | None, resource_version: str,
              timeout_seconds: int) -> Iterable[dict[str, Any]]:
        """The events of one watch request (with bookmarks), until the server ends it."""
        req = build("GET", res.path(namespace), params={
            "watch": "1", "allowWatchBookmarks": "true", "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds)})
        # No read timeout shorter than the server's own: bookmarks arrive about once a minute.
        timeout = httpx.Timeout(10.0, read=timeout_seconds + 30.0)
        try:
            with self._watches().stream("GET", req.target, headers=_headers(self.conn), timeout=timeout) as resp:
                _count("WATCH", req.target, str(resp.status_code))
                if resp.status_code >= 400:
                    _raise_for(resp.status_code, resp.read())
                for line in resp.iter_lines():
                    if line:
                        yield watch_event(line)
        except httpx.TransportError as exc:
            raise Unavailable(f"watch of {res.plural} broke: {exc.__class__.__name__}: {exc}") from exc

    def _watches(self) -> httpx.Client:
        # Watches hold their connection for minutes: never out of the pool requests use.
        with self._watch_lock:
            if self._watch_http is None:
                self._watch_http = httpx.Client(base_url=self.conn.host, verify=self.conn.verify,
                                                limits=httpx.Limits(max_connections=None, max_keepalive_connections=8))
            return self._watch_http

    def served(self, group: str, version: str) -> set[str] | None:
        """The resources (plurals, no subresources) the API server serves in one group version
        (discovery, which every authenticated identity may read); None when it serves none."""
        result: set[str] | None = self._drive(served_plan(group, version))
        return result

    def healthy(self) -> bool:
        try:
            self._http.get("/readyz", headers=_headers(self.conn), timeout=3).raise_for_status()
            return True
        except (httpx.HTTPError, OSError):
            return False

    def user_name(self) -> str:
        """Who the API server takes this client for (SelfSubjectReview's user name), "" when it names nobody."""
        review = self.create(SELF_SUBJECT_REVIEWS, {"metadata": {}})
        status = review.get("status") if isinstance(review, dict) else None
        user = status.get("userInfo") if isinstance(status, dict) else None
        name = user.get("username") if isinstance(user, dict) else None
        return str(name) if name else ""


class AsyncKubeClient(_Calls[Coroutine[Any, Any, Any], Coroutine[Any, Any, dict[str, Any]],
                             Coroutine[Any, Any, dict[str, Any] | None], Coroutine[Any, Any, list[dict[str, Any]]],
                             Coroutine[Any, Any, None], Coroutine[Any, Any, str]]):
    """Asynchronous executor for the operator: one pooled connection set for all handlers.

    The aiohttp session is created on first use, inside the running loop; `aclose`
    ends it (a later request opens a new one).
    """

    def __init__(self, conn: Connection, timeout: float = 10.0, max_connections: int = 64):
        super().__init__(conn, timeout, max_connections)
        self._session: aiohttp.ClientSession | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                connector=aiohttp.TCPConnector(limit=self._limit, ssl=self.conn.verify, keepalive_timeout=30))
        return self._session

    async def _send(self, req: Request) -> Any:
        # Paths and queries are quoted already: tell yarl not to quote them again.
        url = URL(self.conn.host + req.target, encoded=True)
        try:
            async with self._open().request(req.method, url, data=req.body,
                                            headers=_headers(self.conn, req.content_type)) as r:
                status, content = r.status, await r.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            _count(req.method, req.target, "error")
            raise Unavailable(f"API server unreachable: {exc.__class__.__name__}: {exc}") from exc
        return answer(req, status, content)

    async def _drive(self, plan: Plan[Any]) -> Any:
        try:
            req = next(plan)
            while True:
                req = plan.send(await self._send(req))
        except StopIteration as done:
            return done.value


def event_body(regarding: Mapping[str, Any], reason: str, note: str, type_: str = "Normal",
               action: str = "Reconcile", now: str | None = None) -> dict[str, Any]:
    """An events.k8s.io/v1 Event about an object (shown by `kubectl describe`)."""
    from .domain.timeutil import micro_iso, utcnow_iso

    meta = View(regarding).meta
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'paramedic')}-", "namespace": meta.get("namespace")},
        "eventTime": micro_iso(now or utcnow_iso()),
        "reportingController": "paramedic.dev/operator",
        "reportingInstance": os.environ.get("HOSTNAME", "paramedic"),
        "action": action,
        "reason": reason,
        "note": note[:1024],
        "type": type_,
        "regarding": {
            "apiVersion": regarding.get("apiVersion"),
            "kind": regarding.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
    }

