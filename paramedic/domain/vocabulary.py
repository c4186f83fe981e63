"""Paramedic's vocabulary: the one definition of each set of names that crosses modules.

String-valued enums: a member equals its value (`State.OPEN == "open"`), so CR bodies
read from the API server compare with them directly and they serialise as plain strings.
"""

from __future__ import annotations

import re
from enum import StrEnum


class State(StrEnum):
    """An incident's state (Incident `spec.state`), in lifecycle order: it only moves forward."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


STATES: tuple[State, ...] = tuple(State)
"""Lifecycle order."""

ACTIVE_STATES: tuple[State, ...] = STATES[: STATES.index(State.RESOLVED)]
"""States in which an incident still needs people: everything before resolved (mitigated
included: the symptom is gone, the cause is not yet known to be fixed)."""

REMEDIABLE_STATES: tuple[State, ...] = STATES[: STATES.index(State.MITIGATED)]
"""The active states in which automatic remediation runs: before mitigated, which is what a
successful remediation moves the incident to (a mitigated incident is not remediated again)."""


class Severity(StrEnum):
    """An incident's severity (Incident `spec.severity`), most severe first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


SEVERITIES: tuple[Severity, ...] = tuple(Severity)
DEFAULT_SEVERITY = Severity.HIGH
"""Severity of an incident or alert that says nothing usable."""


class AttemptResult(StrEnum):
    """The result of one remediation attempt (Incident `status.remediation.attempts[].result`)."""

    RUNNING = "Running"          # the action is under way
    VERIFYING = "Verifying"      # the action worked; recovery is being confirmed
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    INTERRUPTED = "Interrupted"  # the operator restarted during a playbook run, not repeated
    DRY_RUN = "DryRun"


IN_PROGRESS_RESULTS: tuple[AttemptResult, ...] = (AttemptResult.RUNNING, AttemptResult.VERIFYING)
ENDED_UNSUCCESSFULLY: tuple[AttemptResult, ...] = (AttemptResult.FAILED, AttemptResult.TIMED_OUT,
                                                   AttemptResult.INTERRUPTED)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
"""An RFC 1123 label: a namespace's name."""

EMAIL_MAX = 254
"""The longest e-mail address (RFC 5321's path limit; the CRDs' `maxLength`)."""

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
"""An e-mail address as people write one into an Incident, a MonitoredService or an
OnCallSchedule (assignee, admins, on-call people): the pattern the CRDs, their CEL rule and the
chart's values schema carry (held equal by tests/unit/test_vocabulary_email.py)."""

_DNS_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
DELIVERABLE_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@" + _DNS_NAME + "$")
"""The addresses Paramedic mails to: a plain ASCII `local@domain` (no display name, no quoting),
as SMTP envelopes need; narrower than EMAIL, so an address the CRDs took may still be skipped."""


def is_email(value: object) -> bool:
    """`value` is an e-mail address as the CRDs accept one (EMAIL, at most EMAIL_MAX long)."""
    return isinstance(value, str) and len(value) <= EMAIL_MAX and bool(EMAIL.match(value))


def is_deliverable_email(value: object) -> bool:
    """`value` is an address Paramedic mails to (DELIVERABLE_EMAIL, at most EMAIL_MAX long)."""
    return isinstance(value, str) and len(value) <= EMAIL_MAX and bool(DELIVERABLE_EMAIL.match(value))


class AddressClass(StrEnum):
    """What an outbound destination address is (`paramedic.domain.outbound.classify`); also the
    reason label of `paramedic_outbound_refused_total`."""

    METADATA = "metadata"        # a cloud metadata endpoint: hands out credentials
    LOOPBACK = "loopback"
    LINK_LOCAL = "link-local"
    UNSPECIFIED = "unspecified"  # 0.0.0.0/8, ::  (Linux connects them to the local host)
    MULTICAST = "multicast"
    RESERVED = "reserved"        # documentation, benchmarking, future use, broadcast, malformed
    PRIVATE = "private"          # RFC 1918, CGNAT 100.64/10, ULA fc00::/7: cluster networks live here
    PUBLIC = "public"


class SuggestedAction(StrEnum):
    """What a probable-cause hint suggests (Incident `status.hints[].suggestedAction`).

    `rollback` is also a remediation action Paramedic can run; the others are for people."""

    ROLLBACK = "rollback"
    RAISE_MEMORY_LIMIT = "raise-memory-limit"
    FIX_IMAGE = "fix-image"
    FIX_CONFIG = "fix-config"
    INSPECT_LOGS = "inspect-logs"
    CHECK_NODE = "check-node"
    CHECK_CAPACITY = "check-capacity"
    INVESTIGATE = "investigate"


SUGGESTED_ACTIONS: tuple[SuggestedAction, ...] = tuple(SuggestedAction)
