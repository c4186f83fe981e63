"""probe_scale: 2,000 MonitoredServices probed every 10 s by one operator pinned to one core.

The targets are one asyncio process (bench/http_targets.py) listening on one
port per service, pinned to the other core and not counted. After a warm-up
(every service probed at least once, its first status written), a window
measures: probes per second (paramedic_probe_duration_seconds_count), schedule
lag p50/p99 (paramedic_probe_schedule_lag_seconds, bucket-interpolated as
histogram_quantile does), CPU seconds and RSS of the operator from /proc.

Then, on the same core and the same targets, Debian's blackbox_exporter is
driven at the same rate (each target every 10 s through
/probe?target=...&module=http_2xx) by an asyncio driver on the other core, and
its probes per CPU-second are measured the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import aiohttp

from devtools.cluster import free_port
from devtools.wait import WaitTimeout
from paramedic import kube

from .common import (
    Context,
    Operator,
    Proc,
    Result,
    cpu_seconds,
    create_all,
    deployment,
    histogram,
    log,
    peak_rss_bytes,
    rss_bytes,
    start_targets_process,
    wait_for,
)

NAME = "probe_scale"
INTERVAL = 10.0
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
BLACKBOX_CONFIG = """modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def start_targets(ctx: Context, count: int) -> list[int]:
    return start_targets_process(ctx, ["bench.http_targets", "--count", str(count)], ctx.workdir / "ports.txt",
                                 cpus="1", timeout=60)


def service(i: int, port: int) -> dict:
    return {"metadata": {"name": f"svc-{i:04d}"}, "spec": {
        "severity": "high", "target": {"kind": "Deployment", "name": "bench-target"},
        "probe": {"url": f"http://127.0.0.1:{port}/healthz", "intervalSeconds": int(INTERVAL), "timeoutSeconds": 5}}}


def run(ctx: Context, result: Result) -> None:
    n = 300 if ctx.quick else 2000
    window = 20.0 if ctx.quick else 45.0
    client = ctx.client
    own_cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {1})  # this process (and the driver) stay off the measured core
    ctx.on_close(lambda: os.sched_setaffinity(0, own_cpus))
    ports = start_targets(ctx, n)
    ns = ctx.namespace("bench-probe")
    client.create(kube.DEPLOYMENTS, deployment("bench-target", replicas=0), ns)
    took = create_all(client, kube.MONITORED_SERVICES, ns, [service(i, p) for i, p in enumerate(ports)])
    log(f"created {n} MonitoredServices in {took:.1f}s")

    # --- the operator -------------------------------------------------------------------
    op = Operator(ctx, [ns], cpus="0")
    op.start()
    op.wait_ready()

    # Warm-up: every service reconciled and probed once (one paramedic_probe_success series
    # each), then one more round so that first-round status writes and events settle.
    probed = 0
    deadline = op.started_at + (90 if ctx.quick else 120)

    def all_probed() -> bool:
        nonlocal probed
        probed = len(op.metrics().get("paramedic_probe_success", []))
        return probed >= n

    with contextlib.suppress(WaitTimeout):  # a partial schedule is measured and noted below
        wait_for(all_probed, max(0.0, deadline - time.monotonic()), "every service probed", interval=1, ignore=())
    result.figure("operator start → every service probed once (s)",
                  time.monotonic() - op.started_at if probed >= n else float("nan"))
    if probed < n:
        result.notes.append(f"only {probed}/{n} services had been probed {deadline - op.started_at:.0f}s after "
                            "the operator started: the window measures a partial schedule")
    time.sleep(INTERVAL)

    m0, c0, t0 = op.metrics(), cpu_seconds(op.pid), time.monotonic()
    time.sleep(window)
    m1, c1, t1 = op.metrics(), cpu_seconds(op.pid), time.monotonic()
    rss, peak = rss_bytes(op.pid), peak_rss_bytes(op.pid)
    probes = (histogram(m1, "paramedic_probe_duration_seconds").count
              - histogram(m0, "paramedic_probe_duration_seconds").count)
    lag = histogram(m1, "paramedic_probe_schedule_lag_seconds").minus(histogram(m0, "paramedic_probe_schedule_lag_seconds"))
    failed = sum(1 for _, labels, v in m1.get("paramedic_probe_success", []) if v == 0)
    cpu = c1 - c0
    health: dict[str, int] = {}
    for svc in client.list(kube.MONITORED_SERVICES, ns, cached=True):
        h = (svc.get("status") or {}).get("health") or "-"
        health[h] = health.get(h, 0) + 1
    op.stop()

    result.figure("services", n)
    result.figure("window (s)", t1 - t0)
    result.figure("operator probes/s", probes / (t1 - t0))
    result.figure("operator probes/s expected", n / INTERVAL)
    result.figure("schedule lag p50 (ms)", lag.quantile(0.5) * 1000)
    result.figure("schedule lag p99 (ms)", lag.quantile(0.99) * 1000)
    result.figure("failed probes at the end", failed)
    result.figure("status.health at the end", ", ".join(f"{k} {v}" for k, v in sorted(health.items())))
    result.figure("operator CPU seconds in window", cpu)
    result.figure("operator CPU (% of one core)", 100 * cpu / (t1 - t0))
    result.figure("operator RSS (MB)", rss / 1e6)
    result.figure("operator peak RSS (MB)", peak / 1e6)
    op_per_cpu = probes / cpu if cpu else float("nan")
    result.figure("operator probes per CPU-second", op_per_cpu)

    # --- blackbox_exporter on the same core and targets ------------------------------------
    bb_per_cpu = float("nan")
    if os.path.exists(BLACKBOX):
        cfg = ctx.workdir / "blackbox.yml"
        cfg.write_text(BLACKBOX_CONFIG)
        port = free_port()
        bb = Proc("blackbox", [BLACKBOX, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"],
                  dict(os.environ), ctx.workdir / "blackbox.log", cpus="0")
        bb.start()
        ctx.on_close(bb.stop)
        wait_for(lambda: _http_ok(f"http://127.0.0.1:{port}/metrics"), 30, "blackbox_exporter", interval=0.2)
        stats = asyncio.run(drive_blackbox(port, ports, warmup=INTERVAL, window=window,
                                           sample=lambda: cpu_seconds(bb.pid)))
        bb_rss = rss_bytes(bb.pid)
        bb.stop()
        bb_cpu = stats["cpu"]
        bb_per_cpu = stats["ok"] / bb_cpu if bb_cpu else float("nan")
        result.figure("blackbox probes/s", stats["done"] / stats["seconds"])
        result.figure("blackbox failed probes in window", stats["done"] - stats["ok"])
        result.figure("blackbox late requests (driver behind > 1 s)", stats["late"])
        result.figure("blackbox CPU (% of one core)", 100 * bb_cpu / stats["seconds"])
        result.figure("blackbox RSS (MB)", bb_rss / 1e6)
        result.figure("blackbox probes per CPU-second", bb_per_cpu)
    else:
        result.notes.append(f"{BLACKBOX} missing (run hack/apt-deps.sh): no comparison")

    result.check("schedule lag p99", lag.quantile(0.99) * 1000, "<=", 1000, " ms")
    result.check("operator RSS", rss / 1e6, "<=", 300, " MB")
    result.check("probes per CPU-second vs 1.5x blackbox_exporter's", op_per_cpu, ">=", round(1.5 * bb_per_cpu, 1))
    result.check("probes/s achieved vs scheduled", probes / (t1 - t0), ">=", 0.98 * n / INTERVAL)


def _http_ok(url: str) -> bool:
    import httpx
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def drive_blackbox(port: int, targets: list[int], warmup: float, window: float, sample) -> dict:
    """Each target every INTERVAL seconds, spread evenly; counts only the window after `warmup`."""
    n = len(targets)
    base = f"http://127.0.0.1:{port}/probe"
    conn = aiohttp.TCPConnector(limit=512)
    stats = {"done": 0, "ok": 0, "late": 0, "cpu": 0.0, "seconds": 0.0}
    counting = False
    tasks: set[asyncio.Task] = set()
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=15)) as session:
        async def probe(tp: int) -> None:
            try:
                async with session.get(base, params={"target": f"http://127.0.0.1:{tp}/healthz",
                                                     "module": "http_2xx"}) as resp:
                    body = await resp.text()
                ok = resp.status == 200 and "\nprobe_success 1" in "\n" + body
            except (TimeoutError, aiohttp.ClientError):
                ok = False
            if counting:
                stats["done"] += 1
                stats["ok"] += ok

        loop = asyncio.get_running_loop()
        start = loop.time()
        end = start + warmup + window
        i = 0
        c0 = t0 = None
        while True:
            due = start + i * INTERVAL / n
            if due >= end:
                break
            now = loop.time()
            if not counting and now >= start + warmup:
                counting, c0, t0 = True, sample(), time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1.0 and counting:
                stats["late"] += 1
            t = asyncio.create_task(probe(targets[i % n]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        stats["cpu"] = sample() - (c0 or 0.0)
        stats["seconds"] = time.monotonic() - (t0 or time.monotonic())
        # Probes still in flight finish outside the window (their CPU mostly counted already).
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats
