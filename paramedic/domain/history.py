"""Seen before: the most recent earlier incidents of the same service, with their root causes.

Pure: the caller passes the service's incidents it knows (the operator's watch-fed cache).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .evidence import cut
from .timeutil import parse_or_none

MAX_SEEN = 3


def _created(inc: Mapping[str, Any]) -> datetime | None:
    return parse_or_none((inc.get("status") or {}).get("createdAt")) or parse_or_none(
        (inc.get("metadata") or {}).get("creationTimestamp"))


def seen_before(incident: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`status.seenBefore`: up to MAX_SEEN incidents of the same service created before
    `incident`, newest first, each with its state, root cause (from its RCA) and top hint."""
    meta = incident.get("metadata") or {}
    service = (incident.get("spec") or {}).get("service")
    mine = _created(incident)
    if not service or mine is None:
        return []
    earlier = []
    for other in others:
        o_meta = other.get("metadata") or {}
        if o_meta.get("name") == meta.get("name") or o_meta.get("namespace") != meta.get("namespace"):
            continue
        if (other.get("spec") or {}).get("service") != service:
            continue
        when = _created(other)
        if when is not None and when < mine:
            earlier.append((when, other))
    earlier.sort(key=lambda item: item[0], reverse=True)
    out = []
    for when, other in earlier[:MAX_SEEN]:
        spec, status = other.get("spec") or {}, other.get("status") or {}
        item: dict[str, Any] = {"name": str((other.get("metadata") or {}).get("name", "")),
                                "createdAt": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                "state": str(spec.get("state") or "open"), "title": cut(spec.get("title"), 200)}
        root = ((spec.get("rca") or {}).get("rootCause") or "").strip()
        if root:
            item["rootCause"] = cut(" ".join(root.split()), 500)
        hints = status.get("hints") or []
        if hints and isinstance(hints[0], Mapping) and hints[0].get("summary"):
            item["probableCause"] = cut(hints[0]["summary"], 500)
        out.append(item)
    return out
