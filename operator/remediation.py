"""Carrying out one remediation attempt (runs as a background side effect)."""

from __future__ import annotations

import os
import sys
from typing import Any

from paramedic import metrics
from paramedic.domain.vocabulary import AttemptResult
from paramedic.remediate import RemediationError, restart_workload, run_playbook, scale_workload, wait_rollout

from .runtime import Runtime


def playbook_vars(inc: dict, svc: dict, attempt: dict, kubeconfig: str) -> dict[str, Any]:
    """Incident and target context for playbooks, passed as data (never spliced into a command)."""
    target = (svc.get("spec") or {}).get("target") or {}
    ns = inc["metadata"]["namespace"]
    out: dict[str, Any] = {
        "incident_name": inc["metadata"]["name"],
        "incident_namespace": ns,
        "service": inc["spec"].get("service", ""),
        "severity": inc["spec"].get("severity", ""),
        "namespace": ns,
        "target_kind": target.get("kind", "Deployment"),
        "target_name": target.get("name", ""),
        "deployment": target.get("name", ""),
        "restarted_at": attempt.get("restartedAt", ""),
    }
    if kubeconfig:
        out["kubeconfig"] = kubeconfig
    return out


async def run_action(rt: Runtime, inc: dict, svc: dict, attempt: dict) -> dict[str, Any]:
    """Do the attempt's action; returns the fields to record on the attempt.

    `Verifying` means the action itself worked and recovery is to be confirmed.
    """
    spec = svc.get("spec") or {}
    target = spec.get("target") or {}
    ns = inc["metadata"]["namespace"]
    kind, name = target.get("kind", "Deployment"), target.get("name", "")
    actions = (spec.get("remediation") or {}).get("actions") or []
    index = int(attempt.get("index") or 0)
    action = actions[index] if index < len(actions) else {}
    settings = rt.settings
    try:
        if "restart" in action:
            timeout = (action.get("restart") or {}).get("timeoutSeconds") or settings.rollout_timeout_seconds
            await restart_workload(rt.client, ns, kind, name, attempt["restartedAt"])
            status = await wait_rollout(rt.client, ns, kind, name, timeout)
            if status.done:
                return {"result": AttemptResult.VERIFYING, "message": f"rollout restart of {kind}/{name} completed"}
            return {"result": AttemptResult.TIMED_OUT if not status.failed else AttemptResult.FAILED,
                    "message": f"rollout of {kind}/{name} did not complete: {status.message}"}
        if "scale" in action:
            replicas = int(action["scale"]["replicas"])
            await scale_workload(rt.client, ns, kind, name, replicas)
            status = await wait_rollout(rt.client, ns, kind, name, settings.rollout_timeout_seconds)
            if status.done:
                return {"result": AttemptResult.VERIFYING, "message": f"scaled {kind}/{name} to {replicas}"}
            return {"result": AttemptResult.FAILED, "message": f"scaling {kind}/{name}: {status.message}"}
        if "ansible" in action:
            spec_a = action["ansible"]
            extravars = {**(spec_a.get("extraVars") or {}),
                         **playbook_vars(inc, svc, attempt, settings.kubeconfig or os.environ.get("KUBECONFIG", ""))}
            env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
            result = await run_playbook(settings.playbooks_dir, spec_a["playbook"], extravars,
                                        int(spec_a.get("timeoutSeconds") or settings.ansible_timeout_seconds), env)
            fields = {"rc": result.rc, "status": result.status, "outputTail": result.output_tail[-4000:]}
            if result.timed_out:
                return {**fields, "result": AttemptResult.TIMED_OUT, "message": f"playbook {spec_a['playbook']} timed out"}
            if result.rc == 0 and result.status == "successful":
                return {**fields, "result": AttemptResult.VERIFYING, "message": f"playbook {spec_a['playbook']} succeeded"}
            return {**fields, "result": AttemptResult.FAILED,
                    "message": f"playbook {spec_a['playbook']} {result.status} (rc {result.rc})"}
        return {"result": AttemptResult.FAILED, "message": "unknown action"}
    except RemediationError as exc:
        metrics.REMEDIATIONS.labels(attempt.get("action", "unknown"), "refused").inc()
        return {"result": AttemptResult.FAILED, "message": str(exc)}
