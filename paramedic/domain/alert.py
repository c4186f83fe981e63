"""One alert, normalised: the `Alert` every input becomes, its limits, severity words and identity.

Whatever sent it (Alertmanager, Grafana alerting, the generic API: `alert_parse`), an
alert is routed (`alert_routing`), named into an incident (`alert_naming`) and recorded
on it (`alert_records`) as an `Alert`. The limits here are the Incident CRD's: an alert's
text is cut to them, never refused for them. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from .text import cut as cut
from .timeutil import iso_ms

# Re-exported (defined once, in .vocabulary); DEFAULT_SEVERITY is also the severity of an
# alert whose label says nothing usable and whose service sets no default.
from .vocabulary import DEFAULT_SEVERITY as DEFAULT_SEVERITY
from .vocabulary import SEVERITIES as SEVERITIES

SEVERITY_ALIASES: dict[str, str] = {
    "critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical",
    "disaster": "critical",
    "high": "high", "page": "high", "error": "high", "err": "high", "major": "high",
    "medium": "medium", "warning": "medium", "warn": "medium", "minor": "medium", "moderate": "medium",
    "low": "low", "info": "low", "informational": "low", "notice": "low", "none": "low", "debug": "low",
}
"""Severity label values seen in the wild, mapped onto Paramedic's four levels."""

FIRING, RESOLVED = "firing", "resolved"
STATUSES = (FIRING, RESOLVED)

SOURCE_ALERTMANAGER, SOURCE_GRAFANA, SOURCE_API = "alertmanager", "grafana", "api"

GRAFANA_LINKS = ("silenceURL", "dashboardURL", "panelURL")
"""Per-alert links of Grafana's payload, kept on the alert's status.alerts entry."""
# Limits: an Incident is one etcd object (~1.5 MB), and spec.labels mirrors an
# alert's labels (the CRD allows 64 of at most 1024 characters each).
MAX_ALERTS = 1000
MAX_LABELS = 64
MAX_LABEL_NAME = 256
MAX_LABEL_VALUE = 1024
MAX_ANNOTATIONS = 64
MAX_ANNOTATION_VALUE = 8192
MAX_SERVICE = 253
MAX_MESSAGE = 8192
MAX_FINGERPRINT = 128
MAX_URL = 2048
MAX_TITLE = 256
MAX_DESCRIPTION = 8192


class PayloadError(ValueError):
    """A request body that cannot be accepted; `field` names where, `message` says why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Alert:
    """One alert, from either input, normalised."""

    fingerprint: str
    status: str                      # firing | resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None = None
    generator_url: str = ""
    source: str = SOURCE_ALERTMANAGER
    links: Mapping[str, str] = field(default_factory=dict)     # Grafana: silenceURL, dashboardURL, panelURL
    values: Mapping[str, float | None] = field(default_factory=dict)  # Grafana: query refID → value
    fired_too: bool = False          # resolved, and a firing copy of its key came in the same request (`dedupe`)

    @cached_property
    def key(self) -> str:
        """Identity of one alert occurrence: Alertmanager re-sends it with the same fingerprint and startsAt."""
        return f"{self.fingerprint}@{iso_ms(self.starts_at)}"

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str | None:
        """Mapped from labels.severity; None when absent or unknown (the service's default applies)."""
        return normalize_severity(self.labels.get("severity"))

    @property
    def namespace(self) -> str | None:
        return self.labels.get("namespace") or None

    @property
    def service_hint(self) -> str:
        """The service of an alert that matched no MonitoredService, cut to fit spec.service."""
        return cut(self.labels.get("service") or self.alertname or "unknown", MAX_SERVICE)

    @property
    def summary(self) -> str:
        return (self.annotations.get("summary") or self.annotations.get("message")
                or self.annotations.get("description") or "")

    @property
    def title(self) -> str:
        first_line = (self.annotations.get("summary") or self.annotations.get("title")
                      or self.annotations.get("message") or "").strip().splitlines()
        text = first_line[0] if first_line else ""
        if not text:
            text = self.alertname or f"alert from {self.service_hint}"
        return cut(text, MAX_TITLE)

    @property
    def description(self) -> str:
        text = self.annotations.get("description") or self.annotations.get("message") or ""
        return cut(text, MAX_DESCRIPTION)

    @property
    def runbook_url(self) -> str:
        for name in ("runbook_url", "runbookURL", "runbook"):
            value = self.annotations.get(name, "")
            if value and len(value) <= MAX_URL:
                return value
        return ""



def stored_labels(labels: Mapping[str, str], max_items: int | None = None) -> dict[str, str]:
    """The copy of an alert's labels an Incident keeps: names and values cut (and marked) to
    the CRD's limits, at most `max_items` of them (spec.labels holds 64)."""
    out: dict[str, str] = {}
    for name, value in labels.items():
        if max_items is not None and len(out) >= max_items:
            break
        key = cut(name, MAX_LABEL_NAME)
        if key not in out:
            out[key] = cut(value, MAX_LABEL_VALUE)
    return out



def normalize_severity(value: Any) -> str | None:
    """critical | high | medium | low, or None when `value` is not a known severity word."""
    if not isinstance(value, str):
        return None
    return SEVERITY_ALIASES.get(value.strip().lower())


_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def labels_fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' label-set fingerprint (FNV-1a 64 over sorted names and values), as Alertmanager shows it."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode("utf-8"), bytes([_SEPARATOR]), labels[name].encode("utf-8"), bytes([_SEPARATOR])):
            for byte in chunk:
                h ^= byte
                h = (h * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def dedupe(alerts: Iterable[Alert]) -> list[Alert]:
    """One alert per key, first-seen order; a resolved copy wins over a firing one.

    When a key both fired and resolved within the request (in either order), the resolved
    copy is kept (its endsAt is the one recorded) with `fired_too` set: the alert that fired
    must not be lost, so it opens or joins its incident as a firing alert would, and is
    recorded resolved there (`correlation.opens`). A resolution alone never opens anything.
    """
    by_key: dict[str, Alert] = {}
    for alert in alerts:
        seen = by_key.get(alert.key)
        if seen is None:
            by_key[alert.key] = alert
        elif seen.status == FIRING and alert.status == RESOLVED:
            by_key[alert.key] = replace(alert, fired_too=True)
        elif seen.status == RESOLVED and alert.status == FIRING and not seen.fired_too:
            by_key[alert.key] = replace(seen, fired_too=True)
    return list(by_key.values())
