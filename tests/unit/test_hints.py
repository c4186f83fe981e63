"""Probable-cause rules over evidence: each rule, its ranking and its explanation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain import hints
from paramedic.domain.timeutil import iso

OPENED = datetime(2026, 3, 1, 10, 6, 0, tzinfo=UTC)


def rollout(revision: int = 2, minutes_before: float = 4, changes: list[str] | None = None) -> dict:
    return {"ref": f"rollout/{revision}", "revision": revision, "previousRevision": revision - 1, "current": True,
            "time": iso(OPENED - timedelta(minutes=minutes_before)),
            "changes": ["image app: shop/api:1.4 → shop/api:1.5"] if changes is None else changes}


def container(pod: str = "api-x", **fields) -> dict:
    base = {"ref": f"pod/{pod}/app", "pod": pod, "container": "app", "ready": True, "restarts": 0,
            "state": "Running"}
    return {**base, **fields}


CRASH = {"ready": False, "restarts": 5, "state": "Waiting", "reason": "CrashLoopBackOff",
         "lastReason": "Error", "lastExitCode": 1}
OOM = {"ready": False, "restarts": 3, "state": "Waiting", "reason": "CrashLoopBackOff",
       "lastReason": "OOMKilled", "lastExitCode": 137, "memoryLimit": "256Mi"}


def ev(containers=(), rollouts=(), events=(), nodes=()) -> dict:
    return {"target": "Deployment/api", "containers": list(containers), "rollouts": list(rollouts),
            "events": list(events), "nodes": list(nodes)}


def test_no_evidence_no_hints():
    assert hints.rank(None, OPENED) == [] and hints.rank({}, OPENED) == []
    assert hints.rank(ev([container()]), OPENED) == []


def test_bad_rollout_names_the_image_change_and_suggests_rollback():
    [top, crash] = hints.rank(ev([container(revision=2, **CRASH)], [rollout()]), OPENED)
    assert top["rule"] == "bad-rollout" and top["suggestedAction"] == "rollback"
    assert top["summary"] == ("Deployment/api rolled out revision 2 (from 1) 4 min before the incident opened: "
                              "image app: shop/api:1.4 → shop/api:1.5; since then 1 container(s) fail: "
                              "CrashLoopBackOff, exit code 1")
    assert top["evidence"] == ["rollout/2", "pod/api-x/app"]
    assert crash["rule"] == "crash-loop"
    assert crash["summary"] == ("CrashLoopBackOff with exit code 1 in container app since the rollout at 10:02 "
                                "(revision 2): 5 restart(s) in 1 pod(s)")
    assert hints.headline(top).endswith("; suggested: rollback")


def test_a_rollout_after_the_incident_opened_is_a_suspect_too():
    [top, _] = hints.rank(ev([container(revision=2, **CRASH)], [rollout(minutes_before=-3)]), OPENED)
    assert "after the incident opened" in top["summary"] and top["suggestedAction"] == "rollback"


def test_an_old_rollout_is_not_blamed():
    out = hints.rank(ev([container(revision=2, **CRASH)], [rollout(minutes_before=180)]), OPENED)
    assert [h["rule"] for h in out] == ["crash-loop"]


def test_a_first_revision_is_no_rollout_to_undo():
    first = {**rollout(revision=1), "previousRevision": None, "changes": []}
    assert [h["rule"] for h in hints.rank(ev([container(**CRASH)], [first]), OPENED)] == ["crash-loop"]


def test_failing_pods_of_the_old_revision_do_not_blame_the_new_one():
    out = hints.rank(ev([container(revision=1, **CRASH)], [rollout()]), OPENED)
    assert [h["rule"] for h in out] == ["crash-loop"]


def test_healthy_new_revision_is_not_blamed():
    assert hints.rank(ev([container(revision=2)], [rollout()]), OPENED) == []


def test_rollout_without_image_change_lists_what_changed():
    r = rollout(changes=["command app: serve → crash", "env app: +X"])
    [top, _] = hints.rank(ev([container(revision=2, **CRASH)], [r]), OPENED)
    assert "command app: serve → crash; env app: +X" in top["summary"]


def test_oom_names_the_limit_and_counts_restarts_across_pods():
    out = hints.rank(ev([container("a", **OOM), container("b", **{**OOM, "restarts": 2})]), OPENED)
    assert out[0]["rule"] == "oom-killed" and out[0]["suggestedAction"] == "raise-memory-limit"
    assert out[0]["summary"] == ("container app OOMKilled (exit code 137), 5 restart(s) in 2 pod(s); "
                                 "memory limit 256Mi")
    assert out[0]["evidence"] == ["pod/a/app", "pod/b/app"]
    assert "crash-loop" not in [h["rule"] for h in out]  # out of memory is the explanation


def test_oom_without_limit_and_a_terminated_container():
    c = container(ready=False, restarts=0, state="Terminated", reason="OOMKilled", exitCode=137)
    [h] = hints.rank(ev([c]), OPENED)
    assert "no memory limit" in h["summary"] and "exit code 137" in h["summary"]


def test_oom_ranks_below_a_bad_rollout():
    out = hints.rank(ev([container(revision=2, **OOM)], [rollout(changes=["resources app: limits.memory 1Gi → 256Mi"])]),
                     OPENED)
    assert [h["rule"] for h in out] == ["bad-rollout", "oom-killed"]


@pytest.mark.parametrize(("reason", "rule", "action"), [
    ("ImagePullBackOff", "image-pull", "fix-image"), ("ErrImagePull", "image-pull", "fix-image"),
    ("CreateContainerConfigError", "config-error", "fix-config")])
def test_waiting_reasons(reason, rule, action):
    c = container(ready=False, state="Waiting", reason=reason, message="secret \"db\" not found")
    [h] = hints.rank(ev([c]), OPENED)
    assert (h["rule"], h["suggestedAction"]) == (rule, action)
    assert h["summary"].endswith(f"({reason}): secret \"db\" not found")


def test_image_pull_after_a_rollout_suggests_rollback_first():
    c = container(revision=2, ready=False, state="Waiting", reason="ImagePullBackOff")
    assert [h["suggestedAction"] for h in hints.rank(ev([c], [rollout()]), OPENED)] == ["rollback", "fix-image"]


def test_node_trouble():
    nodes = [{"ref": "node/a", "name": "a", "problems": ["NotReady (NodeStatusUnknown)"]},
             {"ref": "node/b", "name": "b", "problems": []}]
    [h] = hints.rank(ev([container()], nodes=nodes), OPENED)
    assert (h["rule"], h["summary"], h["evidence"]) == ("node", "node a: NotReady (NodeStatusUnknown)", ["node/a"])


def test_unschedulable_from_events_or_pods():
    e = {"ref": "event/x", "reason": "FailedScheduling", "message": "0/3 nodes are available: insufficient memory"}
    [h] = hints.rank(ev(events=[e]), OPENED)
    assert h["summary"] == "pods cannot be scheduled: 0/3 nodes are available: insufficient memory"
    assert h["suggestedAction"] == "check-capacity"
    [h] = hints.rank(ev([container(ready=False, state="Waiting", reason="Unschedulable", message="m")]), OPENED)
    assert h["rule"] == "unschedulable"


def test_not_ready_cites_the_readiness_probe_event():
    e = {"ref": "event/u", "reason": "Unhealthy", "message": "Readiness probe failed: 503"}
    [h] = hints.rank(ev([container(ready=False)], events=[e]), OPENED)
    assert h["summary"] == "container app runs but is not ready: Readiness probe failed: 503"
    assert h["evidence"] == ["pod/api-x/app", "event/u"]


def test_a_recovered_container_with_an_old_crash_is_not_a_hint():
    assert hints.rank(ev([container(restarts=4, lastReason="Error", lastExitCode=1)]), OPENED) == []


def test_at_most_max_hints_and_bounded_texts():
    long = "m" * 5000
    containers = [container(ready=False, state="Waiting", reason="ImagePullBackOff", message=long),
                  container("c", ready=False, state="Waiting", reason="CreateContainerConfigError", message=long),
                  container("d", **CRASH), container("o", **OOM), container("r", ready=False)]
    nodes = [{"ref": "node/a", "name": "a", "problems": ["MemoryPressure"]}]
    events = [{"ref": "event/s", "reason": "FailedScheduling", "message": long}]
    out = hints.rank(ev(containers, [rollout()], events, nodes), OPENED)
    assert len(out) == hints.MAX_HINTS
    assert all(len(h["summary"]) <= 500 and len(h["evidence"]) <= 8 for h in out)
    assert [h["rule"] for h in out] == ["bad-rollout", "oom-killed", "image-pull", "config-error", "crash-loop"]
