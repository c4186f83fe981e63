"""People's entries on an incident: comments and applied runbook steps (`spec.comments`,
`spec.runbookSteps`), shared by `kubectl paramedic` and the console.

Entries are appended only, each in its author's name (the admission policy
`paramedic-incident-attribution` holds every writer to that). Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .resources import Incident, Service, sequence
from .timeutil import iso

COMMENTS = "comments"
RUNBOOK_STEPS = "runbookSteps"
FIELDS = (COMMENTS, RUNBOOK_STEPS)
TEXT_MAX = 4096
NOTE_MAX = 2048
"""As the CRD's maxLength for a comment's text and a step's note."""


def runbook_view(inc: Mapping[str, Any], svc: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The service's runbook steps with their state on this incident (the last mark of each)."""
    steps = sequence(Service(svc or {}).runbook.get("steps"))
    applied = {int(a.get("step", 0)): a for a in Incident(inc).runbook_steps}
    out = []
    for n, step in enumerate(steps, 1):
        mark = applied.get(n)
        out.append({"step": n, "title": step.get("title", ""), "text": step.get("text", ""),
                    "link": step.get("link", ""), "command": step.get("command", ""),
                    "state": "applied" if mark else "pending",
                    **({"appliedBy": mark.get("author"), "appliedAt": mark.get("time"), "note": mark.get("note", "")}
                       if mark else {})})
    return out


def comment_entry(author: str, now: datetime, text: str) -> dict[str, Any]:
    text = text.strip()
    if not text:
        raise ValueError("a comment needs some text")
    if len(text) > TEXT_MAX:
        raise ValueError(f"a comment is at most {TEXT_MAX} characters")
    return {"author": author, "time": iso(now), "text": text}


def step_entry(view: list[dict[str, Any]], n: int, author: str, now: datetime, note: str = "",
               service: str = "?") -> dict[str, Any]:
    """The mark for runbook step `n` (1-based) of `view` (see `runbook_view`); ValueError when
    there is no such step or it was applied already."""
    if not 1 <= n <= len(view):
        raise ValueError(f"step {n} does not exist: MonitoredService {service} declares {len(view)} step(s)")
    step = view[n - 1]
    if step["state"] == "applied":
        raise ValueError(f"step {n} was already applied by {step['appliedBy']} at {step['appliedAt']}")
    if len(note.strip()) > NOTE_MAX:
        raise ValueError(f"a note is at most {NOTE_MAX} characters")
    entry: dict[str, Any] = {"step": n, "title": step["title"], "author": author, "time": iso(now)}
    if note.strip():
        entry["note"] = note.strip()
    return entry


def append_ops(inc: Mapping[str, Any], field: str, entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A JSON patch appending `entry` to the spec list `field` of `inc` (as read): `add …/-`
    keeps whatever others appended meanwhile, so two people writing at once both land. An
    absent list is created whole, guarded by a `test` of the resourceVersion read (JSON patch
    cannot test absence): the API server answers 422 when it moved, and the caller reads again."""
    if field not in FIELDS:
        raise ValueError(f"not an entry list: {field}")
    view = Incident(inc)
    if view.spec.get(field) is not None:
        return [{"op": "add", "path": f"/spec/{field}/-", "value": dict(entry)}]
    version = view.resource_version
    guard = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}] if version else []
    return guard + [{"op": "add", "path": f"/spec/{field}", "value": [dict(entry)]}]
