"""Incident lifecycle: states, the effects of a state change, timeline and conditions.

The API server enforces the transition rules (CEL on the CRD); this module
computes what the operator records when it observes a change: timestamps for
the states reached, MTTA (only when someone acknowledged) and MTTR.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .resources import Incident, sequence
from .text import cut
from .timeutil import iso, iso_ms, parse_or_none

# Re-exported: the states are defined once, in .vocabulary.
from .vocabulary import ACTIVE_STATES as ACTIVE_STATES
from .vocabulary import REMEDIABLE_STATES as REMEDIABLE_STATES
from .vocabulary import STATES as STATES
from .vocabulary import State as State

# STATES: lifecycle order, state only moves forward (skipping allowed).
# ACTIVE_STATES: before resolved (mitigated included); REMEDIABLE_STATES: before mitigated.

TIMESTAMP_FIELDS: dict[str, str] = {
    State.ACKNOWLEDGED: "acknowledgedAt",
    State.INVESTIGATING: "investigatingAt",
    State.MITIGATED: "mitigatedAt",
    State.RESOLVED: "resolvedAt",
    State.CLOSED: "closedAt",
}
"""The status field recording when each state was reached (`open` is status.createdAt)."""

TIMELINE_MESSAGE_LIMIT = 2000
"""Longest timeline message kept: status must stay well under etcd's object size limit."""

CONDITION_STATUSES = ("True", "False", "Unknown")


def state_index(state: str) -> int:
    """Position of `state` in STATES; ValueError names the valid states."""
    try:
        return STATES.index(state)
    except ValueError:
        raise ValueError(f"unknown incident state {state!r}; expected one of {', '.join(STATES)}") from None


def is_forward(old: str, new: str) -> bool:
    """True when `new` comes strictly after `old` (a real move; staying put is not one)."""
    return state_index(new) > state_index(old)


def is_active(state: str) -> bool:
    """True while the incident is not yet resolved."""
    return state in ACTIVE_STATES


def timestamp_field(state: str) -> str | None:
    """The status timestamp field for `state`, None for `open` (status.createdAt covers it)."""
    state_index(state)
    return TIMESTAMP_FIELDS.get(state)


ACKNOWLEDGING_STATES: tuple[State, ...] = (State.ACKNOWLEDGED, State.INVESTIGATING)
"""States only a person takes an incident to: reaching one (skipping acknowledgement to
investigate is acknowledging) is what MTTA measures. Paramedic's own moves (remediation to
mitigated, alerts or probes to resolved) acknowledge nothing."""


def state_effects(old_state: str | None, new_state: str, status: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Status fields to set when the operator sees the state move from `old_state` to `new_state`.

    The state reached gets its timestamp (`now`), unless one is already recorded:
    re-running after a restart changes nothing. States skipped over are not stamped
    (nobody was in them), except acknowledgement when the move lands on investigating.
    MTTA counts from status.createdAt to the acknowledgement; on reaching resolved or
    closed, `unacknowledged` records whether nobody acknowledged (then no MTTA), so an
    auto-resolved incident's MTTA is not its MTTR. MTTR counts to resolution (or closing,
    if resolution was skipped). `observedState` is set to `new_state`. A move that is
    not forward yields an empty dict.
    """
    old = old_state or State.OPEN
    if not is_forward(old, new_state):
        return {}
    stamp = iso(now)
    effects: dict[str, Any] = {}
    reached = [new_state]
    if new_state == State.INVESTIGATING:
        reached.insert(0, State.ACKNOWLEDGED)
    for state in reached:
        field = TIMESTAMP_FIELDS[state]
        if not status.get(field):
            effects[field] = stamp
    merged = {**status, **effects}
    created = parse_or_none(merged.get("createdAt"))
    ack = _first_reached(merged, ACKNOWLEDGING_STATES)
    if created is not None:
        if ack is not None and "mttaSeconds" not in status:
            effects["mttaSeconds"] = _seconds(created, ack)
        res = _first_reached(merged, (State.RESOLVED, State.CLOSED))
        if res is not None and "mttrSeconds" not in status:
            effects["mttrSeconds"] = _seconds(created, res)
    if not is_active(new_state) and "unacknowledged" not in status:
        # Resolved now: known. Resolved before the field existed (now closing): read as recorded then.
        effects["unacknowledged"] = ack is None if is_active(old) else was_acknowledged(status) is False
    effects["observedState"] = new_state
    return effects


def was_acknowledged(status: Mapping[str, Any]) -> bool | None:
    """Whether someone acknowledged the incident: True, False (it reached resolution without
    that), or None (still active and unacknowledged). Objects resolved before
    `unacknowledged` existed stamped every skipped state with the resolution time: for them
    an acknowledgement at exactly that time is read as none."""
    if isinstance(status.get("unacknowledged"), bool):
        return not status["unacknowledged"]
    ack = parse_or_none(status.get(TIMESTAMP_FIELDS[State.ACKNOWLEDGED]))
    if ack is None:
        ack = parse_or_none(status.get(TIMESTAMP_FIELDS[State.INVESTIGATING]))
    resolved = _first_reached(status, (State.RESOLVED, State.CLOSED))
    if ack is None:
        return False if resolved is not None else None
    if resolved is not None and ack == resolved and status.get("mttaSeconds") == status.get("mttrSeconds"):
        return False
    return True


def _first_reached(status: Mapping[str, Any], states: tuple[str, ...]) -> datetime | None:
    """Timestamp of the earliest state (in lifecycle order) among `states` that has one."""
    for state in states:
        when = parse_or_none(status.get(TIMESTAMP_FIELDS[state]))
        if when is not None:
            return when
    return None


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, int(round((end - start).total_seconds())))


def timeline_entry(now: datetime, type: str, actor: str, message: str) -> dict[str, str]:
    """One timeline entry: `{time, type, actor, message}`, time with milliseconds."""
    return {"time": iso_ms(now), "type": type, "actor": actor, "message": cut(message, TIMELINE_MESSAGE_LIMIT)}


def append_timeline(timeline: list[dict[str, Any]] | None, entry: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """A new timeline with `entry` appended, at most `limit` entries long.

    Append-only: existing entries are never edited. An entry equal to one
    already present is not added twice (a retried write stays idempotent).
    When over the limit, the oldest entries go, except the very first one:
    it records how the incident opened, which a post-mortem always needs.
    """
    if limit < 1:
        raise ValueError("timeline limit must be at least 1")
    current = list(timeline or [])
    if entry in current:
        return current
    current.append(dict(entry))
    if len(current) <= limit:
        return current
    if limit == 1:
        return current[-1:]
    return current[:1] + current[-(limit - 1):]


def set_condition(conditions: list[dict[str, Any]] | None, type: str, status: str, reason: str, message: str,
                  now: datetime, generation: int | None = None) -> list[dict[str, Any]]:
    """A new conditions list with condition `type` set, per Kubernetes API conventions.

    `lastTransitionTime` moves only when `status` changes; reason, message and
    observedGeneration are always refreshed. Other conditions keep their order.
    """
    if status not in CONDITION_STATUSES:
        raise ValueError(f"condition status must be one of {', '.join(CONDITION_STATUSES)}, not {status!r}")
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions or []:
        if cond.get("type") != type:
            out.append(dict(cond))
            continue
        found = True
        changed = cond.get("status") != status or not cond.get("lastTransitionTime")
        out.append(_condition(type, status, reason, message,
                              iso(now) if changed else cond["lastTransitionTime"], generation))
    if not found:
        out.append(_condition(type, status, reason, message, iso(now), generation))
    return out


def _condition(type: str, status: str, reason: str, message: str, when: str, generation: int | None) -> dict[str, Any]:
    cond: dict[str, Any] = {"type": type, "status": status, "reason": reason, "message": message,
                            "lastTransitionTime": when}
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def get_condition(conditions: list[dict[str, Any]] | None, type: str) -> dict[str, Any] | None:
    """The condition of that type, or None."""
    for cond in conditions or []:
        if cond.get("type") == type:
            return cond
    return None


# Who moved an incident, and why: written with the state change, read into the timeline.
ACTOR_ANNOTATION = "paramedic.dev/actor"
REASON_ANNOTATION = "paramedic.dev/reason"
# On a MonitoredService: stop its probes and remediation.
PAUSED_ANNOTATION = "paramedic.dev/paused"


# Once written with each state change as "<state> <time>" and read as its time. It was the
# writer's word, so anyone could backdate an acknowledgement with it: no longer written nor
# read (`changed_at` takes the API server's clock instead). Old objects may still carry it.
CHANGED_AT_ANNOTATION = "paramedic.dev/state-changed-at"


def spec_patch(changes: Mapping[str, Any], actor: str, reason: str | None = None,
               at: datetime | None = None) -> dict[str, Any]:
    """A merge patch of incident spec fields, saying who made the change and why.

    `actor` must be the writer's own Kubernetes user name (a person's tools ask the API server:
    SelfSubjectReview); the admission policy refuses any other name from anyone but Paramedic's
    own ServiceAccounts; an empty one removes the annotation (the timeline then says `kubectl`).
    When the change happened is not the writer's to say: the API server records it
    (`changed_at`), so `at` is accepted for older callers and ignored."""
    del at
    annotations: dict[str, Any] = {ACTOR_ANNOTATION: actor or None, REASON_ANNOTATION: reason or None}
    return {"metadata": {"annotations": annotations}, "spec": dict(changes)}


def state_patch(state: str, actor: str, reason: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    """A merge patch moving an incident to `state`, saying who did it and why (`at` is ignored: see `spec_patch`)."""
    return spec_patch({"state": state}, actor, reason, at)


def owns_state(entry: Mapping[str, Any]) -> bool:
    """Whether a managedFields entry owns spec.state (its manager's request last set it)."""
    if entry.get("subresource"):
        return False
    fields = entry.get("fieldsV1")
    spec = fields.get("f:spec") if isinstance(fields, Mapping) else None
    return isinstance(spec, Mapping) and "f:state" in spec


def changed_at(incident: Mapping[str, Any], now: datetime) -> datetime:
    """When the incident moved to its current state, by the API server's clock.

    The API server stamps each manager's entry in metadata.managedFields with its own time
    whenever that manager's request changes fields; the entry owning spec.state is the one
    whose request set the state. So: the latest such time, kept within [creation, now] (the
    later of creationTimestamp and status.createdAt, both written by the server or Paramedic). It
    can only be late (the same manager changed something else since), never early: the
    admission policy refuses a request that moves it back. `now` when no entry says (the
    managedFields were cleared)."""
    inc = Incident(incident)
    times = [parse_or_none(e.get("time")) for e in sequence(inc.meta.get("managedFields"))
             if isinstance(e, Mapping) and owns_state(e)]
    at = max((t for t in times if t is not None), default=None)
    bounds = [parse_or_none(inc.status.get("createdAt")), parse_or_none(inc.created)]
    created = max((t for t in bounds if t is not None), default=None)
    if at is None or at > now:
        return now
    if created is not None and at < created:
        return created
    return at
