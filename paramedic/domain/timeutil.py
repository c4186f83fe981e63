"""Timestamps as Kubernetes writes them: RFC 3339, UTC, `Z` suffix."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime) -> str:
    """Second precision, as metav1.Time (what `kubectl` shows and CRD date-time accepts)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_ms(dt: datetime) -> str:
    """Millisecond precision, for timelines where ordering within a second matters."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def utcnow_iso() -> str:
    return iso_ms(utcnow())


def micro_iso(value: str) -> str:
    """metav1.MicroTime wants microseconds."""
    dt = parse(value)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(value: str) -> datetime:
    """Parse RFC 3339 (with Z or offset, with or without fractions; Alertmanager sends nanoseconds)."""
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits.
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(itertools.takewhile(str.isdigit, rest))  # the offset's digits are not fractions
        tail = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail}"
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def parse_or_none(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse(value)
    except ValueError:
        return None


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_or_none(start), parse_or_none(end)
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds())


def add_minutes(value: str, minutes: float) -> str:
    return iso(parse(value) + timedelta(minutes=minutes))
