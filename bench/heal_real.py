"""heal_real: a probed service on the real node breaks (its container keeps running, /healthz
answers 500) and Paramedic's operator restarts it; how long until it is healthy again.

Ten breaks, one at a time. For each: detection (break → incident created), decision
(→ the Deployment's restartedAt written), restart (→ a new container Ready) and health
(→ /healthz answers 200 from the new container). The floor, on the same Deployment:
the same restart done by hand, `kubectl rollout restart` then `kubectl rollout status`,
until /healthz answers 200. Also the node's own cost: RSS of kubelet and containerd.
"""

from __future__ import annotations

import time

import httpx

from devtools import node as devnode
from devtools.cluster import IMAGE, REPO, image_archive, tools_bin
from paramedic import kube

from .common import Context, Operator, Result, kubectl, log, percentile, rss_bytes, wait_for

NAME = "heal_real"
REAL_NODE = True  # run_all gives this benchmark a control plane with the machine's real node
APP = "heal"


def objects(ns: str) -> list[tuple[kube.Resource, dict]]:
    code = (REPO / "hack" / "demo" / "demo_service.py").read_text()
    return [
        (kube.Resource("", "v1", "configmaps", "ConfigMap"),
         {"metadata": {"name": APP}, "data": {"demo_service.py": code}}),
        (kube.DEPLOYMENTS, {"metadata": {"name": APP}, "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": APP}},
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": APP}}, "spec": {
                **devnode.PLACEMENT, "terminationGracePeriodSeconds": 1,
                "containers": [{"name": APP, "image": IMAGE, "imagePullPolicy": "Never",
                                "command": ["python", "/app/demo_service.py", "--host", "0.0.0.0", "--port", "8080"],
                                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
                                "volumeMounts": [{"name": "app", "mountPath": "/app"}]}],
                "volumes": [{"name": "app", "configMap": {"name": APP}}]}}}}),
        (kube.SERVICES, {"metadata": {"name": APP}, "spec": {"selector": {"app": APP},
                                                             "ports": [{"port": 8080, "targetPort": 8080}]}}),
    ]


def ready_containers(client: kube.KubeClient, ns: str) -> set[str]:
    return {cs["containerID"] for p in client.list(kube.PODS, ns, labels={"app": APP})
            if not p["metadata"].get("deletionTimestamp")
            for cs in (p.get("status") or {}).get("containerStatuses") or [] if cs.get("ready")}


def healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def broke(base: str) -> bool:
    try:
        return httpx.post(base + "/break", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def run(ctx: Context, result: Result) -> None:
    node = devnode.RealNode.current(tools_bin())
    if node is None:
        raise RuntimeError("heal_real needs the machine's real node (root; see the README): none runs")
    n = 3 if ctx.quick else 10
    started = time.monotonic()
    node.import_images([image_archive("paramedic")])
    log(f"image in the node's runtime after {time.monotonic() - started:.0f}s")
    client = ctx.client
    ns = ctx.namespace("bench-heal")
    for res, body in objects(ns):
        client.create(res, body, ns)
    ip = client.get(kube.SERVICES, APP, ns)["spec"]["clusterIP"]
    base = f"http://{ip}:8080"
    wait_for(lambda: healthy(base + "/healthz"), 120, "the service on the real node answering 200")

    # The floor first, on the same Deployment, before any operator watches it.
    floor = []
    for _ in range(n):
        t0 = time.monotonic()
        kubectl(ctx.kubeconfig, "rollout", "restart", "-n", ns, f"deployment/{APP}")
        kubectl(ctx.kubeconfig, "rollout", "status", "-n", ns, f"deployment/{APP}", "--timeout=120s")
        wait_for(lambda: healthy(base + "/healthz"), 60, "healthy after the manual restart", interval=0.05)
        floor.append(time.monotonic() - t0)
    log(f"floor (manual restart until healthy): {', '.join(f'{x:.1f}' for x in floor)} s")

    client.create(kube.MONITORED_SERVICES, {"metadata": {"name": APP}, "spec": {
        "target": {"kind": "Deployment", "name": APP}, "severity": "high",
        "probe": {"url": base + "/healthz", "intervalSeconds": 1, "timeoutSeconds": 1,
                  "failureThreshold": 2, "successThreshold": 1},
        "remediation": {"actions": [{"restart": {"timeoutSeconds": 120}}], "cooldownSeconds": 0,
                        "verifySeconds": 30, "maxAttempts": 3, "maxPerHour": 100}}}, ns)
    op = Operator(ctx, [ns], cpus=None)
    op.start()
    op.wait_ready()
    wait_for(lambda: (client.get(kube.MONITORED_SERVICES, APP, ns).get("status") or {}).get("health") == "Healthy",
             60, "the operator's probe Healthy")

    totals, stages = [], {"detection": [], "decision": [], "restart": [], "healthy": []}
    for i in range(n):
        before = ready_containers(client, ns)
        incidents = {o["metadata"]["name"] for o in client.list(kube.INCIDENTS, ns)}
        restarted = (client.get(kube.DEPLOYMENTS, APP, ns)["spec"]["template"]["metadata"]
                     .get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt")
        # kube-proxy may still send a connection to the pod the last restart removed: try again.
        wait_for(lambda: broke(base), 30, "the break accepted", interval=0.1)
        t0 = time.monotonic()
        new = wait_for(lambda old=incidents: [o for o in client.list(kube.INCIDENTS, ns)
                                              if o["metadata"]["name"] not in old],
                       60, "the incident", interval=0.05)
        t_inc = time.monotonic()
        wait_for(lambda old=restarted: (client.get(kube.DEPLOYMENTS, APP, ns)["spec"]["template"]["metadata"]
                                        .get("annotations") or {}).get("kubectl.kubernetes.io/restartedAt") != old,
                 60, "the restart decision", interval=0.05)
        t_dec = time.monotonic()
        wait_for(lambda old=before: (lambda ids: ids and not ids & old)(ready_containers(client, ns)), 120,
                 "a new container Ready", interval=0.05)
        t_new = time.monotonic()
        wait_for(lambda: healthy(base + "/healthz"), 60, "healthy again", interval=0.05)
        t_ok = time.monotonic()
        totals.append(t_ok - t0)
        for key, value in zip(stages, (t_inc - t0, t_dec - t_inc, t_new - t_dec, t_ok - t_new), strict=True):
            stages[key].append(value)
        log(f"break {i + 1}: healthy after {t_ok - t0:.1f}s (detect {t_inc - t0:.1f}, decide {t_dec - t_inc:.2f}, "
            f"restart {t_new - t_dec:.1f}, healthy {t_ok - t_new:.2f})")
        name = new[0]["metadata"]["name"]
        wait_for(lambda n=name: client.get(kube.INCIDENTS, n, ns)["spec"]["state"] in ("resolved", "closed"), 90,
                 "the incident resolved", interval=0.2)

    pids = node.pids()
    result.figure("breaks", n)
    result.figure("break to healthy p50 (s)", percentile(totals, 50))
    result.figure("break to healthy max (s)", max(totals))
    for key, values in stages.items():
        result.figure(f"stage {key} p50 (s)", percentile(values, 50))
    result.figure("floor: manual rollout restart to healthy p50 (s)", percentile(floor, 50))
    result.figure("floor: manual rollout restart to healthy max (s)", max(floor))
    result.figure("kubelet RSS (MB)", rss_bytes(pids["kubelet"], tree=False) / 1e6)
    result.figure("containerd RSS (MB)", rss_bytes(pids["containerd"], tree=False) / 1e6)
    # Paramedic adds detection (2 failed probes at 1 s) and its decision to the manual restart.
    result.check("restart stage over the manual floor", percentile(stages["restart"], 50)
                 + percentile(stages["healthy"], 50) - percentile(floor, 50), "<=", 2.0, " s")
