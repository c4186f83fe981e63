"""The key that seals remediation attempts (`paramedic.domain.seal`), kept in a Secret.

One Secret in Paramedic's own namespace, `paramedic-remediation-seal`, holds 32 random bytes
under `key`. The operator reads it at start; when it is missing, the operator creates it
(immutable), so every replica, and every restart, shares the same key. Only the operator
may read it (a Role limited to that one Secret): whoever can read it could forge attempts.
Deleting it rotates the key: attempts sealed with the old one are no longer resumed.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from . import kube
from .domain.resources import Resource, mapping
from .domain.seal import KEY_BYTES
from .domain.timeutil import parse_or_none

log = logging.getLogger(__name__)

SECRET_NAME = "paramedic-remediation-seal"
KEY_FIELD = "key"


class SealKeyError(Exception):
    """The Secret exists but holds no usable key (the message says what to do)."""


@dataclass(frozen=True)
class SealKey:
    key: bytes
    since: datetime | None
    """The Secret's creation: when sealing began."""


def _read(secret: Mapping[str, Any], namespace: str) -> SealKey:
    where = f"Secret {namespace}/{SECRET_NAME}"
    raw = mapping(secret.get("data")).get(KEY_FIELD)
    try:
        key = base64.b64decode(raw or "", validate=True)
    except (ValueError, TypeError):
        raise SealKeyError(f"{where}: data.{KEY_FIELD} is not base64; delete the Secret and the operator "
                           "makes a new one") from None
    if len(key) < KEY_BYTES:
        raise SealKeyError(f"{where}: data.{KEY_FIELD} holds {len(key)} bytes, fewer than {KEY_BYTES}; delete the "
                           "Secret and the operator makes a new one")
    return SealKey(key, parse_or_none(Resource(secret).created))


async def load_or_create(client: kube.AsyncKubeClient, namespace: str) -> SealKey:
    """The seal key from its Secret in `namespace`, created first when there is none.

    Two replicas starting together may both create it: the API server keeps one, the other
    gets a Conflict and reads that one. Raises kube errors (not found: the namespace is
    missing; forbidden: RBAC) and SealKeyError."""
    found = await client.get_or_none(kube.SECRETS, SECRET_NAME, namespace)
    if found is None:
        body = {"metadata": {"name": SECRET_NAME, "labels": {"app.kubernetes.io/name": "paramedic",
                                                             "app.kubernetes.io/component": "operator"}},
                "type": "Opaque", "immutable": True,
                "data": {KEY_FIELD: base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}}
        try:
            found = await client.create(kube.SECRETS, body, namespace)
        except kube.Conflict:
            found = await client.get(kube.SECRETS, SECRET_NAME, namespace)
    return _read(found, namespace)


async def load_retrying(client: kube.AsyncKubeClient, namespace: str, *, first_delay: float = 1.0,
                        max_delay: float = 60.0) -> SealKey:
    """`load_or_create` until it succeeds: `first_delay` seconds after the first failure, doubling
    up to `max_delay`; each failure an ERROR that says what to fix (remediation waits meanwhile)."""

    def failed(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = ""
        if isinstance(exc, kube.NotFound):
            hint = f" (does namespace {namespace!r}, PARAMEDIC_NAMESPACE, exist?)"
        elif isinstance(exc, kube.ApiError) and exc.status == 403:
            hint = " (grant the Role paramedic-operator-seal of manifests/rbac.yaml, or install the chart)"
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.error("remediation waits: cannot load the key sealing its attempts from Secret %s/%s: %s%s; "
                  "retrying in %.0fs", namespace, SECRET_NAME, exc, hint, delay)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type((kube.ApiError, kube.Unavailable, SealKeyError)),
        wait=wait_exponential(multiplier=first_delay, max=max_delay), before_sleep=failed, reraise=True)
    loaded: SealKey = await retrying(load_or_create, client, namespace)
    return loaded
