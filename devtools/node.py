"""A real node for the local control plane: kubelet, containerd 2, runc and CNI.

It joins the control plane of `devtools.cluster` beside kwok's fake node, so pods
run real containers: Paramedic's own image, the demo service, workloads that crash,
run out of memory or hang. kwok stays for what needs thousands of pods.

The network never leaves the machine:
- pods live on a bridge made here (`pmnode0`, 10.77.0.0/24, no masquerade), with a
  route to the Service range only: no default route;
- a FORWARD guard drops anything to or from the bridge that is not bridge-to-bridge;
- the host routes the Service range to the bridge and blackholes kwok's pod range, so
  a ClusterIP without endpoints or a fake pod's IP is never sent to the default route;
- the API server binds the bridge gateway (pods reach it there and through the
  `kubernetes` Service) and reaches kubelets by InternalIP, never by name;
- pods resolve names with `devtools.dns`, which answers cluster names only and
  forwards nothing.

The node is tainted `paramedic.dev/real-node=true:NoSchedule`: a workload lands on it
only when it tolerates the taint (and it selects it with `paramedic.dev/node: real`).
Everything else keeps landing on kwok's node.

One real node per machine: a lock file under /run names the state directory that owns
it. Tear-down puts back everything the node changed (links, routes, iptables, mounts,
cgroups, sysctls, paths outside its state directory) and reports any difference from
the snapshot taken before start-up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .proc import alive, terminate
from .wait import WaitTimeout, wait_for

_REPO = Path(__file__).resolve().parent.parent

NODE_NAME = "pm-real-0"
BRIDGE = "pmnode0"
GATEWAY = "10.77.0.1"
POD_CIDR = "10.77.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
KWOK_POD_CIDR = "10.244.0.0/16"
TAINT = {"key": "paramedic.dev/real-node", "value": "true", "effect": "NoSchedule"}
LABEL = ("paramedic.dev/node", "real")
# What a pod spec adds to run on the real node (and nowhere else).
PLACEMENT = {"nodeSelector": {LABEL[0]: LABEL[1]},
             "tolerations": [{"key": TAINT["key"], "operator": "Equal", "value": TAINT["value"],
                              "effect": TAINT["effect"]}]}
GUARD_CHAIN = "PMNODE-GUARD"
LOCK_FILE = Path("/run/paramedic-real-node.json")
SERIAL_FILE = Path("/run/paramedic-real-node.lock")
# kubelet writes these wherever its root dir is; containerd some of the others.
HOST_PATHS = ("/var/lib/kubelet", "/var/lib/cni", "/var/log/containers", "/var/log/pods",
              "/run/containerd", "/run/nri", "/opt/containerd", "/etc/cni")
# Host state kubelet, kube-proxy and the CNI bridge plugin change.
SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory", "vm.panic_on_oom",
           "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
           "net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.route_localnet",
           "net.bridge.bridge-nf-call-iptables", "net.netfilter.nf_conntrack_max")
# nft removes the empty tables iptables-nft leaves behind, so tear-down can restore the host.
REQUIRED_COMMANDS = ("ip", "iptables", "iptables-save", "nft", "runc", "openssl")
CNI_BIN = Path("/usr/lib/cni")


class NodeError(RuntimeError):
    """The real node cannot start here; the message says why and what to do."""


# --- pure helpers (unit-tested) ------------------------------------------------------------
def prerequisites(euid: int, which: Callable[[str], str | None], cni_bin: Path = CNI_BIN) -> list[str]:
    """What this machine lacks for a real node, as sentences; empty when it can start one."""
    missing = []
    if euid != 0:
        missing.append("a real node needs root (kubelet, containerd and the bridge do)")
    for cmd in REQUIRED_COMMANDS:
        if which(cmd) is None:
            missing.append(f"command {cmd!r} not found (make apt installs it)")
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (cni_bin / plugin).exists():
            missing.append(f"CNI plugin {cni_bin / plugin} not found (make apt: containernetworking-plugins)")
    return missing


def host_diff(before: dict, after: dict) -> list[str]:
    """What differs between two host snapshots, one line each; empty when the host is as it was."""
    out = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        if isinstance(b, list) and isinstance(a, list):
            added = [x for x in a if x not in b]
            removed = [x for x in b if x not in a]
            out += [f"{key}: + {x}" for x in added] + [f"{key}: - {x}" for x in removed]
        elif isinstance(b, dict) and isinstance(a, dict):
            for k in sorted(set(b) | set(a)):
                if b.get(k) != a.get(k):
                    out.append(f"{key}: {k} {b.get(k)!r} -> {a.get(k)!r}")
        else:
            out.append(f"{key}: {b!r} -> {a!r}")
    return out


def iptables_rules(dump: str) -> list[str]:
    """The rules and chain names of an iptables-save dump, without counters or comments."""
    out = set()
    table = ""
    for ln in dump.splitlines():
        if not ln or ln.startswith("#") or ln == "COMMIT":
            continue
        if ln.startswith("*"):
            table = ln[1:]
            continue
        if ln.startswith(":"):
            out.add(f"{table} chain {ln[1:].split()[0]}")
        else:
            out.add(f"{table} {ln}")
    return sorted(out)


def kubelet_config(node_dir: Path, ca: Path) -> dict:
    """KubeletConfiguration for this machine: cgroup v1 without systemd, no rlimit or OOM-score
    changes (no CAP_SYS_RESOURCE), no iptables chains of its own, cluster DNS on the gateway."""
    sock = f"unix://{node_dir / 'containerd' / 'containerd.sock'}"
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
        "containerRuntimeEndpoint": sock, "imageServiceEndpoint": sock,
        "address": GATEWAY, "port": 10250, "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "Webhook"},
        "podLogsDir": str(node_dir / "pod-logs"),
        "oomScoreAdj": 0, "makeIPTablesUtilChains": False,
        "resolvConf": "", "clusterDNS": [GATEWAY], "clusterDomain": "cluster.local",
        "maxPods": 30, "registerNode": True, "rotateCertificates": False, "serializeImagePulls": False,
        "registerWithTaints": [TAINT],
        # A small shared machine: never evict for disk or memory pressure it did not cause.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                         "nodefs.inodesFree": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "cgroupsPerQOS": True, "enforceNodeAllocatable": ["pods"],
        "shutdownGracePeriod": "0s",
    }


def containerd_config(node_dir: Path, pause_image: str) -> str:
    """containerd 2 config (version 3): its own root, state and socket; CRI with runc without
    systemd, no OOM-score changes, CNI from Debian's plugins, the sandbox image pinned."""
    d = node_dir / "containerd"
    return f'''version = 3
root = "{d / 'root'}"
state = "{d / 'state'}"
[grpc]
  address = "{d / 'containerd.sock'}"
[ttrpc]
  address = "{d / 'containerd.sock.ttrpc'}"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    [plugins."io.containerd.cri.v1.images".pinned_images]
      sandbox = "{pause_image}"
    [plugins."io.containerd.cri.v1.images".registry]
      config_path = "{d / 'certs.d'}"
  [plugins."io.containerd.cri.v1.runtime"]
    enable_selinux = false
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    disable_apparmor = true
    [plugins."io.containerd.cri.v1.runtime".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
          BinaryName = "{shutil.which('runc') or '/usr/sbin/runc'}"
          Root = "{d / 'runc'}"
          SystemdCgroup = false
    [plugins."io.containerd.cri.v1.runtime".cni]
      bin_dirs = ["{CNI_BIN}"]
      conf_dir = "{node_dir / 'cni' / 'net.d'}"
      max_conf_num = 1
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d / 'opt'}"
  [plugins."io.containerd.nri.v1.nri"]
    disable = true
'''


# Every registry, whatever its name, is this closed loopback port: an image missing from the
# node's store fails to pull at once, and no pull ever resolves a name or leaves the machine.
NO_REGISTRY = "http://127.0.0.1:9"


def registry_hosts() -> str:
    """containerd's `_default` hosts.toml: the one place any pull may go."""
    return f'server = "{NO_REGISTRY}"\n\n[host."{NO_REGISTRY}"]\n  capabilities = ["pull", "resolve"]\n'


def cni_config(node_dir: Path) -> dict:
    """Bridge + host-local: pods get the bridge subnet and a route to the Service range only."""
    return {"cniVersion": "0.4.0", "name": "pmnode", "plugins": [
        {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
         "ipam": {"type": "host-local", "dataDir": str(node_dir / "cni" / "ipam"),
                  "ranges": [[{"subnet": POD_CIDR, "gateway": GATEWAY}]],
                  "routes": [{"dst": SERVICE_CIDR}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}


def kube_proxy_config(kubeconfig: Path) -> dict:
    return {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
            "mode": "iptables", "clientConnection": {"kubeconfig": str(kubeconfig)},
            "hostnameOverride": NODE_NAME, "clusterCIDR": POD_CIDR, "bindAddress": GATEWAY,
            "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
            "nodePortAddresses": [POD_CIDR],
            "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
            # Leave the host's conntrack settings alone.
            "conntrack": {"maxPerCore": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"}}


# --- host I/O ------------------------------------------------------------------------------
def _run(*cmd: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True, input=input)
    if check and res.returncode != 0:
        raise NodeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip() or res.stdout.strip()}")
    return res


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    out = {}
    for key in SYSCTLS:
        with contextlib.suppress(OSError):
            out[key] = _sysctl_path(key).read_text().strip()
    return out


def write_sysctls(values: dict[str, str]) -> None:
    for key, value in values.items():
        path = _sysctl_path(key)
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value)


def host_snapshot() -> dict:
    """What a real node could leave behind on this host."""
    links = sorted(x["ifname"] for x in json.loads(_run("ip", "-j", "link").stdout or "[]")
                   if not x["ifname"].startswith("veth"))
    routes = sorted(f"{r.get('type', '')} {r.get('dst')} {r.get('dev', '')}".strip()
                    for r in json.loads(_run("ip", "-j", "route").stdout or "[]"))
    snap: dict = {"links": links, "routes": routes, "sysctls": read_sysctls()}
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool):
            snap[tool] = iptables_rules(_run(tool, check=False).stdout)
    if shutil.which("nft"):
        snap["nft tables"] = sorted(ln for ln in _run("nft", "list", "tables", check=False).stdout.splitlines() if ln)
    snap["mounts"] = sorted(ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()
                            if "kubelet" in ln or "containerd" in ln or "/run/netns" in ln)
    snap["cgroups"] = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods"))
    snap["paths"] = sorted(p for p in HOST_PATHS if os.path.exists(p))
    return snap


_serial_depth = 0


@contextlib.contextmanager
def serialized(lock_file: Path = SERIAL_FILE) -> Iterator[None]:
    """Start-up and tear-down of the machine's one real node never interleave.

    Re-entrant within a process: start-up tears a crashed owner's node down while it holds
    the lock, and a second flock on a new descriptor would wait for itself forever."""
    global _serial_depth
    if _serial_depth:
        _serial_depth += 1
        try:
            yield
        finally:
            _serial_depth -= 1
        return
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        _serial_depth = 1
        try:
            yield
        finally:
            _serial_depth = 0
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass
class RealNode:
    """The machine's real node; its state (configs, PKI, logs, containerd root) lives in `root`."""

    root: Path
    bin_dir: Path
    log: Callable[[str], None] = print

    @property
    def state_file(self) -> Path:
        return self.root / "node.json"

    @classmethod
    def current(cls, bin_dir: Path, log: Callable[[str], None] = print) -> RealNode | None:
        """The machine's running real node, whichever cluster owns it; None when none runs."""
        try:
            root = Path(json.loads(LOCK_FILE.read_text())["root"])
        except (OSError, ValueError, KeyError):
            return None
        node = cls(root, bin_dir, log)
        return node if node.pids().get("kubelet") else None

    def _state(self) -> dict:
        return json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def _save(self, state: dict) -> None:
        self.state_file.write_text(json.dumps(state, indent=1))

    @property
    def containerd_sock(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _run(str(self.bin_dir / "ctr"), "-a", str(self.containerd_sock), "-n", "k8s.io", *args, check=check)

    # -- the lock ----------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the machine's real-node lock, or say who holds it. A holder whose processes
        are gone (a crash) is torn down first."""
        if LOCK_FILE.exists():
            try:
                owner = json.loads(LOCK_FILE.read_text())
            except (OSError, ValueError):
                owner = {}
            owner_root = Path(owner.get("root", ""))
            if owner_root == self.root:
                return
            other = RealNode(owner_root, self.bin_dir, self.log) if owner.get("root") else None
            if other and any(alive(p) for p in other._state().get("pids", {}).values()):
                raise NodeError(f"a real node already runs on this machine, owned by {owner_root} "
                                f"(one per machine); stop it there first (make cluster-down)")
            self.log(f"taking over the real-node lock from {owner_root or 'an unknown owner'} (its node is gone)")
            if other and other.state_file.exists():
                other.down(remove_lock=False)
        LOCK_FILE.write_text(json.dumps({"root": str(self.root), "pid": os.getpid()}))

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if Path(json.loads(LOCK_FILE.read_text()).get("root", "")) == self.root:
                LOCK_FILE.unlink()

    # -- network: made before the control plane, which binds the gateway ---------------------
    def network_up(self) -> None:
        """The bridge, the guard and the routes; records the host's state first."""
        missing = prerequisites(os.geteuid(), shutil.which)
        if missing:
            raise NodeError("cannot start a real node: " + "; ".join(missing))
        with serialized():
            self.acquire()
            self.root.mkdir(parents=True, exist_ok=True)
            state = self._state()
            if "baseline" not in state:
                state = {"baseline": host_snapshot(), "pids": {}}
                self._save(state)
            if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
                _run("ip", "link", "add", BRIDGE, "type", "bridge")
                _run("ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
                _run("ip", "link", "set", BRIDGE, "up")
            # Unanswered ClusterIPs go to the bridge, fake pods' IPs nowhere: never the default route.
            _run("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE)
            _run("ip", "route", "replace", "blackhole", KWOK_POD_CIDR)
            if _run("iptables", "-S", GUARD_CHAIN, check=False).returncode != 0:
                _run("iptables", "-N", GUARD_CHAIN)
                _run("iptables", "-A", GUARD_CHAIN, "-i", BRIDGE, "-o", BRIDGE, "-j", "RETURN")
                _run("iptables", "-A", GUARD_CHAIN, "-i", BRIDGE, "-j", "DROP")
                _run("iptables", "-A", GUARD_CHAIN, "-o", BRIDGE, "-j", "DROP")
                _run("iptables", "-I", "FORWARD", "1", "-j", GUARD_CHAIN)

    # -- the node ------------------------------------------------------------------------------
    def up(self, kubeconfig: Path, pki: Path, server: str, images: list[Path], pause_image: str) -> None:
        """containerd (images imported), kubelet, kube-proxy and the DNS; returns once the node is Ready."""
        started = time.monotonic()
        state = self._state()
        d = self.root
        for sub in ("containerd", "cni/net.d", "kubelet", "logs", "pki", "pod-logs"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "containerd" / "config.toml").write_text(containerd_config(d, pause_image))
        (d / "containerd" / "certs.d" / "_default").mkdir(parents=True, exist_ok=True)
        (d / "containerd" / "certs.d" / "_default" / "hosts.toml").write_text(registry_hosts())
        (d / "cni" / "net.d" / "10-pmnode.conflist").write_text(json.dumps(cni_config(d), indent=1))
        (d / "kubelet-config.json").write_text(json.dumps(kubelet_config(d, pki / "ca.crt"), indent=1))
        self._credentials(pki, server)
        (d / "kube-proxy-config.json").write_text(json.dumps(kube_proxy_config(d / "kube-proxy.kubeconfig"), indent=1))

        env = dict(os.environ, PATH=f"{self.bin_dir}:{os.environ.get('PATH', '')}")
        state["pids"]["containerd"] = self._spawn("containerd", [str(self.bin_dir / "containerd"), "-c",
                                                                 str(d / "containerd" / "config.toml")], env)
        self._save(state)
        _wait(lambda: self.containerd_sock.exists() and self.ctr("version", check=False).returncode == 0,
              30, "containerd", d / "logs")
        t_images = time.monotonic()
        self.import_images(images)
        state = self._state()  # with what import_images recorded
        self.log(f"  containerd up, {len(images)} image(s) imported in {time.monotonic() - t_images:.1f}s")

        state["sysctls"] = read_sysctls()  # kubelet changes some at each start: put them back once Ready
        self._save(state)
        state["pids"]["kubelet"] = self._spawn("kubelet", [
            str(self.bin_dir / "kubelet"), f"--config={d / 'kubelet-config.json'}",
            f"--kubeconfig={d / 'kubelet.kubeconfig'}", f"--root-dir={d / 'kubelet'}",
            f"--cert-dir={d / 'kubelet' / 'pki'}", f"--hostname-override={NODE_NAME}",
            f"--node-ip={GATEWAY}", f"--node-labels={LABEL[0]}={LABEL[1]}", "--v=1"], env)
        self._save(state)
        from paramedic import kube  # the project's client; imported late so the pure parts stay light

        client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
        try:
            _wait(lambda: _node_ready(client), 90, f"node {NODE_NAME} Ready", d / "logs")
        finally:
            client.close()
        write_sysctls(state["sysctls"])
        state["pids"]["kube-proxy"] = self._spawn("kube-proxy", [
            str(self.bin_dir / "kube-proxy"), f"--config={d / 'kube-proxy-config.json'}", "--v=1"], env)
        # devtools is not installed: `-m devtools.dns` from the repository root, like `make`.
        state["pids"]["dns"] = self._spawn("dns", [_python(), "-m", "devtools.dns", "--kubeconfig", str(kubeconfig),
                                                   "--bind", GATEWAY], env, cwd=_REPO)
        self._save(state)
        _wait(lambda: "10.0.0.1/32" in _run("iptables", "-t", "nat", "-S", "KUBE-SERVICES", check=False).stdout,
              60, "kube-proxy's Service rules", d / "logs")
        self.log(f"  real node {NODE_NAME} Ready in {time.monotonic() - started:.1f}s "
                 f"(taint {TAINT['key']}={TAINT['value']}:{TAINT['effect']})")

    def import_images(self, images: list[Path]) -> None:
        """Load image archives into the node's runtime, no registry involved; an archive
        already imported (same file, same size and time) is skipped."""
        state = self._state()
        done = state.setdefault("imported", {})
        for tar in images:
            stamp = f"{tar.stat().st_size}:{int(tar.stat().st_mtime)}"
            if done.get(str(tar)) == stamp:
                continue
            self.ctr("images", "import", "--all-platforms", str(tar))
            done[str(tar)] = stamp
        self._save(state)

    def _credentials(self, pki: Path, server: str) -> None:
        """Client certificates for kubelet (system:node:<name>) and kube-proxy, from the cluster CA."""
        out = self.root / "pki"
        (out / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
        for name, subject in (("kubelet", f"/O=system:nodes/CN=system:node:{NODE_NAME}"),
                              ("kube-proxy", "/CN=system:kube-proxy")):
            if not (out / f"{name}.crt").exists():
                _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(out / f"{name}.key"),
                     "-out", str(out / f"{name}.csr"), "-subj", subject)
                _run("openssl", "x509", "-req", "-in", str(out / f"{name}.csr"), "-CA", str(pki / "ca.crt"),
                     "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-CAserial", str(out / "ca.srl"),
                     "-out", str(out / f"{name}.crt"), "-days", "365", "-extfile", str(out / "client.ext"))
            (self.root / f"{name}.kubeconfig").write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
                "users": [{"name": name, "user": {"client-certificate": str(out / f"{name}.crt"),
                                                  "client-key": str(out / f"{name}.key")}}],
                "contexts": [{"name": "c", "context": {"cluster": "local", "user": name}}],
                "current-context": "c"}))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
        with open(self.root / "logs" / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=cwd or self.root, env=env)
        return proc.pid

    def pids(self) -> dict[str, int]:
        return {k: v for k, v in self._state().get("pids", {}).items() if alive(v)}

    # -- tear-down ----------------------------------------------------------------------------
    def down(self, kubeconfig: Path | None = None, remove_lock: bool = True) -> list[str]:
        """Stop everything and put the host back; returns what still differs from before (empty: clean)."""
        state = self._state()
        if not state:
            return []
        with serialized():
            pids = state.get("pids", {})
            if kubeconfig is not None and pids.get("kubelet") and alive(pids["kubelet"]):
                self._drain(kubeconfig)
            for name in ("dns", "kube-proxy"):
                if pids.get(name):
                    terminate(pids[name])
            if (self.bin_dir / "kube-proxy").exists():
                _run(str(self.bin_dir / "kube-proxy"), "--cleanup", check=False)
            if pids.get("kubelet"):
                terminate(pids["kubelet"])
            if pids.get("containerd") and alive(pids["containerd"]):
                self._remove_containers()
                terminate(pids["containerd"])
            self._unmount()
            self._remove_cgroups()
            self._restore_network(state.get("baseline", {}))
            if state.get("sysctls"):
                write_sysctls(state["sysctls"])
            baseline = state.get("baseline", {})
            write_sysctls(baseline.get("sysctls", {}))
            for path in HOST_PATHS:
                if path not in baseline.get("paths", []) and os.path.exists(path):
                    shutil.rmtree(path, ignore_errors=True)
            # Last, just before the comparison: every step above may list tables (and so make them).
            drop_new_empty_tables(baseline)
            diff = host_diff(baseline, host_snapshot()) if baseline else []
            if remove_lock:
                self.release()
            shutil.rmtree(self.root, ignore_errors=True)
            return diff

    def _drain(self, kubeconfig: Path) -> None:
        """Delete the node's pods through the API so kubelet stops their containers cleanly."""
        from paramedic import kube

        client = kube.KubeClient(kube.Connection.load(str(kubeconfig)))
        try:
            pods = client.list(kube.PODS, None, field_selector=f"spec.nodeName={NODE_NAME}")
            for pod in pods:
                md = pod["metadata"]
                with contextlib.suppress(kube.ApiError, kube.Unavailable):
                    client.request("DELETE", kube.PODS.path(md["namespace"], md["name"]), {"gracePeriodSeconds": 1})
            with contextlib.suppress(WaitTimeout):  # what is left is stopped directly below
                wait_for(lambda: not client.list(kube.PODS, None, field_selector=f"spec.nodeName={NODE_NAME}"), 30,
                         "the node's pods gone", interval=0.5, ignore=())
            with contextlib.suppress(kube.ApiError, kube.Unavailable):
                client.delete(kube.NODES, NODE_NAME)
        except (kube.ApiError, kube.Unavailable) as exc:
            self.log(f"  (could not drain the node through the API: {exc}; stopping its containers directly)")
        finally:
            client.close()

    def _remove_containers(self) -> None:
        for task in self.ctr("tasks", "ls", "-q", check=False).stdout.split():
            self.ctr("tasks", "kill", "-s", "KILL", task, check=False)
        def tasks_removed() -> bool:
            tasks = self.ctr("tasks", "ls", "-q", check=False).stdout.split()
            for task in tasks:
                self.ctr("tasks", "rm", "-f", task, check=False)
            return not tasks

        with contextlib.suppress(WaitTimeout):
            wait_for(tasks_removed, 10, "the node's tasks removed", ignore=())
        for c in self.ctr("containers", "ls", "-q", check=False).stdout.split():
            self.ctr("containers", "rm", c, check=False)
        # shims outlive containerd when their task is gone: stop any left for this root
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    cmd = (proc / "cmdline").read_bytes().split(b"\0")
                    if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and str(self.root).encode() in b" ".join(cmd):
                        os.kill(int(proc.name), signal.SIGKILL)

    def _unmount(self) -> None:
        prefixes = [str(self.root) + "/"] + [p + "/" for p in HOST_PATHS]
        mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
        for m in sorted((m for m in mounts if any(m.startswith(p) for p in prefixes)), key=len, reverse=True):
            _run("umount", "-l", m, check=False)

    def _remove_cgroups(self) -> None:
        for top in Path("/sys/fs/cgroup").glob("*/kubepods"):
            for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda x: len(x[0]), reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)

    def _restore_network(self, baseline: dict) -> None:
        _run("iptables", "-D", "FORWARD", "-j", GUARD_CHAIN, check=False)
        _run("iptables", "-F", GUARD_CHAIN, check=False)
        _run("iptables", "-X", GUARD_CHAIN, check=False)
        # kube-proxy --cleanup keeps KUBE-FIREWALL and a few others it thinks kubelet owns.
        for tool in ("iptables", "ip6tables"):
            if not shutil.which(tool):
                continue
            before = set(baseline.get(f"{tool}-save", []))
            for table in ("filter", "nat", "mangle"):
                rules = _run(tool, "-t", table, "-S", check=False).stdout.splitlines()
                for rule in rules:
                    if rule.startswith("-A") and "KUBE-" in rule and f"{table} {rule}" not in before:
                        _run(tool, "-t", table, *shlex.split(rule.replace("-A", "-D", 1)), check=False)
                for rule in rules:
                    if rule.startswith("-N KUBE-") and f"{table} chain {rule.split()[1]}" not in before:
                        _run(tool, "-t", table, "-F", rule.split()[1], check=False)
                for rule in rules:
                    if rule.startswith("-N KUBE-") and f"{table} chain {rule.split()[1]}" not in before:
                        _run(tool, "-t", table, "-X", rule.split()[1], check=False)
        _run("ip", "route", "del", SERVICE_CIDR, "dev", BRIDGE, check=False)
        _run("ip", "route", "del", "blackhole", KWOK_POD_CIDR, check=False)
        for link in json.loads(_run("ip", "-j", "link").stdout or "[]"):
            if link["ifname"].startswith("veth") and link.get("master") == BRIDGE:
                _run("ip", "link", "del", link["ifname"], check=False)
        if BRIDGE not in baseline.get("links", []):
            _run("ip", "link", "del", BRIDGE, check=False)


def drop_new_empty_tables(baseline: dict) -> None:
    """iptables-nft makes a table when anything merely lists it: drop the empty ones that were
    not there before the node started."""
    if not shutil.which("nft"):
        return
    before_tables = set(baseline.get("nft tables", []))
    for line in _run("nft", "list", "tables", check=False).stdout.splitlines():
        if line and line not in before_tables:
            family, name = line.split()[1:3]
            body = _run("nft", "list", "table", family, name, check=False).stdout
            if not any(ln.strip() and not ln.strip().startswith(("table", "chain", "type", "}", "policy"))
                       for ln in body.splitlines()):
                _run("nft", "delete", "table", family, name, check=False)


def _node_ready(client) -> bool:
    from paramedic import kube

    node = client.get_or_none(kube.NODES, NODE_NAME)
    conds = ((node or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _python() -> str:
    import sys

    return sys.executable


def _wait(cond: Callable[[], object], timeout: float, what: str, logs: Path) -> None:
    try:
        wait_for(cond, timeout, what)
    except WaitTimeout:
        raise NodeError(f"{what} not ready within {timeout:.0f}s (logs in {logs})") from None
