"""Receiver tokens scoped to namespaces (pure: parsing and decisions, no I/O).

A token names the namespaces whose incidents it may write: its home namespace
first, then any others, or `*` for all of them (an explicit admin choice). An
alert labelled with a namespace outside the scope is recorded in the home
namespace as unmanaged and marked with the namespace it claimed: a sender can
never open, join or resolve another namespace's incidents.

A token also says whether its alerts may trigger remediation (`remediate`, off unless
the admin turns it on): a receiver token is otherwise a right to restart and scale
whatever its namespaces' MonitoredServices name, held by whoever can make an alert
carry the right labels (a tenant's PrometheusRule on a shared Prometheus, say).
Without it, alerts open unmanaged incidents: recorded and paged, never remediated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .text import cut
from .vocabulary import DNS_LABEL

ALL = "*"
"""In a token's namespaces: every namespace."""
CLAIMED_NAMESPACE_LABEL = "paramedic.dev/claimed-namespace"
"""Label of an incident whose alerts claimed a namespace they were not recorded in."""
REHOMED_TIMELINE_TYPE = "alert-rehomed"
UNREMEDIATED_TIMELINE_TYPE = "alert-unremediated"
"""Timeline entry of an incident left unmanaged because its alerts' token may not remediate."""
MAX_SERVICE = 253
"""spec.service's maxLength in the Incident CRD."""

REASON_OUT_OF_SCOPE = "out_of_scope"
"""The token may not write incidents in the alert's namespace."""
REASON_FORBIDDEN = "forbidden"
"""The receiver itself may not read or write there (e.g. a namespace Paramedic does not watch)."""
REASON_REFUSED = "refused"
"""The API server refused to record the alert where it belongs (any other 4xx)."""
REHOME_REASONS = (REASON_OUT_OF_SCOPE, REASON_FORBIDDEN, REASON_REFUSED)
TOKEN_FIELDS = ("name", "namespaces", "token", "tokenFile", "remediate")


class ScopeError(ValueError):
    """A token definition that cannot be used."""


@dataclass(frozen=True)
class Scope:
    """What one token may write: incidents in `namespaces` (all of them when `everywhere`).

    `home` receives alerts without a namespace label and those re-homed from outside the scope.
    `remediate`: its alerts may open managed incidents (remediated); off, they open unmanaged ones.
    """

    name: str
    home: str
    namespaces: frozenset[str]
    everywhere: bool = False
    remediate: bool = False

    def allows(self, namespace: str) -> bool:
        return self.everywhere or namespace in self.namespaces


@dataclass(frozen=True)
class TokenEntry:
    """One entry of the tokens file: either `token` or `token_file` is set."""

    scope: Scope
    token: str = ""
    token_file: str = ""


def scope(name: str, namespaces: Iterable[str], default_home: str, remediate: bool = False) -> Scope:
    """A scope from a list of namespaces: the first named one is home; `*` anywhere means all.

    `["*"]` alone makes `default_home` (Paramedic's namespace) the home.
    """
    names = [str(n).strip() for n in namespaces if str(n).strip()]
    if not names:
        raise ScopeError(f"token {name!r}: namespaces must name at least one namespace (or {ALL!r})")
    for ns in names:
        if ns != ALL and not DNS_LABEL.match(ns):
            raise ScopeError(f"token {name!r}: {ns!r} is not a namespace name (nor {ALL!r})")
    explicit = [ns for ns in names if ns != ALL]
    home = explicit[0] if explicit else default_home
    return Scope(name=name, home=home, namespaces=frozenset(explicit) | {home}, everywhere=ALL in names,
                 remediate=remediate)


def parse_tokens(document: Any, default_home: str) -> list[TokenEntry]:
    """The entries of a tokens file: `{tokens: [{name, namespaces, token | tokenFile, remediate}]}` or the bare list.

    `remediate` is optional and false when absent (files written before it existed keep
    working, their alerts no longer remediate); it must be a real boolean when present.
    """
    items = document.get("tokens") if isinstance(document, Mapping) else document
    if not isinstance(items, list):
        raise ScopeError("the tokens file must hold a list of tokens (or a mapping with a `tokens` list)")
    entries: list[TokenEntry] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ScopeError(f"tokens[{i}]: must be a mapping of name, namespaces and token or tokenFile")
        unknown = set(item) - set(TOKEN_FIELDS)
        if unknown:
            raise ScopeError(f"tokens[{i}]: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ScopeError(f"tokens[{i}]: name is required")
        if name in names:
            raise ScopeError(f"tokens[{i}]: name {name!r} is used twice")
        names.add(name)
        namespaces = item.get("namespaces")
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        if not isinstance(namespaces, list):
            raise ScopeError(f"token {name!r}: namespaces must be a list of namespace names (or [{ALL!r}])")
        token, token_file = item.get("token"), item.get("tokenFile")
        if (token is None) == (token_file is None):
            raise ScopeError(f"token {name!r}: set exactly one of token and tokenFile")
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ScopeError(f"token {name!r}: token must be a non-empty string")
        if token_file is not None and (not isinstance(token_file, str) or not token_file.strip()):
            raise ScopeError(f"token {name!r}: tokenFile must be a path")
        remediate = item.get("remediate", False)
        if not isinstance(remediate, bool):
            # "no" or "false" as a string would read as true: only YAML's true/false are taken.
            raise ScopeError(f"token {name!r}: remediate must be true or false, not {remediate!r}")
        entries.append(TokenEntry(scope(name, namespaces, default_home, remediate),
                                  token=(token or "").strip(), token_file=(token_file or "").strip()))
    return entries


def token_lines(text: str) -> list[str]:
    """The tokens of a plain token file: one per non-empty line (two during a rotation)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def rehomed_service(claimed_namespace: str, service: str) -> str:
    """spec.service of a re-homed incident: `<claimed namespace>/<service>`, cut (and marked) to fit.

    A `/` never appears in a MonitoredService name, so such an incident can never be
    taken for (or joined with) one of the home namespace's own services.
    """
    text = f"{claimed_namespace}/{service}"
    return cut(text, MAX_SERVICE)


MAX_NOTE_DETAIL = 300
"""Most of the API server's words kept in a re-homing note."""


def rehomed_note(claimed_namespace: str, reason: str, token: str, detail: str = "") -> str:
    why = {REASON_OUT_OF_SCOPE: f"token {token!r} may not write incidents there",
           REASON_FORBIDDEN: "Paramedic may not read or write incidents there"}.get(
        reason, "the API server refused to record them there")
    if detail:
        detail = cut(detail, MAX_NOTE_DETAIL)
        why += f" ({detail})"
    where = claimed_namespace if DNS_LABEL.match(claimed_namespace) else "(not a namespace name)"
    return f"alerts claim namespace {where}, but {why}: recorded here, unmanaged (no remediation)"


def unremediated_note(token: str) -> str:
    """Timeline note of an incident its alerts would have made managed, had their token the right."""
    return (f"token {token!r} may not trigger remediation (remediate: false): recorded and paged, "
            "unmanaged (no remediation); someone with the remediate right on the MonitoredService "
            "may set spec.managed: true")
