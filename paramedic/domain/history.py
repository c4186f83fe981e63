"""Seen before: the most recent earlier incidents of the same service, with their root causes.

Pure: the caller passes the service's incidents it knows (the operator's watch-fed cache).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .evidence import cut
from .resources import Incident

MAX_SEEN = 3


def seen_before(incident: Mapping[str, Any], others: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`status.seenBefore`: up to MAX_SEEN incidents of the same service created before
    `incident`, newest first, each with its state, root cause (from its RCA) and top hint."""
    inc = Incident(incident)
    service = inc.service
    mine = inc.created_at
    if not service or mine is None:
        return []
    earlier: list[tuple[datetime, Incident]] = []
    for body in others:
        other = Incident(body)
        if other.name == inc.name or other.namespace != inc.namespace or other.service != service:
            continue
        when = other.created_at
        if when is not None and when < mine:
            earlier.append((when, other))
    earlier.sort(key=lambda item: item[0], reverse=True)
    out = []
    for when, other in earlier[:MAX_SEEN]:
        item: dict[str, Any] = {"name": other.name, "createdAt": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                "state": str(other.state), "title": cut(other.spec.get("title"), 200)}
        root = str(other.rca.get("rootCause") or "").strip()
        if root:
            item["rootCause"] = cut(" ".join(root.split()), 500)
        hints = other.hints
        if hints and isinstance(hints[0], Mapping) and hints[0].get("summary"):
            item["probableCause"] = cut(hints[0]["summary"], 500)
        out.append(item)
    return out
