"""The remediation state machine of one incident: screen the recorded attempts (seals), then
act, record a finished action, verify recovery, resume after a restart, or say why it waits.
The policy's next step comes from `paramedic.domain.remediation.decide`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .. import lifecycle, maintenance, remediation, seal
from .. import notify_render as nr
from ..remediation import Kind
from ..resources import mapping, sequence, text
from ..timeutil import iso, iso_ms, parse_or_none
from ..vocabulary import IN_PROGRESS_RESULTS, AttemptResult, State
from .base import Draft, Inputs, Part

REMEDIATION_ACTOR = "paramedic/remediation"
RESUMABLE_ACTIONS = ("restart", "rollback", "scale")
"""Idempotent actions (keyed by restartedAt / the attempt id / replica count): an operator that lost
one finishes it."""
NO_SEAL_KEY = ("remediation waits for the key that seals its attempts (the operator keeps it in a Secret "
               "in Paramedic's namespace; its log says why it is not loaded)")
PHASES = {Kind.SKIP: "Skipped", Kind.EXHAUSTED: "Exhausted", Kind.CAPPED: "Capped", Kind.WAIT: "Waiting"}


def remediate(inp: Inputs, status: Mapping[str, Any], resolving: bool = False) -> Part:
    """This pass's remediation step, on the status as the earlier parts left it. `resolving`: this
    pass resolves the incident (`opening.resolution`), so no attempt starts or resumes; one under
    way is still finished and recorded."""
    svc, now, state = inp.service_body, inp.now, inp.incident.state
    view_state = State.RESOLVED if resolving else state
    d = Draft(status, now, inp.settings.timeline_limit)
    rem = dict(mapping(d.status.get("remediation")))
    attempts = [dict(a) for a in sequence(rem.get("attempts")) if isinstance(a, Mapping)]
    key, uid = inp.settings.seal_key, inp.incident.uid

    def decide(kept: list[dict[str, Any]]) -> remediation.Decision:
        view = _view(inp, view_state, {**d.status, "remediation": {**rem, "attempts": kept}})
        return remediation.decide(view, svc, now, enabled_globally=inp.settings.remediation_enabled,
                                  maintenance_until=maintenance.active_until(svc, now))

    if key is None or not uid:
        # Without the key no attempt can be told from a forged one: act on none.
        if attempts or decide(attempts).kind == Kind.ACT:
            _phase(d, rem, attempts, "Waiting", NO_SEAL_KEY)
            return d.part()
    else:
        attempts = _screen(inp, d, attempts, key, uid, rem)
    decision = decide(attempts)
    # decide() puts the last attempt first when it is under way (Running: a wait naming it;
    # Verifying: verify), whatever else changed meanwhile.
    if decision.kind == Kind.WAIT and decision.attempt_id is not None:
        _running(inp, d, view_state, attempts, rem, attempts[-1])
    elif decision.kind == Kind.VERIFY:
        _verify(inp, d, state, attempts, rem, attempts[-1], decision.wait_until or now)
    elif decision.kind == Kind.ACT and svc is not None:  # decide() never acts without a service
        d.executor["acts"] = True
        _act(inp, d, attempts, rem, decision)
    else:
        _settled(inp, d, view_state, attempts, rem, decision)
    return d.part()


def _view(inp: Inputs, state: State, status: Mapping[str, Any]) -> dict[str, Any]:
    """The incident as `remediation.decide` and `resume_hold` read it: in `state`, with `status`."""
    return {**inp.body, "spec": {**inp.incident.spec, "state": state}, "status": status}


def _settled(inp: Inputs, d: Draft, state: State, attempts: list[dict[str, Any]],
             rem: dict[str, Any], decision: remediation.Decision) -> None:
    """Nothing to run or record: finish what a crash interrupted, and say why remediation waits or stopped."""
    svc = inp.service
    _finish_after_crash(d, inp, state, attempts)
    holder = text(svc.remediation_status.get("inFlight")) if svc is not None else ""
    if decision.kind == Kind.WAIT and holder and holder != inp.name:
        d.executor["orphan_holder"] = holder
    phase = PHASES[decision.kind]
    if decision.kind == Kind.SKIP and any(a.get("result") == AttemptResult.SUCCEEDED for a in attempts):
        phase = "Succeeded"
    if (rem.get("phase"), rem.get("message")) != (phase, decision.reason):
        if phase != "Succeeded":
            _phase(d, rem, attempts, phase, decision.reason)
        if decision.kind in (Kind.EXHAUSTED, Kind.CAPPED):
            d.log(f"remediation-{phase.lower()}", decision.reason)
            d.announce(nr.notification_key("escalated", f"remediation-{phase.lower()}"), "escalated",
                       decision.reason, inp.admins() + [inp.spec_assignee])
    d.wake_at(decision.wait_until)


def _phase(d: Draft, rem: dict[str, Any], attempts: list[dict[str, Any]], phase: str, message: str) -> None:
    if (rem.get("phase"), rem.get("message")) != (phase, message):
        rem.update(phase=phase, message=message)
        d.set(remediation={**rem, "attempts": attempts})


def _attempt_line(attempt: Mapping[str, Any], position: int) -> str:
    index = attempt.get("index")
    number = (index if isinstance(index, int) and not isinstance(index, bool) else position) + 1
    return (f"attempt {number} ({attempt.get('result') or 'no result'}, "
            f"{attempt.get('detail') or attempt.get('action') or 'no action'}, id {attempt.get('id') or '-'})")


def _release(inp: Inputs, d: Draft) -> None:
    if inp.service_body is not None:
        d.executor["release_claim"] = True


def _screen(inp: Inputs, d: Draft, attempts: list[dict[str, Any]], key: bytes, uid: str,
            rem: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempts the operator recorded itself (their seal verifies); the others are dropped
    from status, and the timeline says so: nothing acts on them. Unsealed attempts of an
    incident created before sealing began (`sealed_since`) stay as history, but one still
    under way is over: never resumed, never verified."""
    now = inp.now
    created = parse_or_none(inp.incident.created)
    since = inp.settings.sealed_since
    legacy = since is not None and created is not None and created < since
    kept: list[dict[str, Any]] = []
    changed = False
    for position, attempt in enumerate(attempts):
        if seal.verify(key, uid, attempt):
            kept.append(attempt)
        elif legacy:
            kept.append(attempt)
            if attempt.get("result") in IN_PROGRESS_RESULTS:
                changed = True
                d.log("remediation-failed",
                      f"{_attempt_line(attempt, position)} carries no seal of Paramedic's: it was recorded "
                      "before Paramedic sealed its attempts, or not by Paramedic; not resumed, not verified")
                attempt.update(result=AttemptResult.INTERRUPTED, finishedAt=attempt.get("finishedAt") or iso(now),
                               message="unsealed (recorded before Paramedic sealed its attempts, or not by "
                                       "Paramedic): not resumed")
                _release(inp, d)
        else:
            changed = True
            d.log("remediation-ignored",
                  f"ignored {_attempt_line(attempt, position)} found in status: Paramedic did not record it "
                  "(its seal is missing or does not verify), so nothing acts on it; removed. Only Paramedic "
                  "writes Incident status (its admission policy refuses anyone else)")
            action = attempt.get("action")
            d.count("remediations", action if action in remediation.ACTION_TYPES else "unknown", "ignored")
    if changed:
        rem["attempts"] = kept
        d.set(remediation={**rem, "attempts": kept})
    return kept


def claim_counted(svc_status: Mapping[str, Any], name: str, recent: Sequence[str],
                  earlier: Sequence[Mapping[str, Any]]) -> bool:
    """Whether this attempt's claim is already in the service's hourly count: a claim repeated
    after a failed status write or a crash. The service still naming this incident is not
    enough: the release of its previous attempt may not have landed yet, and that attempt's
    claim is not this one's (counting it once would let the hourly cap be overrun)."""
    if svc_status.get("inFlight") != name:
        return False
    if not earlier:
        return bool(recent)
    since = parse_or_none(earlier[-1].get("startedAt"))
    return since is None or any((t := parse_or_none(r)) is not None and t > since for r in recent)


def _act(inp: Inputs, d: Draft, attempts: list[dict[str, Any]], rem: dict[str, Any],
         decision: remediation.Decision) -> None:
    now, svc = inp.now, inp.service
    assert svc is not None  # noqa: S101 - the caller acts only with a service
    what = remediation.describe_action(decision.action or {}, svc.target)
    index = decision.action_index or 0
    attempt: dict[str, Any] = {
        "id": decision.attempt_id, "index": index, "action": remediation.action_type(decision.action),
        "detail": what, "dryRun": decision.dry_run,
        "service": svc.meta.get("name"), "target": seal.target_ref(svc.target),
        "actionDigest": seal.action_digest(decision.action),
        "startedAt": iso(now), "restartedAt": iso_ms(now)}  # two attempts in one second differ
    # Sealed: only an attempt carrying the operator's seal is ever resumed or verified.
    attempt = seal.sealed(inp.settings.seal_key or b"", inp.incident.uid, attempt)
    if decision.dry_run:
        attempt.update(result=AttemptResult.DRY_RUN, finishedAt=iso(now), message=f"dry run: would {what}")
        d.count("remediations", attempt["action"], "dry_run")
        d.log("remediation-dry-run", f"attempt {index + 1}: would {what} (dryRun)")
    else:
        attempt["result"] = AttemptResult.RUNNING
        d.log("remediation-started", f"attempt {index + 1}: {what}")
    attempts.append(attempt)
    rem.update(phase="Running" if not decision.dry_run else "DryRun", message=decision.reason, attempts=attempts)
    d.set(remediation=rem)
    if decision.dry_run:
        return
    # Claim the service (hourly cap, one at a time) before acting.
    claimed = svc.remediation_status
    recent = remediation.prune_recent(claimed.get("recent"), now)
    if not claim_counted(claimed, inp.name, recent, attempts[:-1]):
        recent.append(iso(now))
    d.executor.update(claim={"inFlight": inp.name, "recent": recent}, start_attempt=attempt)


def _mitigated(d: Draft, reason: str) -> None:
    d.executor.update(spec={"state": State.MITIGATED}, spec_by=(REMEDIATION_ACTOR, reason))


def _finish_after_crash(d: Draft, inp: Inputs, state: State, attempts: list[dict[str, Any]]) -> None:
    """What follows an attempt's end in status (the move to mitigated, the release of the
    service) is written after it: an operator killed in between lost it. Redo it."""
    last = attempts[-1] if attempts else None
    if last is not None and last.get("result") == AttemptResult.SUCCEEDED \
            and state in lifecycle.REMEDIABLE_STATES:
        _mitigated(d, text(last.get("message"), "remediation succeeded"))
    svc = inp.service
    if svc is not None and svc.remediation_status.get("inFlight") == inp.name:
        _release(inp, d)


def _running(inp: Inputs, d: Draft, state: State, attempts: list[dict[str, Any]], rem: dict[str, Any],
             attempt: dict[str, Any]) -> None:
    now, svc = inp.now, inp.service_body
    att_id = str(attempt.get("id"))
    if att_id in inp.effects.running:
        return
    outcome: dict[str, Any]
    if att_id not in inp.effects.attempt_results:
        # Nothing in memory: the operator restarted mid-attempt.
        hold = None
        if attempt.get("action") in RESUMABLE_ACTIONS and svc is not None:
            # Resuming acts again: only if every switch still allows it, and it is the same act.
            hold = remediation.resume_hold(_view(inp, state, d.status), svc, attempt,
                                           enabled_globally=inp.settings.remediation_enabled,
                                           maintenance_until=maintenance.active_until(svc, now))
            if hold is None:
                # Idempotent: finishing it cannot restart twice.
                d.log("remediation-resumed", f"resuming attempt {attempt.get('index', 0) + 1} after a restart")
                d.executor["start_attempt"] = attempt
                return
        outcome = {"result": AttemptResult.INTERRUPTED,
                   "message": "the operator restarted during the run; "
                              + (f"not resumed: {hold}" if hold else "not repeated")}
    else:
        found = inp.effects.attempt_results[att_id]
        d.executor["taken_attempts"] = (att_id,)
        if isinstance(found, BaseException):
            outcome = {"result": AttemptResult.FAILED, "message": f"{found.__class__.__name__}: {found}"}
        else:
            outcome = dict(found)
    attempt.update(outcome)
    attempt["finishedAt"] = attempt.get("finishedAt") or iso(now)
    action = attempt.get("action", "unknown")
    started = parse_or_none(attempt.get("startedAt")) or now
    d.count("remediation_duration", action, value=max(0.0, (now - started).total_seconds()))
    idx = attempt.get("index", 0) + 1
    if attempt["result"] == AttemptResult.VERIFYING:
        policy = inp.service.remediation if inp.service is not None else {}
        verify = int(policy.get("verifySeconds", remediation.DEFAULT_VERIFY_SECONDS))
        attempt["verifyBy"] = iso(now + timedelta(seconds=verify))
        d.log("remediation-acted", f"attempt {idx}: {attempt.get('message', 'done')}; verifying recovery")
        d.wake_at(now + timedelta(seconds=verify))
        rem["phase"] = "Verifying"
    else:
        d.count("remediations", action, str(attempt["result"]).lower())
        d.log("remediation-failed", f"attempt {idx} {str(attempt['result']).lower()}: {attempt.get('message', '')}")
        rem["phase"] = "Failed"
        _release(inp, d)
        _announce_result(inp, d, attempt)
        d.wake_at(now)  # the next decision (cooldown) comes from decide()
    rem["attempts"] = attempts
    d.set(remediation=rem)


def _verify(inp: Inputs, d: Draft, state: State, attempts: list[dict[str, Any]], rem: dict[str, Any],
            attempt: dict[str, Any], verify_by: datetime) -> None:
    now = inp.now
    recovered, how = _recovered(inp, state, attempt)
    idx = attempt.get("index", 0) + 1
    if recovered:
        attempt.update(result=AttemptResult.SUCCEEDED, message=how)
        rem["phase"] = "Succeeded"
        d.count("remediations", attempt.get("action", "unknown"), "succeeded")
        d.log("remediation-succeeded", f"attempt {idx} worked: {how}")
        if state in lifecycle.REMEDIABLE_STATES:
            _mitigated(d, how)
        if not d.status.get("mitigatedAt"):
            # Remediation mitigated it, even when the incident resolved in the meantime (the
            # probe saw the service healthy first) or resolves at once: say when.
            d.set(mitigatedAt=d.status.get("resolvedAt") or iso(now))
        _release(inp, d)
        _announce_result(inp, d, attempt)
    elif now >= verify_by:
        attempt.update(result=AttemptResult.FAILED,
                       message=f"{attempt.get('message', 'acted')}, but the service did not "
                               f"recover before {iso(verify_by)}")
        rem["phase"] = "Failed"
        d.count("remediations", attempt.get("action", "unknown"), "failed")
        d.log("remediation-failed", f"attempt {idx}: the service did not recover in time")
        _release(inp, d)
        _announce_result(inp, d, attempt)
        d.wake_at(now)
    else:
        d.wake_at(verify_by)
        return
    rem["attempts"] = attempts
    d.set(remediation=rem)


def _recovered(inp: Inputs, state: State, attempt: Mapping[str, Any]) -> tuple[bool, str]:
    if not lifecycle.is_active(state):
        return True, f"incident is {state}"
    alerts = inp.incident.alerts
    if inp.service is not None and inp.service.probe:
        health, last = inp.effects.probe or ("Unknown", "")
        after = parse_or_none(attempt.get("finishedAt"))
        probed = parse_or_none(last)
        if health == "Healthy" and (after is None or (probed is not None and probed >= after)):
            return True, "the probe is healthy again"
        return False, ""
    if alerts:
        if all(mapping(a).get("status") == "resolved" for a in alerts):
            return True, "all alerts resolved"
        return False, ""
    return True, "the rollout finished (no probe or alerts to confirm)"


def _announce_result(inp: Inputs, d: Draft, attempt: Mapping[str, Any]) -> None:
    d.announce(nr.notification_key("remediation", attempt.get("id", "")), "remediation",
               f"{attempt.get('detail', attempt.get('action'))}: {attempt.get('result')} "
               f"— {attempt.get('message', '')}",
               inp.recipients("remediation", inp.spec_assignee))
