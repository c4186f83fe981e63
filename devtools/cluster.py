"""A real local Kubernetes control plane, for tests and the demo.

etcd, kube-apiserver (RBAC on, static admin token), kube-controller-manager,
kube-scheduler and kwok (a fake Node that keeps Ready and turns scheduled pods
Running), all built from their Go modules by hack/build-tools.sh. With a real node
(`devtools.node`: kubelet, containerd, runc, CNI) beside kwok's when the machine
allows it: PARAMEDIC_REAL_NODE=auto (default), 1 (required) or 0 (kwok only).

    python -m devtools.cluster up      # writes .paramedic/kubeconfig
    python -m devtools.cluster down
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from . import node as devnode
from .proc import alive as _alive
from .proc import reap as _reap
from .proc import terminate as _terminate
from .proc import zombie as _zombie
from .wait import wait_for

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".paramedic"
NODE_NAME = "kwok-node-0"
PAUSE_IMAGE = "localhost/pause:3.10"
IMAGE = "localhost/paramedic:dev"


def image_archive(name: str = "paramedic", stderr=None) -> Path:
    """The archive of one of the project's images (`paramedic` or `pause`), built when its inputs changed;
    the builder's output goes to `stderr` (a file; default: this process's stderr)."""
    out = subprocess.run([str(REPO / "hack" / "build-image.sh"), name], check=True, stdout=subprocess.PIPE,
                         stderr=stderr, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def real_node_mode() -> str:
    mode = os.environ.get("PARAMEDIC_REAL_NODE", "auto").strip().lower()
    return {"1": "1", "true": "1", "yes": "1", "0": "0", "false": "0", "no": "0"}.get(mode, "auto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@functools.lru_cache(maxsize=1)
def tools_bin() -> Path:
    out = subprocess.run([str(REPO / "hack" / "build-tools.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d: Path) -> None:
    """A CA, the API server's serving cert for 127.0.0.1/localhost, the service-account key."""
    d.mkdir(parents=True, exist_ok=True)
    if (d / "apiserver.crt").exists():
        return
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "3650", "-subj", "/CN=paramedic-local-ca", cwd=d)
    (d / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        f"DNS:kubernetes.default.svc,IP:10.0.0.1,IP:{devnode.GATEWAY}\nextendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=d)
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "apiserver.crt", "-days", "3650", "-extfile", "san.ext", cwd=d)
    # The API server's client certificate towards kubelets (logs, exec).
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "kubelet-client.key", "-out", "kubelet-client.csr",
             "-subj", "/O=system:masters/CN=kube-apiserver-kubelet-client", cwd=d)
    _openssl("x509", "-req", "-in", "kubelet-client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "kubelet-client.crt", "-days", "3650", "-extfile", "client.ext", cwd=d)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=d)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def kubeconfig_yaml(server: str, ca: Path, token: str, user: str = "admin") -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "paramedic-local", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "paramedic-local", "context": {"cluster": "paramedic-local", "user": user}}],
        "current-context": "paramedic-local",
    }, indent=1)


@dataclass
class DevCluster:
    """One control plane whose state lives in `root` (pids, logs, etcd data, PKI, kubeconfig)."""

    root: Path = STATE / "cluster"
    kubeconfig: Path = STATE / "kubeconfig"
    procs: dict[str, int] = field(default_factory=dict)
    real_node: str = field(default_factory=real_node_mode)  # "auto", "1" or "0"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    def running(self) -> bool:
        if not self.state_file.exists():
            return False
        state = json.loads(self.state_file.read_text())
        return all(_alive(pid) for pid in state.get("pids", {}).values()) and self._ready(state["server"], state["token"])

    def node(self) -> devnode.RealNode | None:
        """The real node of this cluster, if it has one."""
        if not self.state_file.exists() or not json.loads(self.state_file.read_text()).get("real_node"):
            return None
        return devnode.RealNode(self.root / "node", tools_bin())

    def _want_node(self, log) -> devnode.RealNode | None:
        if self.real_node == "0":
            return None
        node = devnode.RealNode(self.root / "node", tools_bin(), log=log)
        try:
            node.network_up()
            return node
        except devnode.NodeError as exc:
            if self.real_node == "1":
                raise
            log(f"no real node ({exc}); pods run on kwok's fake node only")
            return None

    def up(self, log=print) -> Path:
        if self.running():
            log(f"control plane already running: KUBECONFIG={self.kubeconfig}")
            return self.kubeconfig
        self.down(quiet=True)
        started = time.monotonic()
        bin_dir = tools_bin()
        self.root.mkdir(parents=True, exist_ok=True)
        node = self._want_node(log)
        # With a real node the API server binds the bridge gateway, where pods reach it too.
        address = devnode.GATEWAY if node else "127.0.0.1"
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        pki = self.root / "pki"
        make_pki(pki)
        token = secrets.token_hex(16)
        (self.root / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
        etcd_port, etcd_peer, api_port = free_port(), free_port(), free_port()
        server = f"https://{address}:{api_port}"
        state: dict[str, Any] = {"server": server, "token": token, "pids": {}, "bin": str(bin_dir), "args": {},
                 "etcd": f"http://127.0.0.1:{etcd_port}", "real_node": bool(node)}

        def spawn(name: str, *args: str) -> None:
            state["pids"][name] = self._spawn(bin_dir, name, list(args))
            state["args"][name] = list(args)  # so one component can be restarted alike
            self.state_file.write_text(json.dumps(state))

        spawn("etcd", "--data-dir", str(self.root / "etcd"), "--name", "default",
              "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
              "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
              "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
              "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
              "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
              "--listen-metrics-urls", "", "--unsafe-no-fsync", "--quota-backend-bytes", str(4 << 30),
              "--log-level", "warn")
        _wait(lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), 30, "etcd")
        spawn("kube-apiserver", "--etcd-servers", f"http://127.0.0.1:{etcd_port}",
              "--bind-address", address, "--advertise-address", address, "--secure-port", str(api_port),
              # kubelets by InternalIP: the API server never resolves a node's name
              "--kubelet-preferred-address-types", "InternalIP",
              "--kubelet-client-certificate", str(pki / "kubelet-client.crt"),
              "--kubelet-client-key", str(pki / "kubelet-client.key"),
              "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
              "--client-ca-file", str(pki / "ca.crt"),
              "--token-auth-file", str(self.root / "tokens.csv"), "--authorization-mode", "Node,RBAC",
              "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
              "--service-account-key-file", str(pki / "sa.pub"),
              "--service-account-signing-key-file", str(pki / "sa.key"),
              "--service-cluster-ip-range", "10.0.0.0/24", "--allow-privileged=true",
              "--cert-dir", str(self.root / "apiserver-certs"), "--v", "1")
        self._write_kubeconfig(server, pki / "ca.crt", token)
        _wait(lambda: self._ready(server, token), 90, "kube-apiserver")
        kcfg = str(self.kubeconfig)
        spawn("kube-controller-manager", "--kubeconfig", kcfg, "--authentication-kubeconfig", kcfg,
              "--authorization-kubeconfig", kcfg, "--leader-elect=false",
              "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
              "--service-account-private-key-file", str(pki / "sa.key"), "--root-ca-file", str(pki / "ca.crt"),
              "--cluster-signing-cert-file", str(pki / "ca.crt"), "--cluster-signing-key-file", str(pki / "ca.key"),
              "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
              "--concurrent-deployment-syncs", "10", "--v", "1")
        spawn("kube-scheduler", "--kubeconfig", kcfg, "--authentication-kubeconfig", kcfg,
              "--authorization-kubeconfig", kcfg, "--leader-elect=false",
              "--bind-address", "127.0.0.1", "--secure-port", str(free_port()), "--v", "1")
        spawn("kwok", "--kubeconfig", kcfg, "--config", str(REPO / "hack" / "kwok-stages.yaml"),
              "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake",
              "--node-lease-duration-seconds", "40", "--cidr", "10.244.0.0/16", "--node-ip", "10.0.0.2",
              "--server-address", f"127.0.0.1:{free_port()}")
        self._create_node(server, token)
        _wait(lambda: self._node_ready(server, token), 60, "kwok node")
        _wait(lambda: self._default_sa(server, token), 60, "default ServiceAccount")
        log(f"control plane up in {time.monotonic() - started:.1f}s: KUBECONFIG={self.kubeconfig}")
        if node:
            node.up(self.kubeconfig, pki, server, [image_archive("pause")], PAUSE_IMAGE)
        return self.kubeconfig

    def down(self, quiet: bool = False) -> None:
        if (self.root / "node" / "node.json").exists():
            node = devnode.RealNode(self.root / "node", tools_bin(), log=(lambda m: None) if quiet else print)
            leftovers = node.down(self.kubeconfig if self.kubeconfig.exists() else None)
            if leftovers:
                print("the real node left the host changed:\n  " + "\n  ".join(leftovers), file=sys.stderr)
        if self.state_file.exists():
            state = json.loads(self.state_file.read_text())
            for name in ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
                pid = state.get("pids", {}).get(name)
                if pid:
                    _terminate(pid)
        if self.root.exists():
            subprocess.run(["rm", "-rf", str(self.root)], check=False)
        if self.kubeconfig.exists():
            self.kubeconfig.unlink()
        if not quiet:
            print("control plane stopped")

    # --- fault injection (tests): one component down and back, same ports and flags ---
    def stop_component(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one component (`etcd`, `kube-apiserver`, ...); `start_component` brings it back."""
        state = json.loads(self.state_file.read_text())
        pid = state["pids"].get(name)
        if not pid:
            raise KeyError(f"no component {name!r} in {self.state_file}")
        if sig == signal.SIGKILL:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _terminate(pid)
        _reap(pid)

    def start_component(self, name: str, timeout: float = 90) -> int:
        """Start a stopped component again with the flags `up` gave it; waits until it serves."""
        state = json.loads(self.state_file.read_text())
        if name not in state.get("args", {}):
            raise KeyError(f"no recorded flags for {name!r} (cluster started by an older devcluster?)")
        old = state["pids"].get(name)
        if old and _alive(old) and not _zombie(old):
            raise RuntimeError(f"{name} is still running (pid {old})")
        state["pids"][name] = self._spawn(Path(state["bin"]), name, state["args"][name])
        self.state_file.write_text(json.dumps(state))
        if name == "etcd":
            _wait(lambda: _http_ok(state["etcd"] + "/health"), timeout, "etcd")
        elif name == "kube-apiserver":
            _wait(lambda: self._ready(state["server"], state["token"]), timeout, "kube-apiserver")
        return state["pids"][name]

    def restart_component(self, name: str, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        self.stop_component(name, sig)
        return self.start_component(name, timeout)

    def _spawn(self, bin_dir: Path, name: str, args: list[str]) -> int:
        out = open(self.root / "logs" / f"{name}.log", "ab")
        proc = subprocess.Popen([str(bin_dir / name), *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.root)
        out.close()
        return proc.pid

    # --- the pieces ---------------------------------------------------------------
    def _write_kubeconfig(self, server: str, ca: Path, token: str) -> None:
        self.kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(kubeconfig_yaml(server, ca, token))
        self.kubeconfig.chmod(0o600)

    def _client(self, server: str, token: str) -> httpx.Client:
        return httpx.Client(base_url=server, verify=ssl.create_default_context(cafile=str(self.root / "pki" / "ca.crt")),
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)

    def _ready(self, server: str, token: str) -> bool:
        try:
            with self._client(server, token) as c:
                return c.get("/readyz").status_code == 200
        except (httpx.HTTPError, OSError):
            return False

    def _create_node(self, server: str, token: str) -> None:
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE_NAME, "annotations": {"kwok.x-k8s.io/node": "fake"},
                             "labels": {"type": "kwok", "kubernetes.io/hostname": NODE_NAME,
                                        "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
                "spec": {}}
        with self._client(server, token) as c:
            r = c.post("/api/v1/nodes", json=node)
            if r.status_code not in (201, 409):
                raise RuntimeError(f"cannot create node: {r.status_code} {r.text}")

    def _node_ready(self, server: str, token: str) -> bool:
        with self._client(server, token) as c:
            r = c.get(f"/api/v1/nodes/{NODE_NAME}")
            if r.status_code != 200:
                return False
            conds = r.json().get("status", {}).get("conditions", [])
            return any(x["type"] == "Ready" and x["status"] == "True" for x in conds)

    def _default_sa(self, server: str, token: str) -> bool:
        with self._client(server, token) as c:
            return c.get("/api/v1/namespaces/default/serviceaccounts/default").status_code == 200


CRD_DIR = REPO / "manifests" / "crds"


def wait_established(kubeconfig: Path, paths: list[Path], timeout: float) -> None:
    """Until every CRD in `paths` is Established. `kubectl wait` fails at once, instead of
    waiting, on a CRD whose status has no conditions yet (just created): so try again."""
    cmd = [str(tools_bin() / "kubectl"), "--kubeconfig", str(kubeconfig), "wait", "--for=condition=Established",
           "--timeout=5s", *[arg for p in paths for arg in ("-f", str(p))]]
    last: dict[str, subprocess.CompletedProcess] = {}

    def established() -> bool:
        last["out"] = subprocess.run(cmd, capture_output=True, text=True)
        return last["out"].returncode == 0

    wait_for(established, timeout, "CRDs Established", interval=0.5, ignore=(),
             describe=lambda: last["out"].stderr.strip() or last["out"].stdout.strip())


def apply_crds(kubeconfig: Path, *extra: Path, timeout: float = 120) -> None:
    """Apply Paramedic's CRDs (and `extra` manifests), then wait until they are served.

    Established is not servable yet: until a new resource's watch cache is ready the
    API server answers 429 ("storage is (re)initializing"), which a test would take for
    a failure and a benchmark would measure as the operator's start-up.
    """
    from paramedic import kube

    kubectl = [str(tools_bin() / "kubectl"), "--kubeconfig", str(kubeconfig)]
    for path in (CRD_DIR, *extra):
        subprocess.run([*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(path)],
                       check=True, capture_output=True, text=True)
    wait_established(kubeconfig, [CRD_DIR, *extra], timeout=60)
    client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
    deadline = time.monotonic() + timeout
    try:
        def served(res: kube.Resource, cached: bool) -> bool:
            client.list(res, "default", cached=cached)
            return True

        for res in (kube.INCIDENTS, kube.MONITORED_SERVICES, kube.ONCALL_SCHEDULES):
            for cached in (True, False):
                wait_for(functools.partial(served, res, cached), max(0.0, deadline - time.monotonic()),
                         f"{res.plural} served", ignore=(kube.Unavailable,))
    finally:
        client.close()


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except (httpx.HTTPError, OSError):
        return False


def _wait(cond, timeout: float, what: str) -> None:
    wait_for(cond, timeout, f"{what} to become ready (logs in {STATE / 'cluster' / 'logs'})",
             ignore=(httpx.HTTPError, OSError))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv else "up"
    cluster = DevCluster()
    if cmd == "up":
        cluster.up()
        print(f"export KUBECONFIG={cluster.kubeconfig}")
    elif cmd == "down":
        cluster.down()
    elif cmd == "status":
        print("running" if cluster.running() else "stopped")
    else:
        print("usage: python -m devtools.cluster up|down|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
