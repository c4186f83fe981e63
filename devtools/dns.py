"""Cluster DNS for the local real node: answers cluster names, forwards nothing.

Pods on the real node use it as their only name server (kubelet's `clusterDNS`), so
`checkout.shop.svc` and `kubernetes.default.svc` resolve to ClusterIPs as in any
cluster. Any other name gets NXDOMAIN: a pod never makes this machine's resolver, or
anything past it, look a name up.

    python -m devtools.dns --kubeconfig .paramedic/kubeconfig --bind 10.77.0.1
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer

DOMAIN = "cluster.local"
TTL = 5


def service_name(qname: str, domain: str = DOMAIN) -> tuple[str, str] | None:
    """(service, namespace) for `<svc>.<ns>.svc.<domain>`; None for any other name."""
    labels = qname.rstrip(".").lower().split(".")
    suffix = ["svc", *domain.split(".")]
    if len(labels) != 2 + len(suffix) or labels[2:] != suffix:
        return None
    return labels[0], labels[1]


class ServiceDirectory:
    """ClusterIPs by (name, namespace), refreshed from the API at most once a second."""

    def __init__(self, client, max_age: float = 1.0) -> None:
        self.client = client
        self.max_age = max_age
        self._ips: dict[tuple[str, str], str] = {}
        self._at = 0.0
        self._lock = threading.Lock()

    def lookup(self, name: str, namespace: str) -> str | None:
        from paramedic import kube

        with self._lock:
            if time.monotonic() - self._at > self.max_age:
                try:
                    items = self.client.list(kube.SERVICES, None, cached=True)
                    self._ips = {(s["metadata"]["name"], s["metadata"]["namespace"]): s["spec"].get("clusterIP", "")
                                 for s in items}
                    self._at = time.monotonic()
                except Exception as exc:  # keep answering from the last list
                    print(f"devdns: cannot list Services: {exc}", file=sys.stderr, flush=True)
            ip = self._ips.get((name, namespace))
        return ip if ip and ip != "None" else None


class Resolver(BaseResolver):
    def __init__(self, directory: ServiceDirectory, domain: str = DOMAIN) -> None:
        self.directory = directory
        self.domain = domain

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname)
        key = service_name(qname, self.domain)
        ip = self.directory.lookup(*key) if key else None
        if ip is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(qname, QTYPE.A, rdata=A(ip), ttl=TTL))
        # AAAA and other types of a known name: NOERROR with no answer (IPv4-only cluster).
        return reply


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="devtools.dns", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--bind", required=True, help="address to serve on, port 53 (UDP and TCP)")
    p.add_argument("--port", type=int, default=53)
    args = p.parse_args(argv)
    from paramedic import kube

    directory = ServiceDirectory(kube.KubeClient(kube.Connection.load(args.kubeconfig)))
    resolver = Resolver(directory)
    servers = [DNSServer(resolver, address=args.bind, port=args.port, tcp=tcp, logger=_Quiet()) for tcp in (False, True)]
    for s in servers:
        s.start_thread()
    print(f"devdns: serving *.svc.{DOMAIN} on {args.bind}:{args.port}", flush=True)
    try:
        while all(s.isAlive() for s in servers):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    return 0


class _Quiet:
    def __getattr__(self, name):
        return lambda *a, **k: None


if __name__ == "__main__":
    sys.exit(main())
