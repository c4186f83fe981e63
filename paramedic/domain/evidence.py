"""Evidence about an incident's target: what changed, what broke, where.

`build(...)` turns what the adapter read (the workload, its revisions, its pods, Warning
Events, the nodes involved) into the `status.evidence` object of an Incident. Pure: no
I/O, no clock. Every list is capped and every string cut, so however long a pod crash
loops, the incident stays within `MAX_BYTES` (Kubernetes aggregates repeated Events
into a count; restarts are a count too).

Each item carries a `ref` (the name hints cite it by) and a `time`:

- rollouts: `rollout/<revision>` — when the revision was created, and its pod template
  change from the revision before (image, command and args as flag names and counts, env
  names, resources: never a value of args or env);
- containers: `pod/<pod>/<container>` — when its current or last state began/ended;
- events: `event/<name>` — when it was last seen;
- nodes: `node/<name>` — when its Ready condition last changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .resources import Resource, mapping, sequence, text
from .text import cut as text_cut
from .timeutil import iso, parse_or_none

MAX_ROLLOUTS = 3
MAX_CONTAINERS = 10
MAX_EVENTS = 10
MAX_NODES = 5
MAX_CHANGES = 8
MAX_TEXT = 300
MAX_LOG_CHARS = 2000
MAX_BYTES = 40 * 1024
"""The most `status.evidence` may take as JSON (unit-tested against the caps above)."""

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH_LABEL = "pod-template-hash"
CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


@dataclass(frozen=True)
class Revision:
    """One revision of a workload's pod template (a ReplicaSet or a ControllerRevision)."""

    number: int
    name: str
    created: str
    template: Mapping[str, Any]
    hash: str = ""
    """The pod-template-hash / controller-revision-hash its pods carry."""


def cut(text: Any, limit: int = MAX_TEXT) -> str:
    """`text` as a string of at most `limit` characters (an ellipsis marks the cut)."""
    return text_cut(text, limit)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


# --- revisions --------------------------------------------------------------------------------


def replicaset_revision(rs: Mapping[str, Any]) -> Revision:
    r = Resource(rs)
    return Revision(_int(r.annotations.get(REVISION_ANNOTATION)), r.name, r.created, mapping(r.spec.get("template")),
                    text(r.labels.get(TEMPLATE_HASH_LABEL)))


def controller_revision(cr: Mapping[str, Any]) -> Revision:
    r = Resource(cr)
    template = mapping(Resource(mapping(cr.get("data"))).spec.get("template"))  # data: the workload's own shape
    return Revision(_int(cr.get("revision")), r.name, r.created, template,
                    text(r.labels.get(CONTROLLER_REVISION_HASH_LABEL)) or r.name.rsplit("-", 1)[-1])


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    return any(mapping(ref).get("uid") == uid for ref in sequence(Resource(obj).meta.get("ownerReferences")))


def _containers(template: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("name", "")): c for c in sequence(Resource(template).spec.get("containers"))
            if isinstance(c, Mapping)}


# `--name=value`: the one form whose flag name can be told apart from its value. `-pSECRET`,
# `--password SECRET` or `sh -c "..."` cannot, so every other word is only counted.
_NAMED_FLAG = re.compile(r"^(--[A-Za-z0-9][A-Za-z0-9_.-]{0,62})=")


def _argv_changes(old: Any, new: Any) -> str:
    """What changed between two command or args lists, without a single value (args carry
    passwords and tokens as often as env does): `--db-password (value changed)`,
    `--verbose=… added`, `2 other words changed`."""
    def split(value: Any) -> tuple[dict[str, list[str]], list[str]]:
        named: dict[str, list[str]] = {}
        other: list[str] = []
        for word in (str(v) for v in value) if isinstance(value, list) else ():
            m = _NAMED_FLAG.match(word)
            if m:
                named.setdefault(m.group(1), []).append(word)
            else:
                other.append(word)
        return named, other

    (named_a, other_a), (named_b, other_b) = split(old), split(new)
    parts = [f"{n} added" for n in sorted(set(named_b) - set(named_a))]
    parts += [f"{n} removed" for n in sorted(set(named_a) - set(named_b))]
    parts += [f"{n} (value changed)" for n in sorted(set(named_a) & set(named_b)) if named_a[n] != named_b[n]]
    others = sum(1 for i in range(max(len(other_a), len(other_b)))
                 if other_a[i:i + 1] != other_b[i:i + 1])
    if others:
        parts.append(f"{others} {'other ' if parts else ''}word{'s' if others > 1 else ''} changed"
                     + (f" ({len(other_a)} → {len(other_b)})" if len(other_a) != len(other_b) else ""))
    return ", ".join(parts) or "order changed"


def _resources(container: Mapping[str, Any]) -> dict[str, str]:
    res = container.get("resources") or {}
    return {f"{part}.{name}": str(v) for part in ("requests", "limits")
            for name, v in sorted((res.get(part) or {}).items())}


def template_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What changed from pod template `old` to `new`, one short line each, per container:
    image, command and args (`--name=` flag names and counts: values may be secrets), env
    names (only names, for the same reason), resources."""
    out: list[str] = []
    before, after = _containers(old), _containers(new)
    for name in sorted(set(before) - set(after)):
        out.append(f"container {name} removed")
    for name in sorted(set(after) - set(before)):
        out.append(f"container {name} added (image {after[name].get('image', '?')})")
    for name in sorted(set(before) & set(after)):
        a, b = before[name], after[name]
        if a.get("image") != b.get("image"):
            out.append(f"image {name}: {a.get('image', '')} → {b.get('image', '')}")
        for key in ("command", "args"):
            if (a.get(key) or []) != (b.get(key) or []):
                out.append(f"{key} {name}: {_argv_changes(a.get(key), b.get(key))}")
        env_a = {str(e.get("name")): e for e in a.get("env") or [] if isinstance(e, Mapping)}
        env_b = {str(e.get("name")): e for e in b.get("env") or [] if isinstance(e, Mapping)}
        parts = [f"+{n}" for n in sorted(set(env_b) - set(env_a))] + [f"-{n}" for n in sorted(set(env_a) - set(env_b))]
        parts += [f"~{n}" for n in sorted(set(env_a) & set(env_b)) if env_a[n] != env_b[n]]
        if parts:
            out.append(f"env {name}: {' '.join(parts)}")
        res_a, res_b = _resources(a), _resources(b)
        for key in sorted(set(res_a) | set(res_b)):
            if res_a.get(key) != res_b.get(key):
                out.append(f"resources {name}: {key} {res_a.get(key, '(none)')} → {res_b.get(key, '(none)')}")
    if not out and _strip_hash(old) != _strip_hash(new):
        out.append("pod template changed (annotations, labels or other fields)")
    if len(out) > MAX_CHANGES:
        out = out[: MAX_CHANGES - 1] + [f"… and {len(out) - MAX_CHANGES + 1} more"]
    return [cut(line, 200) for line in out]


def _strip_hash(template: Mapping[str, Any]) -> Any:
    meta = dict(template.get("metadata") or {})
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                      if k not in (TEMPLATE_HASH_LABEL, CONTROLLER_REVISION_HASH_LABEL)}
    return {**template, "metadata": meta}


def rollouts(revisions: Iterable[Revision]) -> list[dict[str, Any]]:
    """The newest revisions, newest first, each with its change from the one before."""
    ordered = sorted((r for r in revisions if r.number > 0), key=lambda r: r.number)
    out: list[dict[str, Any]] = []
    for i, rev in enumerate(ordered):
        item: dict[str, Any] = {"ref": f"rollout/{rev.number}", "revision": rev.number, "name": rev.name,
                                "time": rev.created, "current": i == len(ordered) - 1,
                                "images": sorted({cut(c.get("image", ""), 200)
                                                  for c in _containers(rev.template).values()})[:4]}
        if i > 0:
            item["previousRevision"] = ordered[i - 1].number
            item["changes"] = template_changes(ordered[i - 1].template, rev.template)
        else:
            item["changes"] = []
        out.append(item)
    return list(reversed(out))[:MAX_ROLLOUTS]


# --- pods and containers ------------------------------------------------------------------------


def _limits(pod: Mapping[str, Any]) -> dict[str, str]:
    return {str(c.get("name")): str(mapping(mapping(c.get("resources")).get("limits")).get("memory", ""))
            for c in sequence(Resource(pod).spec.get("containers")) if isinstance(c, Mapping)}


def container_item(pod: Mapping[str, Any], status: Mapping[str, Any], revisions: Mapping[str, int]) -> dict[str, Any]:
    p = Resource(pod)
    pod_name = p.name
    name = str(status.get("name", ""))
    state = mapping(status.get("state"))
    last = mapping(mapping(status.get("lastState")).get("terminated"))
    item: dict[str, Any] = {"ref": f"pod/{pod_name}/{name}", "pod": pod_name, "container": name,
                            "node": text(p.spec.get("nodeName")),
                            "ready": status.get("ready") is True, "restarts": _int(status.get("restartCount"))}
    time = ""
    if "waiting" in state:
        waiting = mapping(state.get("waiting"))
        item.update(state="Waiting", reason=cut(waiting.get("reason", ""), 64), message=cut(waiting.get("message", "")))
    elif "terminated" in state:
        term = mapping(state.get("terminated"))
        item.update(state="Terminated", reason=cut(term.get("reason", ""), 64), message=cut(term.get("message", "")),
                    exitCode=_int(term.get("exitCode")))
        time = str(term.get("finishedAt") or "")
    elif "running" in state:
        item.update(state="Running")
        time = str(mapping(state.get("running")).get("startedAt") or "")
    else:
        item.update(state="Unknown")
    if last:
        item.update(lastReason=cut(last.get("reason", ""), 64), lastExitCode=_int(last.get("exitCode")),
                    lastFinishedAt=str(last.get("finishedAt") or ""))
        time = time or item["lastFinishedAt"]
    limit = _limits(pod).get(name, "")
    if limit:
        item["memoryLimit"] = limit
    rev = revisions.get(str(p.labels.get(TEMPLATE_HASH_LABEL) or p.labels.get(CONTROLLER_REVISION_HASH_LABEL) or ""))
    if rev:
        item["revision"] = rev
    item["time"] = time or p.created
    return item


def pod_items(pod: Mapping[str, Any], revisions: Mapping[str, int]) -> list[dict[str, Any]]:
    """One item per container; a pod with no container status yet (unscheduled, creating) gets one."""
    p = Resource(pod)
    statuses = [s for s in sequence(p.status.get("containerStatuses")) if isinstance(s, Mapping)]
    if statuses:
        return [container_item(pod, s, revisions) for s in statuses]
    reason, message = str(p.status.get("phase", "Pending")), ""
    for cond in sequence(p.status.get("conditions")):
        if cond.get("status") == "False" and cond.get("reason"):
            reason, message = str(cond.get("reason")), str(cond.get("message", ""))
            break
    return [{"ref": f"pod/{p.name}/", "pod": p.name, "container": "",
             "node": text(p.spec.get("nodeName")), "ready": False, "restarts": 0,
             "state": "Waiting", "reason": cut(reason, 64), "message": cut(message), "time": p.created}]


def unhealthy(item: Mapping[str, Any]) -> bool:
    return not item.get("ready") or item.get("state") != "Running"


def _container_order(item: Mapping[str, Any]) -> tuple[int, int, str]:
    # The broken first, then the most restarted: those are the ones worth the space.
    return (0 if unhealthy(item) else 1, -_int(item.get("restarts")), str(item.get("ref")))


# --- events and nodes -----------------------------------------------------------------------------


def event_item(event: Mapping[str, Any]) -> dict[str, Any]:
    """An events.k8s.io/v1 Event (core v1 field names are read too)."""
    e = Resource(event)
    regarding = mapping(event.get("regarding") or event.get("involvedObject"))
    series = mapping(event.get("series"))
    time = (series.get("lastObservedTime") or event.get("deprecatedLastTimestamp") or event.get("lastTimestamp")
            or event.get("eventTime") or e.created)
    count = _int(series.get("count")) or _int(event.get("deprecatedCount")) or _int(event.get("count")) or 1
    return {"ref": f"event/{e.name}", "time": str(time),
            "object": f"{regarding.get('kind', '')}/{regarding.get('name', '')}",
            "reason": cut(event.get("reason", ""), 64), "message": cut(event.get("note") or event.get("message") or ""),
            "count": count}


def node_item(node: Mapping[str, Any]) -> dict[str, Any]:
    n = Resource(node)
    conditions = {str(c.get("type")): c for c in sequence(n.status.get("conditions"))}
    ready = mapping(conditions.get("Ready"))
    problems = [t for t in PRESSURE_CONDITIONS if mapping(conditions.get(t)).get("status") == "True"]
    if ready.get("status") != "True":
        problems.insert(0, f"NotReady ({cut(ready.get('reason') or 'Unknown', 64)})")
    if n.spec.get("unschedulable") or any(
            t.get("key") == "node.kubernetes.io/unschedulable" for t in sequence(n.spec.get("taints"))):
        problems.append("Unschedulable (cordoned)")
    return {"ref": f"node/{n.name}", "name": n.name, "ready": ready.get("status") == "True", "problems": problems,
            "time": str(ready.get("lastTransitionTime") or n.created)}


def _newest_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def key(item: Mapping[str, Any]) -> float:
        when = parse_or_none(item.get("time"))
        return when.timestamp() if when is not None else 0.0
    return sorted(items, key=key, reverse=True)


# --- the whole --------------------------------------------------------------------------------------


def build(kind: str, workload: Mapping[str, Any] | None, revisions: Sequence[Revision],
          pods: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
          nodes: Sequence[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """`status.evidence` from what was read (see the module doc for the items)."""
    name = Resource(mapping(workload)).name
    by_hash = {r.hash: r.number for r in revisions if r.hash}
    containers: list[dict[str, Any]] = []
    for pod in pods:
        containers.extend(pod_items(pod, by_hash))
    containers.sort(key=_container_order)
    shown_pods = {c["pod"] for c in containers}
    names = shown_pods | {name} | {r.name for r in revisions}
    ev = [event_item(e) for e in events if e.get("type", "Warning") == "Warning"]
    ev = [e for e in ev if e["object"].split("/", 1)[-1] in names]
    # Kubernetes aggregates repeats already; merge what is left by reason and message.
    merged: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in _newest_first(ev):
        key = (e["object"].split("/", 1)[0], e["reason"], e["message"][:80])
        if key in merged:
            merged[key]["count"] += e["count"]
        else:
            merged[key] = dict(e)
    involved = {c["node"] for c in containers if c.get("node")}
    node_items = sorted((node_item(n) for n in nodes if Resource(n).name in involved),
                        key=lambda n: (n["ready"] and not n["problems"], n["name"]))
    out = {"gatheredAt": iso(now), "target": f"{kind}/{name}" if name else kind,
           "rollouts": rollouts(revisions), "containers": containers[:MAX_CONTAINERS],
           "events": list(merged.values())[:MAX_EVENTS], "nodes": node_items[:MAX_NODES], "logs": [],
           "truncated": len(containers) > MAX_CONTAINERS or len(merged) > MAX_EVENTS or len(node_items) > MAX_NODES}
    return out


def log_target(evidence: Mapping[str, Any]) -> tuple[str, str, bool] | None:
    """(pod, container, previous) whose log is worth reading: the first broken container, and
    its previous run's log only while it waits to restart (CrashLoopBackOff: the crash is in
    that run). A container that has just terminated holds the crash itself, and kubelet keeps
    one dead run per container, so its previous run's log is usually gone by then."""
    for c in evidence.get("containers") or []:
        if c.get("container") and unhealthy(c):
            return str(c["pod"]), str(c["container"]), bool(c.get("restarts")) and c.get("state") == "Waiting"
    return None


def log_item(pod: str, container: str, previous: bool, text: str, now: datetime) -> dict[str, Any]:
    """The last lines of a log, cut from the front to MAX_LOG_CHARS (the end is what matters)."""
    return {"ref": f"log/{pod}/{container}", "pod": pod, "container": container, "previous": previous,
            "time": iso(now), "lines": text_cut(text, MAX_LOG_CHARS, keep_end=True)}


def size(evidence: Mapping[str, Any]) -> int:
    """Bytes `evidence` takes as compact JSON."""
    return len(json.dumps(evidence, separators=(",", ":"), ensure_ascii=False).encode())
