"""Probable causes: ranked, explainable hints over an incident's evidence.

`rank(evidence, opened_at)` applies every rule to `status.evidence` (see
`paramedic.domain.evidence`) and returns `status.hints`, most probable first. Each hint
has the rule that made it, a one-line `summary`, the `evidence` refs it rests on and a
`suggestedAction` (`vocabulary.SuggestedAction`). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .evidence import cut
from .timeutil import parse_or_none
from .vocabulary import SuggestedAction

MAX_HINTS = 5
ROLLOUT_WINDOW = timedelta(hours=1)
"""A rollout this long before the incident opened (or any time after) is a suspect."""
CRASH_REASONS = frozenset({"CrashLoopBackOff", "Error", "RunContainerError", "OOMKilled", "StartError"})
PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})

Hint = dict[str, Any]


def _containers(ev: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in ev.get("containers") or [] if isinstance(c, Mapping)]


def crashing(c: Mapping[str, Any]) -> bool:
    """Exited with an error, now or just before its current state."""
    if c.get("state") == "Waiting" and c.get("reason") in CRASH_REASONS:
        return True
    if c.get("state") == "Terminated" and (c.get("exitCode") or c.get("reason") in CRASH_REASONS):
        return True
    return bool(c.get("restarts")) and c.get("lastReason") in CRASH_REASONS and not (
        c.get("state") == "Running" and c.get("ready"))


def oom_killed(c: Mapping[str, Any]) -> bool:
    return "OOMKilled" in (c.get("reason"), c.get("lastReason"))


def failing(c: Mapping[str, Any]) -> bool:
    return crashing(c) or c.get("reason") in PULL_REASONS or c.get("reason") in CONFIG_REASONS


def exit_code(c: Mapping[str, Any]) -> int | None:
    if c.get("state") == "Terminated" and "exitCode" in c:
        return int(c["exitCode"])
    if "lastExitCode" in c:
        return int(c["lastExitCode"])
    return None


def _failure(c: Mapping[str, Any]) -> str:
    reason = c.get("reason") or c.get("lastReason") or "not ready"
    code = exit_code(c)
    return f"{reason}, exit code {code}" if code is not None and reason not in PULL_REASONS | CONFIG_REASONS else reason


def _ago(then: datetime | None, opened: datetime | None) -> str:
    if then is None or opened is None:
        return ""
    seconds = (opened - then).total_seconds()
    if seconds < 0:
        return " after the incident opened"
    minutes = int(seconds // 60)
    return f" {minutes} min before the incident opened" if minutes else f" {int(seconds)}s before the incident opened"


def _hhmm(value: Any) -> str:
    when = parse_or_none(value)
    return when.strftime("%H:%M") if when else "?"


def _current_rollout(ev: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for r in ev.get("rollouts") or []:
        if isinstance(r, Mapping) and r.get("current"):
            return r
    return None


# --- the rules ------------------------------------------------------------------------------------


def bad_rollout(ev: Mapping[str, Any], opened: datetime | None) -> Hint | None:
    """The newest revision came shortly before (or after) the incident, and its containers fail."""
    r = _current_rollout(ev)
    if r is None or not r.get("previousRevision"):
        return None
    when = parse_or_none(r.get("time"))
    if when is not None and opened is not None and when < opened - ROLLOUT_WINDOW:
        return None
    broken = [c for c in _containers(ev) if failing(c) and c.get("revision") in (None, r.get("revision"))]
    if not broken:
        return None
    changes = list(r.get("changes") or [])
    images = [c for c in changes if c.startswith("image ")]
    shown = (images + [c for c in changes if c not in images])[:3] or ["pod template changed"]
    summary = (f"{ev.get('target', 'the workload')} rolled out revision {r.get('revision')} "
               f"(from {r.get('previousRevision')}){_ago(when, opened)}: {'; '.join(shown)}; "
               f"since then {len(broken)} container(s) fail: {_failure(broken[0])}")
    return {"rule": "bad-rollout", "summary": cut(summary, 500), "suggestedAction": SuggestedAction.ROLLBACK.value,
            "evidence": [r.get("ref")] + [c.get("ref") for c in broken[:3]]}


def oom(ev: Mapping[str, Any], opened: datetime | None) -> Hint | None:
    """A container ran out of its memory limit."""
    killed = [c for c in _containers(ev) if oom_killed(c)]
    if not killed:
        return None
    first = killed[0]
    name = first.get("container")
    same = [c for c in killed if c.get("container") == name]
    restarts = sum(int(c.get("restarts") or 0) for c in same)
    limit = first.get("memoryLimit")
    summary = (f"container {name} OOMKilled (exit code {exit_code(first) or 137}), {restarts} restart(s) in "
               f"{len(same)} pod(s); memory limit {limit}" if limit else
               f"container {name} OOMKilled (exit code {exit_code(first) or 137}), {restarts} restart(s) in "
               f"{len(same)} pod(s); it has no memory limit (the node ran out)")
    return {"rule": "oom-killed", "summary": summary, "suggestedAction": SuggestedAction.RAISE_MEMORY_LIMIT.value,
            "evidence": [c.get("ref") for c in same[:3]]}


def crash_loop(ev: Mapping[str, Any], opened: datetime | None) -> Hint | None:
    """Containers exit with an error (other than out of memory)."""
    crashed = [c for c in _containers(ev) if crashing(c) and not oom_killed(c)]
    if not crashed:
        return None
    first = crashed[0]
    reason = first.get("reason") if first.get("state") == "Waiting" else first.get("lastReason") or first.get("reason")
    code = exit_code(first)
    r = _current_rollout(ev)
    since = f" since the rollout at {_hhmm(r.get('time'))} (revision {r.get('revision')})" if r else ""
    summary = (f"{reason or 'Error'}{f' with exit code {code}' if code is not None else ''} in container "
               f"{first.get('container')}{since}: {sum(int(c.get('restarts') or 0) for c in crashed)} restart(s) "
               f"in {len({c.get('pod') for c in crashed})} pod(s)")
    return {"rule": "crash-loop", "summary": summary, "suggestedAction": SuggestedAction.INSPECT_LOGS.value,
            "evidence": [c.get("ref") for c in crashed[:3]]}


def _waiting_rule(reasons: frozenset[str], rule: str, what: str,
                  action: SuggestedAction) -> Callable[[Mapping[str, Any], datetime | None], Hint | None]:
    def apply(ev: Mapping[str, Any], opened: datetime | None) -> Hint | None:
        hit = [c for c in _containers(ev) if c.get("reason") in reasons]
        if not hit:
            return None
        first = hit[0]
        message = f": {first.get('message')}" if first.get("message") else ""
        return {"rule": rule, "summary": cut(f"container {first.get('container')} {what} ({first.get('reason')})"
                                             f"{message}", 500),
                "suggestedAction": action.value, "evidence": [c.get("ref") for c in hit[:3]]}
    apply.__doc__ = f"Containers wait with {', '.join(sorted(reasons))}."
    return apply


image_pull = _waiting_rule(PULL_REASONS, "image-pull", "cannot get its image", SuggestedAction.FIX_IMAGE)
config_error = _waiting_rule(CONFIG_REASONS, "config-error", "cannot be created", SuggestedAction.FIX_CONFIG)


def node_trouble(ev: Mapping[str, Any], opened: datetime | None) -> Hint | None:
    """A node running the target's pods is not Ready or under pressure."""
    bad = [n for n in ev.get("nodes") or [] if isinstance(n, Mapping) and n.get("problems")]
    if not bad:
        return None
    summary = "; ".join(f"node {n.get('name')}: {', '.join(n.get('problems') or [])}" for n in bad[:3])
    return {"rule": "node", "summary": cut(summary, 500), "suggestedAction": SuggestedAction.CHECK_NODE.value,
            "evidence": [n.get("ref") for n in bad[:3]]}


def unschedulable(ev: Mapping[str, Any], opened: datetime | None) -> Hint | None:
    """Pods cannot be placed on any node."""
    events = [e for e in ev.get("events") or [] if isinstance(e, Mapping) and e.get("reason") == "FailedScheduling"]
    pods = [c for c in _containers(ev) if c.get("reason") == "Unschedulable"]
    if not events and not pods:
        return None
    message = (events[0].get("message") if events else pods[0].get("message")) or ""
    return {"rule": "unschedulable", "summary": cut(f"pods cannot be scheduled: {message}", 500),
            "suggestedAction": SuggestedAction.CHECK_CAPACITY.value,
            "evidence": [e.get("ref") for e in events[:2]] + [c.get("ref") for c in pods[:2]]}


def not_ready(ev: Mapping[str, Any], opened: datetime | None) -> Hint | None:
    """Containers run without crashing but are not ready (a failing readiness probe)."""
    idle = [c for c in _containers(ev) if c.get("state") == "Running" and not c.get("ready") and not crashing(c)]
    if not idle:
        return None
    probes = [e for e in ev.get("events") or [] if isinstance(e, Mapping) and e.get("reason") == "Unhealthy"]
    why = f": {probes[0].get('message')}" if probes else ""
    return {"rule": "not-ready", "summary": cut(f"container {idle[0].get('container')} runs but is not ready{why}", 500),
            "suggestedAction": SuggestedAction.INVESTIGATE.value,
            "evidence": [c.get("ref") for c in idle[:3]] + [e.get("ref") for e in probes[:1]]}


RULES: Sequence[Callable[[Mapping[str, Any], datetime | None], Hint | None]] = (
    bad_rollout, oom, image_pull, config_error, crash_loop, node_trouble, unschedulable, not_ready)
"""In order of precedence: a hint of an earlier rule ranks higher."""


def rank(evidence: Mapping[str, Any] | None, opened_at: datetime | None) -> list[Hint]:
    """`status.hints`: what every rule finds in `evidence`, most probable first."""
    if not evidence:
        return []
    out = []
    for rule in RULES:
        hint = rule(evidence, opened_at)
        if hint is not None:
            hint["evidence"] = [ref for ref in hint["evidence"] if ref][:8]
            hint["summary"] = cut(hint["summary"], 500)
            out.append(hint)
    return out[:MAX_HINTS]


def headline(hint: Mapping[str, Any]) -> str:
    """One line for timelines and notifications."""
    return f"{hint.get('summary', '')}; suggested: {hint.get('suggestedAction', SuggestedAction.INVESTIGATE)}"
