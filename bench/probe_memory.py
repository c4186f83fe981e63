"""probe_memory: what a probe target that streams 1 GiB costs the operator's memory.

MonitoredService probe URLs are written by namespace users, so a target may answer with an
endless body (issue 24: one probe of such a target took the operator from 83 MB to 1.9 GB of
RSS). Here N services (256 = PARAMEDIC_PROBE_CONCURRENCY, all probes in flight at once; 32
with --quick) probe one loopback endpoint every 5 s with a 5 s timeout. First it answers a
2-byte body: once every service has been probed and its status written, the operator's RSS
is the idle figure. Then every answer is `200` with a 1 GiB body, sent as fast as the client
takes it; for the window the operator's RSS is sampled every 0.25 s. Target: the peak stays
within 50 MB of the idle RSS. Also reported: what the endpoint managed to send per probe
before the operator hung up (kernel socket buffers, not what the operator read), probes per
second and the services' health (the status is judged, not the body: Healthy).
"""

from __future__ import annotations

import os
import socket
import threading
import time

from devtools.rawserver import RawServer
from paramedic import kube

from .common import Context, Operator, Result, create_all, deployment, histogram, log, rss_bytes, wait_for

NAME = "probe_memory"
INTERVAL = 5
STREAM_BYTES = 1 << 30
SMALL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
CHUNK = b"x" * 65536


class Endpoint(RawServer):
    """One loopback port, a thread per connection; `streaming` switches 2-byte answers to 1 GiB ones."""

    def __init__(self) -> None:
        self.streaming = False
        self.sent: list[int] = []  # bytes of body sent per streamed answer
        self.answers = 0
        self._lock = threading.Lock()
        super().__init__(backlog=1024)

    def serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            conn.settimeout(30)
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                _, buf = buf.split(b"\r\n\r\n", 1)
                with self._lock:
                    self.answers += 1
                if not self.streaming:
                    conn.sendall(SMALL)
                    continue
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % STREAM_BYTES)
                sent = 0
                try:
                    while sent < STREAM_BYTES and not self._stop.is_set():
                        conn.sendall(CHUNK)
                        sent += len(CHUNK)
                finally:
                    with self._lock:
                        self.sent.append(sent)
                return
        except OSError:
            return
        finally:
            conn.close()



def service(i: int, port: int) -> dict:
    return {"metadata": {"name": f"stream-{i:03d}"}, "spec": {
        "severity": "low", "target": {"kind": "Deployment", "name": "bench-target"},
        "probe": {"url": f"http://127.0.0.1:{port}/healthz/{i}", "intervalSeconds": INTERVAL,
                  "timeoutSeconds": INTERVAL}}}


def run(ctx: Context, result: Result) -> None:
    n = 32 if ctx.quick else 256
    window = 20.0 if ctx.quick else 40.0
    own_cpus = os.sched_getaffinity(0)
    if len(own_cpus) > 1:
        os.sched_setaffinity(0, {max(own_cpus)})  # the endpoint's threads stay off the operator's core
        ctx.on_close(lambda: os.sched_setaffinity(0, own_cpus))
    endpoint = Endpoint()
    ctx.on_close(endpoint.stop)
    client = ctx.client
    ns = ctx.namespace("bench-probemem")
    client.create(kube.DEPLOYMENTS, deployment("bench-target", replicas=0), ns)

    op = Operator(ctx, [ns], cpus=str(min(own_cpus)) if len(own_cpus) > 1 else None,
                  env={"PARAMEDIC_PROBE_CONCURRENCY": "256"})
    op.start()
    op.wait_ready()
    time.sleep(3)
    empty = rss_bytes(op.pid)

    create_all(client, kube.MONITORED_SERVICES, ns, [service(i, endpoint.port) for i in range(n)])

    def all_healthy() -> bool:
        return sum(1 for s in client.list(kube.MONITORED_SERVICES, ns)
                   if (s.get("status") or {}).get("health") == "Healthy") == n
    wait_for(all_healthy, 120, f"{n} services probed (2-byte answers) and Healthy", interval=1)
    time.sleep(2 * INTERVAL)  # a steady round or two: status writes settle
    idle = rss_bytes(op.pid)
    log(f"idle RSS {idle / 1e6:.0f} MB ({n} services probing 2-byte answers); empty {empty / 1e6:.0f} MB")

    m0 = op.metrics()
    endpoint.streaming = True
    samples: list[int] = []
    started = time.monotonic()
    while time.monotonic() - started < window:
        if not op.alive():
            raise RuntimeError(f"the operator died while probing the 1 GiB endpoint:\n{op.tail()}")
        samples.append(rss_bytes(op.pid))
        time.sleep(0.25)
    elapsed = time.monotonic() - started
    m1 = op.metrics()
    probes = (histogram(m1, "paramedic_probe_duration_seconds").count
              - histogram(m0, "paramedic_probe_duration_seconds").count)
    health: dict[str, int] = {}
    for s in client.list(kube.MONITORED_SERVICES, ns):
        h = (s.get("status") or {}).get("health") or "-"
        health[h] = health.get(h, 0) + 1
    op.stop()

    sent = list(endpoint.sent)
    peak = max(samples)
    result.figure("services (all probes in flight at once)", n)
    result.figure("body offered per probe (MB)", STREAM_BYTES / 1e6)
    result.figure("operator RSS, no services (MB)", empty / 1e6)
    result.figure("operator RSS idle, services probing 2-byte answers (MB)", idle / 1e6)
    result.figure("operator RSS peak while probing the 1 GiB endpoint (MB)", peak / 1e6)
    result.figure("operator RSS at the end of the window (MB)", samples[-1] / 1e6)
    result.figure("window (s)", elapsed)
    result.figure("probes of the 1 GiB endpoint in window", probes)
    result.figure("streamed answers begun", len(sent))
    result.figure("body bytes the endpoint got out per answer, max (MB)", max(sent, default=0) / 1e6)
    result.figure("body bytes the endpoint got out, total (MB)", sum(sent) / 1e6)
    result.figure("status.health at the end", ", ".join(f"{k} {v}" for k, v in sorted(health.items())))
    result.check("operator RSS growth over idle while probing 1 GiB bodies", (peak - idle) / 1e6, "<=", 50, " MB")
    result.check("services Healthy (the status is judged, not the body)", health.get("Healthy", 0), "==", n)
