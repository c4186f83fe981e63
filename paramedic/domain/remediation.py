"""Remediation policy: what to do next for one incident, given its service.

Inputs are the Incident and MonitoredService bodies as the API server returns
them (`status.remediation.attempts` on the incident, `status.remediation.recent`
and `inFlight` on the service). The caller writes the decision to status (keyed
by `attempt_id`) before acting, so a restarted operator resumes instead of
repeating it.

Actions are tried in order, one per attempt: attempt N runs `actions[N]`. When
the list is shorter than `maxAttempts`, the incident is exhausted once every
action was tried (list an action twice to try it twice).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from . import seal
from .lifecycle import PAUSED_ANNOTATION
from .resources import Incident, Service, mapping, sequence
from .timeutil import parse_or_none
from .vocabulary import IN_PROGRESS_RESULTS, REMEDIABLE_STATES, AttemptResult


class Kind(StrEnum):
    """What a `Decision` asks of the caller."""

    ACT = "act"
    WAIT = "wait"
    SKIP = "skip"
    EXHAUSTED = "exhausted"
    CAPPED = "capped"
    VERIFY = "verify"


ACTION_TYPES = ("restart", "rollback", "ansible", "scale")
HOUR = timedelta(hours=1)

DEFAULT_COOLDOWN_SECONDS = 120
DEFAULT_VERIFY_SECONDS = 60
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_PER_HOUR = 6


@dataclass(frozen=True)
class Decision:
    """What to do now.

    - `act`: run `action` (= actions[action_index]) as attempt `attempt_id`; `dry_run` says record only.
    - `wait`: nothing now; look again at `wait_until` (None: when something changes). A wait on a
      Running attempt carries that attempt's index, action and id so an operator that lost it can resume it.
    - `verify`: attempt `attempt_id` is done acting; check whether the service recovered.
      Once `now >= wait_until` (its verifyBy) and it has not, the attempt failed.
    - `skip`: remediation does not apply (reason says why).
    - `exhausted`: every allowed attempt was made; people take over.
    - `capped`: the service's hourly cap is reached; people take over (a slot frees at `wait_until`).
    """

    kind: Kind
    reason: str
    action_index: int | None = None
    action: dict[str, Any] | None = None
    wait_until: datetime | None = None
    attempt_id: str | None = None
    dry_run: bool = field(default=False)


def attempt_id(incident_name: str, index: int) -> str:
    """Deterministic id of an incident's attempt; also a valid label value (<= 63 chars)."""
    if index < 0:
        raise ValueError("attempt index must be 0 or more")
    suffix = f"-a{index}"
    base = incident_name + suffix
    if len(base) <= 63:
        return base
    digest = hashlib.sha256(incident_name.encode()).hexdigest()[:8]
    return f"{incident_name[:63 - len(suffix) - 9]}-{digest}{suffix}"


def action_type(action: Mapping[str, Any] | None) -> str:
    """'restart', 'rollback', 'ansible' or 'scale' (the metrics label); 'unknown' for anything else."""
    if not isinstance(action, Mapping):
        return "unknown"
    present = [t for t in ACTION_TYPES if t in action]
    return present[0] if len(present) == 1 else "unknown"


def describe_action(action: Mapping[str, Any], target: Mapping[str, Any] | None) -> str:
    """One line for timelines and e-mails: 'rollout restart Deployment/checkout'."""
    target = mapping(target)
    ref = f"{target.get('kind') or 'Deployment'}/{target.get('name') or '?'}"
    kind = action_type(action)
    if kind == "restart":
        return f"rollout restart {ref}"
    if kind == "rollback":
        return f"rollout undo {ref} (to its previous revision)"
    if kind == "scale":
        return f"scale {ref} to {mapping(action.get('scale')).get('replicas', '?')}"
    if kind == "ansible":
        return f"ansible {mapping(action.get('ansible')).get('playbook', '?')}"
    keys = ", ".join(sorted(str(k) for k in action)) if isinstance(action, Mapping) else type(action).__name__
    return f"unknown action ({keys or 'empty'})"


def prune_recent(recent: list[str] | None, now: datetime) -> list[str]:
    """Start times within the last hour, oldest first (unreadable entries cannot count, so they go)."""
    kept: list[tuple[datetime, str]] = []
    for value in recent or []:
        when = parse_or_none(value)
        if when is not None and when > now - HOUR:
            kept.append((when, value))
    kept.sort(key=lambda item: item[0])
    return [value for _, value in kept]


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _index(attempt: Mapping[str, Any], position: int) -> int:
    return _int(attempt.get("index"), position)


def _ended(attempt: Mapping[str, Any]) -> datetime | None:
    # A verified-and-failed attempt ends when its verification window closes.
    times = [t for t in (parse_or_none(attempt.get("finishedAt")), parse_or_none(attempt.get("verifyBy"))) if t]
    if times:
        return max(times)
    return parse_or_none(attempt.get("startedAt"))


def switched_off(incident: Mapping[str, Any], service: Mapping[str, Any] | None, *, enabled_globally: bool,
                 maintenance_until: datetime | None = None) -> Decision | None:
    """The first switch that keeps remediation of `incident` from acting now, as the decision it
    makes (skip, or wait out a maintenance window); None when every switch allows it: the
    incident is managed, its service exists, remediation is on globally and for the service,
    the service is not paused and not in maintenance."""
    inc = Incident(incident)
    if not inc.managed:
        return Decision(Kind.SKIP, "unmanaged incident (spec.managed: false): nothing to remediate")
    if service is None:
        return Decision(Kind.SKIP, f"MonitoredService {inc.service or '?'!r} not found")
    if not enabled_globally:
        return Decision(Kind.SKIP, "remediation is switched off globally (PARAMEDIC_REMEDIATION_ENABLED=false)")
    svc = Service(service)
    if svc.remediation.get("enabled") is False:
        return Decision(Kind.SKIP, "remediation is disabled for this service (spec.remediation.enabled: false)")
    if str(svc.annotations.get(PAUSED_ANNOTATION, "")).strip().lower() == "true":
        return Decision(Kind.SKIP, f"remediation is paused on this service (annotation {PAUSED_ANNOTATION}=true)")
    if maintenance_until is not None:
        return Decision(Kind.WAIT, f"the service is in a maintenance window until {maintenance_until.isoformat()}: "
                                   "remediation waits", wait_until=maintenance_until)
    return None


def resume_hold(incident: Mapping[str, Any], service: Mapping[str, Any] | None, attempt: Mapping[str, Any], *,
                enabled_globally: bool, maintenance_until: datetime | None = None) -> str | None:
    """Why a Running attempt that this operator lost (a restart) may not be resumed now, or None.

    Resuming acts again, so every switch is checked first (`switched_off`), then that it is
    still the same act: not a dry run now, and the service's action at the attempt's index
    and its target are what the attempt recorded when it began (`seal.action_digest`,
    `seal.target_ref`). The attempt's own seal is checked before this (the planner drops
    unsealed attempts)."""
    off = switched_off(incident, service, enabled_globally=enabled_globally, maintenance_until=maintenance_until)
    if off is not None:
        return off.reason
    svc = Service(service or {})
    policy = svc.remediation
    if policy.get("dryRun") is True:
        return "the service's remediation is a dry run now (spec.remediation.dryRun: true)"
    actions = sequence(policy.get("actions"))
    index = _index(attempt, 0)
    if not 0 <= index < len(actions):
        return f"the service has no action {index + 1} any more"
    if attempt.get("actionDigest") != seal.action_digest(actions[index]):
        return f"action {index + 1} of the service changed since the attempt began"
    if attempt.get("target") != seal.target_ref(svc.target):
        return "the service's target changed since the attempt began"
    if attempt.get("service") != svc.meta.get("name"):
        return "the incident names another service since the attempt began"
    return None


def decide(incident: Mapping[str, Any], service: Mapping[str, Any] | None, now: datetime, *,
           enabled_globally: bool, maintenance_until: datetime | None = None) -> Decision:
    """The next remediation step for `incident` (see `Decision` for what each kind asks of the caller).

    `incident`'s attempts must be the ones the operator recorded (sealed: the planner drops the others)."""
    inc = Incident(incident)
    name = inc.name
    attempts = [a for a in inc.attempts if isinstance(a, Mapping)]
    # An attempt under way is finished whatever happened meanwhile (a person or the probe may
    # have resolved the incident, the service may be paused or gone): its outcome must still
    # be recorded, so this comes before every reason to skip. Finishing never acts again:
    # resuming a lost one does, and `resume_hold` checks every switch first.
    if attempts and attempts[-1].get("result") in IN_PROGRESS_RESULTS:
        return _in_progress(attempts[-1], len(attempts) - 1, name, service, now)
    off = switched_off(incident, service, enabled_globally=enabled_globally, maintenance_until=maintenance_until)
    if off is not None or service is None:  # (switched_off skips when there is no service)
        return off or Decision(Kind.SKIP, "no MonitoredService")
    svc = Service(service)
    policy = svc.remediation
    actions = sequence(policy.get("actions"))
    if not actions:
        return Decision(Kind.SKIP, "no remediation actions configured (spec.remediation.actions is empty)")
    state = inc.state
    if state not in REMEDIABLE_STATES:
        return Decision(Kind.SKIP, f"incident is {state}: remediation only runs while it is "
                                   f"{', '.join(REMEDIABLE_STATES[:-1])} or {REMEDIABLE_STATES[-1]}")

    for position in range(len(attempts) - 1, -1, -1):
        if attempts[position].get("result") == AttemptResult.SUCCEEDED:
            index = _index(attempts[position], position)
            return Decision(Kind.SKIP, f"attempt {index + 1} already remediated this incident")

    done = len(attempts)
    max_attempts = _int(policy.get("maxAttempts"), DEFAULT_MAX_ATTEMPTS)
    allowed = min(max_attempts, len(actions))
    if done >= allowed:
        if done >= max_attempts:
            why = f"maxAttempts ({max_attempts}) reached"
        else:
            why = f"all {len(actions)} configured actions were tried"
        return Decision(Kind.EXHAUSTED, f"remediation exhausted after {done} attempt(s): {why}; over to people")

    if attempts:
        ended = _ended(attempts[-1])
        cooldown = _int(policy.get("cooldownSeconds"), DEFAULT_COOLDOWN_SECONDS)
        if ended is not None and cooldown > 0 and now < ended + timedelta(seconds=cooldown):
            until = ended + timedelta(seconds=cooldown)
            return Decision(Kind.WAIT, f"cooling down ({cooldown}s after the last attempt) until {until.isoformat()}",
                            wait_until=until)

    service_status = svc.remediation_status
    recent = prune_recent(service_status.get("recent"), now)
    max_per_hour = _int(policy.get("maxPerHour"), DEFAULT_MAX_PER_HOUR)
    if len(recent) >= max_per_hour:
        oldest = parse_or_none(recent[0])
        return Decision(Kind.CAPPED, f"hourly cap reached: {len(recent)} attempts on this service in the last hour "
                                     f"(maxPerHour {max_per_hour}); over to people",
                        wait_until=oldest + HOUR if oldest else None)

    in_flight = service_status.get("inFlight")
    if in_flight and in_flight != name:
        return Decision(Kind.WAIT, f"incident {in_flight} is remediating this service; one at a time")

    action = actions[done]
    if action_type(action) == "unknown":
        return Decision(Kind.SKIP, f"action {done + 1} is invalid: needs exactly one of restart, rollback, "
                                     "ansible or scale")
    dry_run = policy.get("dryRun") is True
    what = describe_action(action, svc.target)
    return Decision(Kind.ACT, f"attempt {done + 1} of {allowed}: {what}" + (" (dry run)" if dry_run else ""),
                    done, _copy(action), None, attempt_id(name, done), dry_run)


def _in_progress(attempt: Mapping[str, Any], position: int, name: str, service: Mapping[str, Any] | None,
                 now: datetime) -> Decision:
    """The last attempt is Running (wait for its action: `attempt_id` says which) or Verifying
    (check recovery until `wait_until`, its verifyBy)."""
    policy = Service(service or {}).remediation
    actions = sequence(policy.get("actions"))
    index = _index(attempt, position)
    action = actions[index] if 0 <= index < len(actions) else None
    att_id = attempt.get("id") or attempt_id(name, index)
    if attempt.get("result") == AttemptResult.RUNNING:
        return Decision(Kind.WAIT, f"attempt {index + 1} ({attempt.get('action') or action_type(action)}) is running",
                        index, _copy(action), None, att_id, bool(attempt.get("dryRun")))
    verify_seconds = _int(policy.get("verifySeconds"), DEFAULT_VERIFY_SECONDS)
    until = parse_or_none(attempt.get("verifyBy"))
    if until is None:
        base = parse_or_none(attempt.get("finishedAt")) or parse_or_none(attempt.get("startedAt")) or now
        until = base + timedelta(seconds=verify_seconds)
    if now >= until:
        reason = f"attempt {index + 1}: verification window ended at {until.isoformat()}"
    else:
        reason = f"attempt {index + 1}: waiting for the service to recover until {until.isoformat()}"
    return Decision(Kind.VERIFY, reason, index, _copy(action), until, att_id, bool(attempt.get("dryRun")))


def _copy(action: Any) -> dict[str, Any] | None:
    return dict(action) if isinstance(action, Mapping) else None
