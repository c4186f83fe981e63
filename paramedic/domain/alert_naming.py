"""Incident names and reads for correlation: alerts of one service, severity and window meet on one name.

`incident_name` is deterministic (`<service>-<severity>-<window>[-N]`), so concurrent
and repeated posts of one window find the same object; the field selectors find a
service's (active) incidents through the CRD's selectableFields, escaped so that an
alert's label can never add a requirement of its own.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from .alert import SEVERITIES


def correlation_bucket(starts_at: datetime, window_seconds: int) -> int:
    """Which correlation window an alert started in."""
    if window_seconds < 1:
        raise ValueError("correlation window must be at least 1 second")
    return int(starts_at.timestamp()) // window_seconds


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_INVALID = re.compile(r"[^a-z0-9-]+")
MAX_SERVICE_IN_NAME = 100
"""Long service names are cut and hashed: names stay readable and leave room for generateName suffixes."""


def _base36(n: int) -> str:
    if n <= 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_B36[r])
    return "".join(reversed(out))


def name_slug(service: str) -> str:
    """A DNS-1123 label for `service`; a hash keeps distinct services distinct when it had to change."""
    slug = _INVALID.sub("-", service.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)
    if slug == service and len(slug) <= MAX_SERVICE_IN_NAME:
        return slug
    digest = hashlib.sha256(service.encode("utf-8")).hexdigest()[:8]
    head = slug[: MAX_SERVICE_IN_NAME - 9].strip("-")
    return f"{head}-{digest}" if head else f"svc-{digest}"


def incident_name(service: str, severity: str, starts_at: datetime, window_seconds: int, attempt: int = 1) -> str:
    """`<service>-<severity>-<bucket>[-N]`: alerts of one window get one name, so re-sends find it.

    `attempt` > 1 gives the successors used when the window's incident is
    already resolved and a new alert of that window arrives.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}")
    name = f"{name_slug(service)}-{severity}-{_base36(correlation_bucket(starts_at, window_seconds))}"
    return name if attempt <= 1 else f"{name}-{attempt}"


def _escape_field_value(value: str) -> str:
    # As k8s.io/apimachinery/pkg/fields.EscapeValue.
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def service_field_selector(service: str) -> str:
    """Field selector for every incident of a service; the value is escaped, so a `,` or `=`
    in an alert's `service` label can never add a requirement of its own."""
    return f"spec.service={_escape_field_value(service)}"


def active_field_selector(service: str, severity: str) -> str:
    """Field selector for the active incidents of a service and severity (CRD selectableFields)."""
    return (f"spec.service={_escape_field_value(service)},spec.severity={_escape_field_value(severity)},"
            "spec.state!=resolved,spec.state!=closed")

