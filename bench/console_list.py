"""console_list: the web console's incident list with 5,000 Incidents, server time per request.

5,000 Incidents (realistic status: timestamps, an alert, SLA, five timeline entries) in
one namespace. The console's Flask app (in this process, as gunicorn runs it, with the
console's own API client) serves GET /incidents with a person's bearer token: server time
from request to response body, p50/p95, for three people: one who may list incidents
cluster-wide, one who may list them only in their namespace (the console falls back to
per-namespace lists after the API server's 403s), and the first again with a filter, a
search and a sort. Also the 3-s poll's fragment (/incidents/rows). A person's first page
LISTs (and starts their watch-fed cache, console/people.py); later pages read memory; once a
minute a page checks the person's rights again (LISTs of one item): all three are reported.
The floor: the same LIST request (resourceVersion=0, JSON decoded) by a plain script.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx

from paramedic import kube
from paramedic.console.apiserver import address_only
from paramedic.console.app import create_app
from paramedic.domain.vocabulary import SEVERITIES, STATES
from paramedic.settings import Settings

from .common import Context, Result, create_all, log, percentile

NAME = "console_list"
TARGET_P95_MS = 300.0
RBAC = kube.Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
BINDINGS = kube.Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
SERVICE_ACCOUNTS = kube.Resource("", "v1", "serviceaccounts", "ServiceAccount")


def incident(i: int, now: datetime) -> tuple[dict, dict]:
    created = now - timedelta(minutes=7 * i)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    state = STATES[i % len(STATES)]
    spec = {"service": f"svc-{i % 40}", "severity": str(SEVERITIES[i % 4]), "title": f"svc-{i % 40} is down ({i})",
            "source": "alertmanager", "state": str(state), "assignee": f"person{i % 7}@example.com"}
    if state == "closed":
        spec["rca"] = {"rootCause": "a bad release"}
    status = {
        "createdAt": stamp, "observedState": str(state), "team": "payments",
        "sla": {"acknowledgeMinutes": 15, "resolveMinutes": 240, "acknowledgeBy": stamp, "resolveBy": stamp},
        "alerts": [{"key": f"{i:016x}@{stamp}", "alertname": "KubePodCrashLooping", "status": "firing",
                    "startsAt": stamp, "summary": "pod restarts", "labels": {"pod": f"svc-{i % 40}-abc"}}],
        "timeline": [{"time": stamp, "type": t, "actor": "paramedic", "message": f"{t} of incident {i}"}
                     for t in ("opened", "assigned", "notification-sent", "remediation", "state")],
    }
    return {"metadata": {"name": f"inc-{i:05d}"}, "spec": spec}, status


def person(ctx: Context, namespace: str) -> str:
    """A ServiceAccount that may read incidents in `namespace` only: its token."""
    name = "responder"
    ctx.client.create(SERVICE_ACCOUNTS, {"metadata": {"name": name}}, namespace)
    ctx.client.create(RBAC, {"metadata": {"name": name}, "rules": [
        {"apiGroups": ["paramedic.dev"], "resources": ["incidents"], "verbs": ["get", "list", "watch", "patch"]}]},
                      namespace)
    ctx.client.create(BINDINGS, {"metadata": {"name": name},
                                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                                 "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
                      namespace)
    out = ctx.client.request("POST", SERVICE_ACCOUNTS.path(namespace, name, "token"),
                             {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                              "spec": {"expirationSeconds": 3600}})
    return out["status"]["token"]


def timed(fn, n: int) -> list[float]:
    """Milliseconds of each of n calls, after a first call (the warm-up, returned first)."""
    started = time.perf_counter()
    fn()
    out = [(time.perf_counter() - started) * 1000]
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def run(ctx: Context, result: Result) -> None:
    count = 1000 if ctx.quick else 5000
    requests = 30 if ctx.quick else 100
    ns = ctx.namespace("bench-console")
    now = datetime.now(UTC)
    made = [incident(i, now) for i in range(count)]
    took = create_all(ctx.client, kube.INCIDENTS, ns, [body for body, _ in made])

    def set_status(pair: tuple[dict, dict]) -> None:
        ctx.client.patch(kube.INCIDENTS, pair[0]["metadata"]["name"], {"status": pair[1]}, ns, subresource="status")
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(set_status, made))
    log(f"{count} incidents created in {took:.1f}s, with status")
    sample = ctx.client.get(kube.INCIDENTS, "inc-00001", ns)
    result.figure("incidents", count)
    result.figure("bytes per incident (JSON)", len(httpx.Response(200, json=sample).content))

    admin = ctx.conn.token() or ""
    admin_token = admin.split(" ", 1)[1] if admin.lower().startswith("bearer ") else admin
    tenant_token = person(ctx, ns)
    app = create_app(Settings.from_env({}), address_only(str(ctx.kubeconfig)), secret=uuid.uuid4().bytes * 2)
    web = app.test_client()

    def page(token: str, path: str):
        def call() -> None:
            resp = web.get(path, headers={"Authorization": f"Bearer {token}"})
            assert resp.status_code == 200, resp.status_code
            assert b"inc-0" in resp.data
        return call

    cases = {
        "list, cluster-wide reader": page(admin_token, "/incidents"),
        "list, namespace reader": page(tenant_token, "/incidents"),
        "list, filtered + search + sort": page(admin_token, "/incidents?state=open&q=down&sort=severity&range=30d"),
        "poll fragment (/incidents/rows)": page(admin_token, "/incidents/rows"),
    }
    for label, call in cases.items():
        first, *ms = timed(call, requests)
        if label.startswith("list, "):
            result.figure(f"{label}: first page ms (the LIST; the person's watch starts)", round(first, 1))
        result.figure(f"{label}: p50 ms", round(percentile(ms, 50), 1))
        result.figure(f"{label}: p95 ms", round(percentile(ms, 95), 1))
        if label.startswith("list, cluster"):
            result.check("list page server time p95 (5,000 incidents)" if not ctx.quick else "list p95 (quick)",
                         percentile(ms, 95), "<=", TARGET_P95_MS, " ms")

    # The page each person gets once a minute, when their rights are checked again (LISTs of one
    # item, console/people.py): here every request is one, by checking at once.
    from paramedic.console import people

    every_minute = people.SCOPE_SECONDS
    people.SCOPE_SECONDS = 0.0
    try:
        for label, token in (("cluster-wide reader", admin_token), ("namespace reader", tenant_token)):
            _, *ms = timed(page(token, "/incidents"), requests)
            result.figure(f"list, {label}, rights checked again (once a minute): p50 ms", round(percentile(ms, 50), 1))
            result.figure(f"list, {label}, rights checked again (once a minute): p95 ms", round(percentile(ms, 95), 1))
    finally:
        people.SCOPE_SECONDS = every_minute

    # The floor: the LIST the page makes, by a plain script (JSON decoded, nothing rendered).
    floor_client = httpx.Client(base_url=ctx.conn.host, verify=ctx.conn.verify,
                                headers={"Authorization": f"Bearer {admin_token}", "Accept": "application/json"})
    try:
        def floor() -> None:
            resp = floor_client.get(kube.INCIDENTS.path(), params={"resourceVersion": "0"})
            assert len(resp.json()["items"]) >= count
        _, *ms = timed(floor, requests)
    finally:
        floor_client.close()
    result.figure("floor: the same LIST by a script: p50 ms", round(percentile(ms, 50), 1))
    result.figure("floor: the same LIST by a script: p95 ms", round(percentile(ms, 95), 1))
