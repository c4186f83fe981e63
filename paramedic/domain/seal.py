"""The seal on remediation attempts: proof that the operator itself recorded an attempt.

Anyone who may write an Incident's status could otherwise write a `Running` attempt and
have the operator "resume" it. So the operator seals each attempt it records: an
HMAC-SHA256, with a key only it can read (a Secret in Paramedic's namespace, kept by
`paramedic.seal_io`), over what identifies the attempt and what it does: the incident's
uid, the attempt's id and index, the service, the action's type and a digest of the action
as configured, the target, the dry-run flag and the start time. The result, message and
times written later are not sealed: they change as the attempt runs, and deciding nothing.

The operator acts only on attempts whose seal verifies (`verify`): it resumes or verifies
nothing else, and drops such attempts from status, saying so in the timeline. The key is
passed in; this module does no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from .resources import mapping

VERSION = "v1"
KEY_BYTES = 32
"""Length of a new key (random bytes); shorter keys are refused."""

SEALED_FIELDS = ("id", "index", "service", "action", "actionDigest", "target", "dryRun", "startedAt",
                 "restartedAt")
"""The attempt's fields the seal covers (with the incident's uid)."""


def action_digest(action: Mapping[str, Any] | None) -> str:
    """A digest of one configured action (`spec.remediation.actions[i]`), key order ignored."""
    text = json.dumps(dict(action) if isinstance(action, Mapping) else None, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def target_ref(target: Mapping[str, Any] | None) -> str:
    """`KIND/NAME` of a service's target (Deployment by default)."""
    target = mapping(target)
    return f"{target.get('kind') or 'Deployment'}/{target.get('name') or ''}"


def _message(incident_uid: str, attempt: Mapping[str, Any]) -> bytes:
    body = {"uid": incident_uid, **{name: attempt.get(name) for name in SEALED_FIELDS}}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) < KEY_BYTES:
        raise ValueError(f"a seal key is at least {KEY_BYTES} bytes")


def seal(key: bytes, incident_uid: str, attempt: Mapping[str, Any]) -> str:
    """The seal of `attempt` (its SEALED_FIELDS) on the incident with uid `incident_uid`."""
    _check_key(key)
    if not incident_uid:
        raise ValueError("an attempt is sealed to its incident's uid, which is empty")
    mac = hmac.new(key, _message(incident_uid, attempt), hashlib.sha256).digest()
    return f"{VERSION}:" + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def sealed(key: bytes, incident_uid: str, attempt: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `attempt` carrying its seal."""
    return {**attempt, "seal": seal(key, incident_uid, attempt)}


def verify(key: bytes, incident_uid: str, attempt: Mapping[str, Any]) -> bool:
    """Whether `attempt` carries a valid seal made with `key` for this incident."""
    given = attempt.get("seal")
    if not isinstance(given, str) or not given.startswith(f"{VERSION}:") or not incident_uid:
        return False
    return hmac.compare_digest(given, seal(key, incident_uid, attempt))
