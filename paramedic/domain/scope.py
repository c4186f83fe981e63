"""Receiver tokens scoped to namespaces (pure: parsing and decisions, no I/O).

A token names the namespaces whose incidents it may write: its home namespace
first, then any others, or `*` for all of them (an explicit admin choice). An
alert labelled with a namespace outside the scope is recorded in the home
namespace as unmanaged and marked with the namespace it claimed: a sender can
never open, join or resolve another namespace's incidents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .vocabulary import DNS_LABEL

ALL = "*"
"""In a token's namespaces: every namespace."""
CLAIMED_NAMESPACE_LABEL = "paramedic.dev/claimed-namespace"
"""Label of an incident whose alerts claimed a namespace they were not recorded in."""
REHOMED_TIMELINE_TYPE = "alert-rehomed"
MAX_SERVICE = 253
"""spec.service's maxLength in the Incident CRD."""

REASON_OUT_OF_SCOPE = "out_of_scope"
"""The token may not write incidents in the alert's namespace."""
REASON_FORBIDDEN = "forbidden"
"""The receiver itself may not read or write there (e.g. a namespace Paramedic does not watch)."""
REHOME_REASONS = (REASON_OUT_OF_SCOPE, REASON_FORBIDDEN)


class ScopeError(ValueError):
    """A token definition that cannot be used."""


@dataclass(frozen=True)
class Scope:
    """What one token may write: incidents in `namespaces` (all of them when `everywhere`).

    `home` receives alerts without a namespace label and those re-homed from outside the scope.
    """

    name: str
    home: str
    namespaces: frozenset[str]
    everywhere: bool = False

    def allows(self, namespace: str) -> bool:
        return self.everywhere or namespace in self.namespaces


@dataclass(frozen=True)
class TokenEntry:
    """One entry of the tokens file: either `token` or `token_file` is set."""

    scope: Scope
    token: str = ""
    token_file: str = ""


def scope(name: str, namespaces: Iterable[str], default_home: str) -> Scope:
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
    return Scope(name=name, home=home, namespaces=frozenset(explicit) | {home}, everywhere=ALL in names)


def parse_tokens(document: Any, default_home: str) -> list[TokenEntry]:
    """The entries of a tokens file: `{tokens: [{name, namespaces, token | tokenFile}]}` or the bare list."""
    items = document.get("tokens") if isinstance(document, Mapping) else document
    if not isinstance(items, list):
        raise ScopeError("the tokens file must hold a list of tokens (or a mapping with a `tokens` list)")
    entries: list[TokenEntry] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ScopeError(f"tokens[{i}]: must be a mapping of name, namespaces and token or tokenFile")
        unknown = set(item) - {"name", "namespaces", "token", "tokenFile"}
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
        entries.append(TokenEntry(scope(name, namespaces, default_home),
                                  token=(token or "").strip(), token_file=(token_file or "").strip()))
    return entries


def token_lines(text: str) -> list[str]:
    """The tokens of a plain token file: one per non-empty line (two during a rotation)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def rehomed_service(claimed_namespace: str, service: str) -> str:
    """spec.service of a re-homed incident: `<claimed namespace>/<service>`.

    A `/` never appears in a MonitoredService name, so such an incident can never be
    taken for (or joined with) one of the home namespace's own services.
    """
    return f"{claimed_namespace}/{service}"[:MAX_SERVICE]


def rehomed_note(claimed_namespace: str, reason: str, token: str) -> str:
    why = (f"token {token!r} may not write incidents there" if reason == REASON_OUT_OF_SCOPE
           else "Paramedic may not read or write incidents there")
    return (f"alerts claim namespace {claimed_namespace}, but {why}: recorded here, "
            "unmanaged (no remediation)")
