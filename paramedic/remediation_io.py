"""Remediation I/O: rollout restarts, scaling and playbook runs against the cluster and
through ansible-runner, and `run_attempt`, which carries out one recorded attempt.

Each function does one action and is safe to call again for the same decision:
a restart is keyed by its `restartedAt` value, a scale sets an absolute count.
The policy (what to do, when) lives in `paramedic.domain.remediation`.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import kube
from .domain.playbook_catalog import Catalog, CatalogError, PlaybookRefused, parse_catalog
from .domain.resources import Incident, Resource, Service, mapping, sequence
from .domain.rollout import (
    RolloutStatus,
    already_restarted,
    is_paused,
    restart_patch,
    rollback_patch,
    rollback_plan,
    rolled_back_by,
    rollout_status,
)
from .domain.vocabulary import AttemptResult
from .settings import Settings

OUTPUT_TAIL_LINES = 40
OUTPUT_TAIL_BYTES = 4096
PLAYBOOK_SUFFIXES = (".yml", ".yaml")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class RemediationError(Exception):
    """The action cannot be carried out as asked (missing target, paused, bad playbook path...)."""


def _resource(kind: str) -> kube.Resource:
    res = kube.WORKLOADS.get(kind)
    if res is None:
        raise RemediationError(f"unsupported target kind {kind!r} (expected one of {', '.join(kube.WORKLOADS)})")
    return res


async def _get_workload(client: kube.AsyncKubeClient, namespace: str, kind: str, name: str) -> dict[str, Any]:
    obj = await client.get_or_none(_resource(kind), name, namespace)
    if obj is None:
        raise RemediationError(f"{kind} {name} not found in namespace {namespace}")
    return obj


async def restart_workload(client: kube.AsyncKubeClient, namespace: str, kind: str, name: str,
                           restarted_at: str) -> dict[str, Any]:
    """`kubectl rollout restart`: set the template's restartedAt annotation to `restarted_at`.

    Idempotent per `restarted_at`: when the template already carries it, nothing is sent,
    so an operator resuming an interrupted decision never restarts twice. Returns the workload.
    """
    res = _resource(kind)
    patch = restart_patch(kind, restarted_at)
    obj = await _get_workload(client, namespace, kind, name)
    if already_restarted(obj, restarted_at):
        return obj
    if kind == "Deployment" and is_paused(obj):
        raise RemediationError(f"Deployment {name} is paused: a restart would not roll out "
                               "(resume it with `kubectl rollout resume` first)")
    try:
        return await client.patch(res, name, patch, namespace, content_type=kube.STRATEGIC)
    except kube.NotFound:
        raise RemediationError(f"{kind} {name} not found in namespace {namespace}") from None


async def rollback_workload(client: kube.AsyncKubeClient, namespace: str, kind: str, name: str,
                            attempt_id: str) -> str:
    """`kubectl rollout undo`: return a Deployment to its previous revision's pod template.

    Idempotent per `attempt_id` (recorded in an annotation by the same patch): a resumed
    attempt does not undo again, which would return to the bad revision. Returns a line for
    the attempt's message.
    """
    if kind != "Deployment":
        raise RemediationError(f"rollback supports Deployments only, not {kind}")
    for _ in range(3):  # the patch is guarded by the resourceVersion read: re-read if it moved
        obj = await _get_workload(client, namespace, kind, name)
        if rolled_back_by(obj) == attempt_id:
            return f"{kind}/{name} was already rolled back by this attempt"
        if is_paused(obj):
            raise RemediationError(f"Deployment {name} is paused: a rollback would not roll out "
                                   "(resume it with `kubectl rollout resume` first)")
        labels = mapping(mapping(Resource(obj).spec.get("selector")).get("matchLabels"))
        sets = await client.list(kube.REPLICASETS, namespace, labels=labels)
        try:
            plan = rollback_plan(obj, sets)
        except ValueError as exc:
            raise RemediationError(f"cannot roll back Deployment {name}: {exc}") from None
        try:
            await client.patch(_resource(kind), name, rollback_patch(obj, plan, attempt_id), namespace,
                               content_type=kube.JSON_PATCH)
        except kube.NotFound:
            raise RemediationError(f"{kind} {name} not found in namespace {namespace}") from None
        except (kube.Invalid, kube.Conflict) as exc:
            if "resourceVersion" not in str(exc) and "test" not in str(exc).lower():
                raise
            continue
        images = ", ".join(str(c.get("image")) for c in sequence(Resource(plan.template).spec.get("containers")))
        return f"rolled {kind}/{name} back from revision {plan.from_revision} to {plan.to_revision} ({images})"
    raise RemediationError(f"Deployment {name} kept changing during the rollback; not rolled back")


async def wait_rollout(client: kube.AsyncKubeClient, namespace: str, kind: str, name: str, timeout: float,
                       poll: float = 0.5) -> RolloutStatus:
    """Poll until the rollout is done or failed (kubectl's rules), or `timeout` seconds pass.

    On timeout the last status is returned with `timed_out=True`. A vanished target raises
    RemediationError; brief API server outages are waited out within the timeout.
    """
    res = _resource(kind)
    deadline = time.monotonic() + max(0.0, timeout)
    last = RolloutStatus(False, False, "rollout not observed yet")
    while True:
        try:
            obj = await client.get_or_none(res, name, namespace)
        except kube.Unavailable as exc:
            last = RolloutStatus(False, False, f"API server unavailable: {exc}")
        else:
            if obj is None:
                raise RemediationError(f"{kind} {name} not found in namespace {namespace}")
            last = rollout_status(kind, obj)
            if last.finished:
                return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return RolloutStatus(False, True, f"rollout did not finish within {timeout:g}s: {last.message}",
                                 timed_out=True)
        await asyncio.sleep(min(poll, remaining))


async def scale_workload(client: kube.AsyncKubeClient, namespace: str, kind: str, name: str,
                         replicas: int) -> dict[str, Any]:
    """Set the replica count of a Deployment or StatefulSet (absolute, so repeating is harmless)."""
    if kind == "DaemonSet":
        raise RemediationError("a DaemonSet cannot be scaled: it runs one pod per node")
    res = _resource(kind)
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise RemediationError(f"replicas must be a whole number of 0 or more, not {replicas!r}")
    await _get_workload(client, namespace, kind, name)
    try:
        return await client.patch(res, name, {"spec": {"replicas": replicas}}, namespace)
    except kube.NotFound:
        raise RemediationError(f"{kind} {name} not found in namespace {namespace}") from None


# --- Ansible ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaybookResult:
    rc: int | None
    status: str          # ansible-runner's: successful, failed, timeout, canceled; 'error' if it could not run
    output_tail: str
    timed_out: bool
    duration: float

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0


def resolve_playbook(playbooks_dir: str | os.PathLike[str], playbook: str) -> Path:
    """The playbook's real path, refusing anything that is not a file inside `playbooks_dir`.

    Symlinks are followed only while they stay inside the directory (a mounted ConfigMap
    is made of such links); absolute paths and `..` are refused outright.
    """
    if not isinstance(playbook, str) or not playbook.strip():
        raise RemediationError("playbook name is empty")
    if "\x00" in playbook:
        raise RemediationError("playbook name contains a NUL byte")
    rel = Path(playbook)
    if rel.is_absolute() or playbook.startswith(("/", "\\")):
        raise RemediationError(f"playbook {playbook!r} must be relative to the playbooks directory, not absolute")
    if ".." in rel.parts:
        raise RemediationError(f"playbook {playbook!r} must not contain '..'")
    if rel.suffix not in PLAYBOOK_SUFFIXES:
        raise RemediationError(f"playbook {playbook!r} must be a .yml or .yaml file")
    base = Path(playbooks_dir)
    try:
        root = base.resolve(strict=True)
    except (OSError, RuntimeError):
        raise RemediationError(f"playbooks directory {str(base)!r} does not exist") from None
    if not root.is_dir():
        raise RemediationError(f"playbooks directory {str(base)!r} is not a directory")
    try:
        real = (root / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        raise RemediationError(f"playbook {playbook!r} not found in {root}") from None
    if not real.is_relative_to(root):
        raise RemediationError(f"playbook {playbook!r} resolves outside the playbooks directory")
    if not real.is_file():
        raise RemediationError(f"playbook {playbook!r} is not a regular file")
    return real


def _as_data(value: Any, where: str) -> Any:
    # Every string is wrapped as {"__ansible_unsafe": ...}: incident titles and alert labels
    # come from outside, and `{{ lookup('pipe', ...) }}` in one must stay text, never run.
    # JSON, not YAML: Ansible re-resolves YAML scalars, turning "2026-03-01T13:00:00Z" into a
    # datetime and "no" into False.
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise RemediationError(f"extra var {where} is not a finite number")
        return value
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise RemediationError(f"extra var {where}: keys must be strings, not {key!r}")
            if "__ansible" in key:
                raise RemediationError(f"extra var {where}: key {key!r} is reserved by Ansible")
            out[key] = _as_data(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_as_data(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise RemediationError(f"extra var {where} has unsupported type {type(value).__name__}")


def extravars_document(extravars: Mapping[str, Any]) -> str:
    """The extra-vars file: JSON with every string marked unsafe (never templated, never on a command line)."""
    if not isinstance(extravars, Mapping):
        raise RemediationError("extravars must be a mapping")
    data = {}
    for key, value in extravars.items():
        if not isinstance(key, str) or not _VAR_NAME.match(key):
            raise RemediationError(f"extra var name {key!r} is not a valid Ansible variable name")
        data[key] = _as_data(value, key)
    return json.dumps(data, ensure_ascii=False, sort_keys=True, allow_nan=False)


# The only variables of the operator's own environment a playbook gets: where programs and the
# home directory are, the locale (ansible-core refuses a non-UTF-8 one), and what the Kubernetes
# client needs to find the API server. In-cluster, the kubernetes client (used by the
# kubernetes.core modules) reads KUBERNETES_SERVICE_HOST/PORT and the ServiceAccount token and
# CA from their fixed files under /var/run/secrets/kubernetes.io/serviceaccount/, not from the
# environment. Every PARAMEDIC_* setting, and anything else, stays out.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "KUBECONFIG",
                 "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")
# What ansible-runner itself sets while preparing a run (its output callback and artifacts).
RUNNER_ENV = ("ANSIBLE_STDOUT_CALLBACK", "ORIGINAL_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS",
              "AWX_ISOLATED_DATA_DIR", "ANSIBLE_CACHE_PLUGIN", "ANSIBLE_CACHE_PLUGIN_CONNECTION",
              "ANSIBLE_RETRY_FILES_ENABLED", "ANSIBLE_HOST_KEY_CHECKING")


def ansible_environment(extra: Mapping[str, str] | None = None, temp_dir: str | None = None,
                        inherited: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a playbook run: an allowlist, not the operator's environment.

    `inherited` (default: this process's environment) contributes only INHERITED_ENV.
    """
    source = os.environ if inherited is None else inherited
    bin_dir = str(Path(sys.executable).parent)
    path = source.get("PATH", "") or os.defpath
    env: dict[str, str] = {name: source[name] for name in INHERITED_ENV if source.get(name)}
    env.setdefault("LANG", "C.UTF-8")
    env.update({
        # ansible-runner looks ansible-playbook up on PATH: this venv's first.
        "PATH": bin_dir + (os.pathsep + path if path else ""),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "PYTHONUNBUFFERED": "1",
    })
    collections = [str(Path(p)) for p in sys.path if p and (Path(p) / "ansible_collections").is_dir()]
    if collections:
        # kubernetes.core ships in the `ansible` package inside this environment.
        defaults = [os.path.expanduser("~/.ansible/collections"), "/usr/share/ansible/collections"]
        env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(dict.fromkeys(collections + defaults))
    if temp_dir:
        # The home directory may be read-only in a container.
        env["TMPDIR"] = os.path.join(temp_dir, "tmp")
        env["ANSIBLE_HOME"] = os.path.join(temp_dir, "home")
        env["ANSIBLE_LOCAL_TEMP"] = os.path.join(temp_dir, "tmp")
        env["ANSIBLE_REMOTE_TEMP"] = os.path.join(temp_dir, "tmp")
        env["ANSIBLE_ASYNC_DIR"] = os.path.join(temp_dir, "async")
    if extra:
        env.update({str(k): str(v) for k, v in extra.items()})
    return env


def runner_environment(prepared: Mapping[str, str], ours: Mapping[str, str]) -> dict[str, str]:
    """The environment ansible-runner will start ansible-playbook with: ours, plus only the
    variables ansible-runner itself set (RUNNER_ENV). ansible-runner seeds a run with its
    whole process environment (the operator's, secrets included): that part is dropped."""
    env = {k: v for k, v in prepared.items() if k in RUNNER_ENV}
    env.update(ours)
    return env


def output_tail(text: str, lines: int = OUTPUT_TAIL_LINES, limit: int = OUTPUT_TAIL_BYTES) -> str:
    """The last `lines` lines, at most `limit` bytes of UTF-8, colour codes removed."""
    clean = _ANSI.sub("", text).replace("\r\n", "\n").strip("\n").rstrip()
    tail = "\n".join(clean.split("\n")[-lines:])
    raw = tail.encode("utf-8")
    if len(raw) > limit:
        tail = raw[-limit:].decode("utf-8", errors="ignore")
    return tail


RUN_MARKER = "PARAMEDIC_ANSIBLE_RUN"


def _kill_marked(marker: str) -> int:
    """SIGKILL every process whose environment carries this run's marker.

    ansible-runner kills ansible-playbook's process group on timeout, but modules start
    commands in sessions of their own, which would outlive the time limit.
    """
    needle = f"{RUN_MARKER}={marker}".encode()
    killed = 0
    for _ in range(3):  # a dying tree may still fork once or twice
        found = False
        try:
            entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
        except OSError:
            return killed
        for name in entries:
            pid = int(name)
            if pid == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as fh:
                    if needle not in fh.read().split(b"\0"):
                        continue
                os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue
            killed += 1
            found = True
        if not found:
            break
        time.sleep(0.05)
    return killed


def _inventory() -> str:
    return f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"


def _run_sync(playbook_path: Path, root: Path, extravars: Mapping[str, Any], timeout: int,
              envvars: Mapping[str, str] | None, cancelled: threading.Event) -> PlaybookResult:
    import ansible_runner
    import ansible_runner.interface

    started = time.monotonic()
    marker = uuid.uuid4().hex
    data_dir = tempfile.mkdtemp(prefix="paramedic-ansible-")
    try:
        os.makedirs(os.path.join(data_dir, "env"), exist_ok=True)
        os.makedirs(os.path.join(data_dir, "tmp"), exist_ok=True)
        # Written with 0600: extra vars may carry tokens.
        fd = os.open(os.path.join(data_dir, "env", "extravars"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(extravars_document(extravars))
        env = {**ansible_environment(envvars, temp_dir=data_dir), RUN_MARKER: marker}
        try:
            # ansible_runner.run() is init_runner() + run(); in between, the environment it
            # prepared from os.environ is replaced by the allowlisted one.
            runner = ansible_runner.interface.init_runner(
                private_data_dir=data_dir,
                project_dir=str(root),
                playbook=str(playbook_path.relative_to(root)),
                inventory=_inventory(),
                envvars=env,
                timeout=int(timeout),
                quiet=True,
                cancel_callback=cancelled.is_set,
            )
            runner.config.env = runner_environment(runner.config.env, env)
            runner.run()
        except Exception as exc:  # ansible-runner raises on configuration problems; report, don't crash
            _kill_marked(marker)
            return PlaybookResult(None, "error", f"{exc.__class__.__name__}: {exc}", False,
                                  time.monotonic() - started)
        try:
            with runner.stdout as fh:
                text = fh.read()
        except Exception:
            text = ""
        status = str(runner.status)
        if status in ("timeout", "canceled"):
            # Bounded means bounded: nothing the run started may keep going.
            _kill_marked(marker)
        rc = runner.rc if isinstance(runner.rc, int) else None
        return PlaybookResult(rc, status, output_tail(text), status == "timeout", time.monotonic() - started)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def run_playbook(playbooks_dir: str | os.PathLike[str], playbook: str, extravars: Mapping[str, Any],
                       timeout: int, envvars: Mapping[str, str] | None = None) -> PlaybookResult:
    """Run a playbook from `playbooks_dir` against localhost with ansible-runner, within `timeout` seconds.

    `extravars` reach the playbook as data (a vars file, strings marked !unsafe), never on a
    command line. Bad input raises RemediationError; a failing or hanging playbook is a result.
    """
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 1:
        raise RemediationError(f"timeout must be at least 1 second, not {timeout!r}")
    path = resolve_playbook(playbooks_dir, playbook)
    root = Path(playbooks_dir).resolve()
    extravars_document(extravars)  # refuse bad vars before starting anything
    if envvars is not None and not (isinstance(envvars, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in envvars.items())):
        raise RemediationError("envvars must map names to string values")
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(_run_sync, path, root, extravars, int(timeout), envvars, cancelled)
    except asyncio.CancelledError:
        # The thread cannot be interrupted; ask ansible-runner to stop the playbook.
        cancelled.set()
        raise


def load_catalog(settings: Settings) -> Catalog:
    """The admin's playbook catalog, read at each run (a mounted ConfigMap updates in place).

    A missing or broken catalog allows nothing: RemediationError says why.
    """
    path = Path(settings.playbook_catalog or Path(settings.playbooks_dir) / "catalog.yaml")
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RemediationError(f"no playbook runs without the playbook catalog: cannot read {path}: "
                               f"{exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RemediationError(f"playbook catalog {path} is not valid YAML: {exc}") from None
    try:
        return parse_catalog(doc)
    except CatalogError as exc:
        raise RemediationError(f"{exc} ({path})") from None


def checked_playbook_vars(settings: Settings, ansible: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """The tenant's `extraVars` once the catalog allows them (RemediationError says why not)."""
    extra = ansible.get("extraVars") or {}
    try:
        load_catalog(settings).check(ansible.get("playbook", ""), extra, namespace)
    except PlaybookRefused as exc:
        raise RemediationError(f"refused: {exc}") from None
    return dict(extra)


# --- one attempt ----------------------------------------------------------------------------


def playbook_vars(inc: dict[str, Any], svc: dict[str, Any], attempt: dict[str, Any], kubeconfig: str) -> dict[str, Any]:
    """Incident and target context for playbooks, passed as data (never spliced into a command)."""
    incident, service = Incident(inc), Service(svc)
    ns = incident.namespace
    out: dict[str, Any] = {
        "incident_name": incident.name,
        "incident_namespace": ns,
        "service": incident.service,
        "severity": str(incident.severity),
        "namespace": ns,
        "target_kind": service.target_kind,
        "target_name": service.target_name,
        "deployment": service.target_name,
        "restarted_at": attempt.get("restartedAt", ""),
    }
    if kubeconfig:
        out["kubeconfig"] = kubeconfig
    return out


def _rollout_outcome(status: RolloutStatus, done: str, not_done: str) -> dict[str, Any]:
    """A restart's or rollback's result from its rollout: verify next, or why not."""
    if status.done:
        return {"result": AttemptResult.VERIFYING, "message": done}
    return {"result": AttemptResult.TIMED_OUT if not status.failed else AttemptResult.FAILED,
            "message": f"{not_done}: {status.message}"}


class NotHolder(RuntimeError):
    """This operator replica no longer holds the incident's shard: it must not act (the next
    holder finds the attempt in status and resumes it)."""


def _always() -> bool:
    return True


async def run_attempt(client: kube.AsyncKubeClient, settings: Settings, inc: dict[str, Any], svc: dict[str, Any],
                      attempt: dict[str, Any], may_act: Callable[[], bool] = _always) -> dict[str, Any]:
    """Do the attempt's action (the operator runs this as a background side effect); returns
    the fields to record on the attempt. `Verifying` means the action itself worked and
    recovery is to be confirmed. `may_act` is the shard's fence, checked right before the
    action's write.
    """
    if not may_act():
        raise NotHolder(f"the shard of {Incident(inc).namespace}/{Incident(inc).name} moved before its attempt ran")
    service = Service(svc)
    ns = Incident(inc).namespace
    kind, name = service.target_kind, service.target_name
    actions = sequence(service.remediation.get("actions"))
    index = int(attempt.get("index") or 0)
    action = actions[index] if index < len(actions) else {}
    try:
        if "restart" in action:
            timeout = mapping(action.get("restart")).get("timeoutSeconds") or settings.rollout_timeout_seconds
            await restart_workload(client, ns, kind, name, attempt["restartedAt"])
            status = await wait_rollout(client, ns, kind, name, timeout)
            return _rollout_outcome(status, f"rollout restart of {kind}/{name} completed",
                                    f"rollout of {kind}/{name} did not complete")
        if "rollback" in action:
            timeout = mapping(action.get("rollback")).get("timeoutSeconds") or settings.rollout_timeout_seconds
            what = await rollback_workload(client, ns, kind, name, str(attempt.get("id") or attempt["restartedAt"]))
            status = await wait_rollout(client, ns, kind, name, timeout)
            return _rollout_outcome(status, f"{what}; rollout completed", f"{what}, but the rollout did not complete")
        if "scale" in action:
            replicas = int(action["scale"]["replicas"])
            await scale_workload(client, ns, kind, name, replicas)
            status = await wait_rollout(client, ns, kind, name, settings.rollout_timeout_seconds)
            if status.done:
                return {"result": AttemptResult.VERIFYING, "message": f"scaled {kind}/{name} to {replicas}"}
            return {"result": AttemptResult.FAILED, "message": f"scaling {kind}/{name}: {status.message}"}
        if "ansible" in action:
            spec_a = action["ansible"]
            # The catalog refuses operator-owned names in extraVars; the operator's own vars
            # still come last, so they win even if a catalog were wrong.
            extravars = {**checked_playbook_vars(settings, spec_a, ns),
                         **playbook_vars(inc, svc, attempt, settings.kubeconfig or os.environ.get("KUBECONFIG", ""))}
            # No PATH of its own: ansible_environment already puts this interpreter's bin first.
            result = await run_playbook(settings.playbooks_dir, spec_a["playbook"], extravars,
                                        int(spec_a.get("timeoutSeconds") or settings.ansible_timeout_seconds))
            # output_tail is already bounded (OUTPUT_TAIL_LINES, OUTPUT_TAIL_BYTES).
            fields = {"rc": result.rc, "status": result.status, "outputTail": result.output_tail}
            if result.timed_out:
                return {**fields, "result": AttemptResult.TIMED_OUT, "message": f"playbook {spec_a['playbook']} timed out"}
            if result.ok:
                return {**fields, "result": AttemptResult.VERIFYING, "message": f"playbook {spec_a['playbook']} succeeded"}
            return {**fields, "result": AttemptResult.FAILED,
                    "message": f"playbook {spec_a['playbook']} {result.status} (rc {result.rc})"}
        return {"result": AttemptResult.FAILED, "message": "unknown action"}
    except RemediationError as exc:
        # Counted once, by the planner, when it records this result (as failed).
        return {"result": AttemptResult.FAILED, "message": str(exc)}
