"""kubectl's `rollout status` and `rollout restart` rules, over workload bodies as dicts
(read through `resources.Resource`: a missing or malformed object reads as empty).

The status rules follow kubectl's polymorphichelpers (DeploymentStatusViewer,
StatefulSetStatusViewer, DaemonSetStatusViewer), messages included, so what
Paramedic records reads like what an operator would see in a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .resources import Resource, mapping, sequence

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
TEMPLATE_HASH = "pod-template-hash"
ROLLED_BACK_BY = "paramedic.dev/rolled-back-by"
"""Deployment annotation naming the remediation attempt that last rolled it back (keeps a
resumed attempt from undoing twice, which would return to the bad revision)."""
KINDS = ("Deployment", "StatefulSet", "DaemonSet")
# The Progressing condition's reason once progressDeadlineSeconds has passed.
TIMED_OUT_REASON = "ProgressDeadlineExceeded"


@dataclass(frozen=True)
class RolloutStatus:
    """`done`: rolled out. `failed`: will not finish by waiting longer. Neither: keep waiting.

    `timed_out` is set by callers that gave up waiting (never by `rollout_status`).
    """

    done: bool
    failed: bool
    message: str
    timed_out: bool = False

    @property
    def finished(self) -> bool:
        return self.done or self.failed


def _int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _name(obj: Mapping[str, Any]) -> str:
    return Resource(obj).name


def _generations(obj: Mapping[str, Any]) -> tuple[int, int]:
    view = Resource(obj)
    return _int(view.meta.get("generation")), _int(view.status.get("observedGeneration"))


def rollout_status(kind: str, obj: Mapping[str, Any]) -> RolloutStatus:
    """Where the rollout of a Deployment, StatefulSet or DaemonSet stands."""
    if kind == "Deployment":
        return _deployment(obj)
    if kind == "StatefulSet":
        return _statefulset(obj)
    if kind == "DaemonSet":
        return _daemonset(obj)
    raise ValueError(f"rollout status is not supported for kind {kind!r} (expected one of {', '.join(KINDS)})")


def _deployment(obj: Mapping[str, Any]) -> RolloutStatus:
    name = _name(obj)
    generation, observed = _generations(obj)
    if generation > observed:
        return RolloutStatus(False, False, "Waiting for deployment spec update to be observed...")
    status = Resource(obj).status
    for cond in sequence(status.get("conditions")):
        if cond.get("type") == "Progressing" and cond.get("reason") == TIMED_OUT_REASON:
            return RolloutStatus(False, True, f'deployment "{name}" exceeded its progress deadline')
    spec_replicas = Resource(obj).spec.get("replicas")
    updated = _int(status.get("updatedReplicas"))
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    # kubectl skips this check when spec.replicas is nil; the API server defaults it to 1.
    if isinstance(spec_replicas, int) and updated < spec_replicas:
        return RolloutStatus(False, False, f'Waiting for deployment "{name}" rollout to finish: '
                                           f"{updated} out of {spec_replicas} new replicas have been updated...")
    if replicas > updated:
        return RolloutStatus(False, False, f'Waiting for deployment "{name}" rollout to finish: '
                                           f"{replicas - updated} old replicas are pending termination...")
    if available < updated:
        return RolloutStatus(False, False, f'Waiting for deployment "{name}" rollout to finish: '
                                           f"{available} of {updated} updated replicas are available...")
    return RolloutStatus(True, False, f'deployment "{name}" successfully rolled out')


def _statefulset(obj: Mapping[str, Any]) -> RolloutStatus:
    spec = Resource(obj).spec
    strategy = mapping(spec.get("updateStrategy"))
    # The API server defaults the type to RollingUpdate; OnDelete never rolls by itself.
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return RolloutStatus(False, True, "rollout status is only available for RollingUpdate strategy type")
    generation, observed = _generations(obj)
    if observed == 0 or generation > observed:
        return RolloutStatus(False, False, "Waiting for statefulset spec update to be observed...")
    status = Resource(obj).status
    spec_replicas = spec.get("replicas")
    ready = _int(status.get("readyReplicas"))
    updated = _int(status.get("updatedReplicas"))
    if isinstance(spec_replicas, int) and ready < spec_replicas:
        return RolloutStatus(False, False, f"Waiting for {spec_replicas - ready} pods to be ready...")
    rolling = strategy.get("rollingUpdate")
    if isinstance(rolling, Mapping):
        partition = rolling.get("partition")
        if isinstance(spec_replicas, int) and isinstance(partition, int):
            wanted = spec_replicas - partition
            if updated < wanted:
                return RolloutStatus(False, False, "Waiting for partitioned roll out to finish: "
                                                   f"{updated} out of {wanted} new pods have been updated...")
        return RolloutStatus(True, False, f"partitioned roll out complete: {updated} new pods have been updated...")
    update_rev, current_rev = status.get("updateRevision", ""), status.get("currentRevision", "")
    if update_rev != current_rev:
        return RolloutStatus(False, False, f"waiting for statefulset rolling update to complete {updated} pods "
                                           f"at revision {update_rev}...")
    current = _int(status.get("currentReplicas"))
    return RolloutStatus(True, False, f"statefulset rolling update complete {current} pods at revision {current_rev}...")


def _daemonset(obj: Mapping[str, Any]) -> RolloutStatus:
    name = _name(obj)
    strategy = mapping(Resource(obj).spec.get("updateStrategy"))
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return RolloutStatus(False, True, "rollout status is only available for RollingUpdate strategy type")
    generation, observed = _generations(obj)
    if generation > observed:
        return RolloutStatus(False, False, "Waiting for daemon set spec update to be observed...")
    status = Resource(obj).status
    desired = _int(status.get("desiredNumberScheduled"))
    updated = _int(status.get("updatedNumberScheduled"))
    available = _int(status.get("numberAvailable"))
    if updated < desired:
        return RolloutStatus(False, False, f'Waiting for daemon set "{name}" rollout to finish: '
                                           f"{updated} out of {desired} new pods have been updated...")
    if available < desired:
        return RolloutStatus(False, False, f'Waiting for daemon set "{name}" rollout to finish: '
                                           f"{available} of {desired} updated pods are available...")
    return RolloutStatus(True, False, f'daemon set "{name}" successfully rolled out')


def restart_patch(kind: str, restarted_at: str) -> dict[str, Any]:
    """The patch `kubectl rollout restart` sends (valid as strategic-merge and as merge patch)."""
    if kind not in KINDS:
        raise ValueError(f"cannot restart kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not isinstance(restarted_at, str) or not restarted_at:
        raise ValueError("restarted_at must be a non-empty timestamp string")
    return {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: restarted_at}}}}}


def template_restarted_at(obj: Mapping[str, Any]) -> str | None:
    """The pod template's restartedAt annotation, if any."""
    template = mapping(Resource(obj).spec.get("template"))
    value = Resource(template).annotations.get(RESTARTED_AT)
    return value if isinstance(value, str) else None


def already_restarted(obj: Mapping[str, Any], restarted_at: str) -> bool:
    """True when this exact restart was already applied: patching again would change nothing."""
    return template_restarted_at(obj) == restarted_at


def is_paused(obj: Mapping[str, Any]) -> bool:
    """A paused Deployment ignores template changes; kubectl refuses to restart it."""
    return Resource(obj).spec.get("paused") is True


@dataclass(frozen=True)
class Rollback:
    """What `kubectl rollout undo` would do: go `from_revision` → `to_revision` with `template`."""

    from_revision: int
    to_revision: int
    template: dict[str, Any]


def _revision(obj: Mapping[str, Any]) -> int:
    value = Resource(obj).annotations.get(REVISION)
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _owned_by(obj: Mapping[str, Any], uid: Any) -> bool:
    return any(ref.get("uid") == uid for ref in sequence(Resource(obj).meta.get("ownerReferences")))


def _spec_without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    view = Resource(template)
    meta = dict(view.meta)
    labels = {k: v for k, v in view.labels.items() if k != TEMPLATE_HASH}
    meta["labels"] = labels
    return {**template, "metadata": meta}


def rollback_plan(deployment: Mapping[str, Any], replicasets: Sequence[Mapping[str, Any]]) -> Rollback:
    """The previous revision to return `deployment` to, as `kubectl rollout undo` picks it: the
    owned ReplicaSet with the highest revision below the Deployment's current one. Raises
    ValueError when there is none, or when the Deployment already runs that template."""
    uid = Resource(deployment).meta.get("uid")
    owned = [rs for rs in replicasets if _owned_by(rs, uid) and _revision(rs) > 0]
    current = _revision(deployment) or max((_revision(rs) for rs in owned), default=0)
    older = [rs for rs in owned if _revision(rs) < current]
    if not older:
        raise ValueError(f"no revision before {current} to roll back to")
    previous = max(older, key=_revision)
    template = _spec_without_hash(mapping(Resource(previous).spec.get("template")))
    now = _spec_without_hash(mapping(Resource(deployment).spec.get("template")))
    if template == now:
        raise ValueError(f"the current template already matches revision {_revision(previous)}")
    return Rollback(current, _revision(previous), template)


def rollback_patch(deployment: Mapping[str, Any], rollback: Rollback, attempt_id: str) -> list[dict[str, Any]]:
    """A JSON patch returning the pod template to `rollback.template` (as kubectl does, the
    whole template is replaced) and naming the attempt; guarded by the resourceVersion read."""
    view = Resource(deployment)
    annotations = {**view.annotations, ROLLED_BACK_BY: attempt_id}
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": view.meta.get("resourceVersion")},
            {"op": "replace", "path": "/spec/template", "value": rollback.template},
            {"op": "add", "path": "/metadata/annotations", "value": annotations}]


def rolled_back_by(obj: Mapping[str, Any]) -> str | None:
    value = Resource(obj).annotations.get(ROLLED_BACK_BY)
    return value if isinstance(value, str) else None
