"""Status merge patches that also remove what is gone.

A JSON merge patch (RFC 7396, what every status writer sends) keeps each key it does not
name: writing `{"lastProbe": {"time": t}}` over `{"lastProbe": {"time": s, "error": "status
500"}}` leaves the error behind. So a writer states what the object (or the keys it owns)
should hold, and these functions turn that into a patch that names each key to remove with
null, at every depth where both sides hold an object. Lists are values like any other: a
merge patch replaces them whole.

- `replace(old, new)`: the writer owns the whole object (an OnCallSchedule's status).
- `set_keys(old, new)`: the writer owns only the keys of `new` (the prober's part of a
  MonitoredService's status; the remediation claim); each of them is replaced whole.
- `apply(target, patch)`: what the API server does with it, for "would this change
  anything" and for tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def replace(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch turning `old` into `new`: null for each key of `old` that `new` lacks.

    Objects both hold are compared the same way, key by key; any other value of `new` is
    written as it is (a null in `new` removes that key too)."""
    patch = set_keys(old, new)
    for key in old or {}:
        if key not in new:
            patch[key] = None
    return patch


def set_keys(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch writing the keys of `new` and leaving the other keys of `old` alone.

    Each key written replaces what `old` held under it: where both are objects, with
    `replace` (nulls for what is gone, recursively)."""
    before = old or {}
    patch: dict[str, Any] = {}
    for key, value in new.items():
        prior = before.get(key)
        if isinstance(value, Mapping) and isinstance(prior, Mapping):
            patch[key] = replace(prior, value)
        else:
            patch[key] = value
    return patch


def apply(target: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> dict[str, Any]:
    """RFC 7396: `target` after the merge patch `patch` (neither is changed)."""
    result = dict(target or {})
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping):
            prior = result.get(key)
            result[key] = apply(prior if isinstance(prior, Mapping) else None, value)
        else:
            result[key] = value
    return result


def changes(target: Mapping[str, Any] | None, patch: Mapping[str, Any]) -> bool:
    """Whether writing `patch` over `target` would change it."""
    return apply(target, patch) != dict(target or {})
