"""Appending people's entries (comments, runbook step marks) to an Incident, as its caller:
the one write path of `kubectl paramedic comment`/`step` and the console's forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import kube
from .domain import entries
from .domain.resources import Incident

ATTEMPTS = 5


class KeptChanging(Exception):
    """The incident moved under every attempt to create the list."""


def append(client: kube.KubeClient, namespace: str, name: str, field: str,
           make: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Read the incident, build the entry with `make(incident)` (ValueError: refused, as is), and
    append it with `entries.append_ops`. When the list did not exist and the guarded creation
    failed (the resourceVersion moved: 409/422), read again; any other refusal is raised."""
    for _ in range(ATTEMPTS):
        inc = client.get(kube.INCIDENTS, name, namespace)
        ops = entries.append_ops(inc, field, make(inc))
        try:
            return client.patch(kube.INCIDENTS, name, ops, namespace, content_type=kube.JSON_PATCH)
        except kube.ApiError as exc:
            if exc.status not in (409, 422) or ops[0]["op"] != "test":
                raise
            now = client.get(kube.INCIDENTS, name, namespace)
            if Incident(now).resource_version == Incident(inc).resource_version:
                raise  # not a race: the API server refused the entry itself
    raise KeptChanging(f"incident {name} kept changing; try again")
