"""Bearer-token authentication of the receiver: which token, hence which namespaces.

Tokens come from two places, both re-read whenever they change (a mounted Secret
rotates without a restart), both optional but at least one required:

- PARAMEDIC_WEBHOOK_TOKENS_FILE: a YAML (or JSON) list of scoped tokens,
  `{name, namespaces, token | tokenFile, remediate}`; `namespaces` names the home
  namespace first, then any others, or `*` for all; `remediate: true` lets its alerts
  trigger remediation (absent: they open unmanaged incidents).
- PARAMEDIC_WEBHOOK_TOKEN_FILE (or PARAMEDIC_WEBHOOK_TOKEN): the legacy token, one
  per line (two during a rotation), scoped by PARAMEDIC_WEBHOOK_TOKEN_NAMESPACES:
  Paramedic's own namespace unless the admin names more, or `*`; its alerts
  remediate only with PARAMEDIC_WEBHOOK_TOKEN_REMEDIATE=true.

Every configured token is compared, in constant time, on every request.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

import yaml

from paramedic.domain import scope as sc
from paramedic.settings import SettingsError

log = logging.getLogger("paramedic.webhook.auth")

REALM = "paramedic"
LEGACY_NAME = "legacy"
"""The scope name of the PARAMEDIC_WEBHOOK_TOKEN(_FILE) tokens (logs and timeline notes)."""
OPEN_SCOPE_NAME = "insecure"

_Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class _Key:
    token: bytes
    scope: sc.Scope


def _stamp(path: str) -> _Stamp:
    st = os.stat(path)  # follows the ..data symlink a Secret volume swaps on rotation
    return (st.st_mtime_ns, st.st_ino, st.st_size)


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise SettingsError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"cannot read {what} {path}: not UTF-8 text") from None


class TokenSource:
    """The tokens in force; `check` maps an Authorization header to its token's Scope (None: refused)."""

    def __init__(self, token: str = "", token_file: str = "", insecure: bool = False, *,
                 token_namespaces: list[str] | None = None, tokens_file: str = "", namespace: str = "paramedic",
                 token_remediate: bool = False):
        self._static = sc.token_lines(token)
        self._file = token_file
        self._tokens_file = tokens_file
        self._insecure = insecure
        self._namespace = namespace
        try:
            self._legacy_scope = sc.scope(LEGACY_NAME, token_namespaces or [namespace], namespace, token_remediate)
        except sc.ScopeError as exc:
            raise SettingsError(f"PARAMEDIC_WEBHOOK_TOKEN_NAMESPACES: {exc}") from None
        self._open_scope = sc.Scope(OPEN_SCOPE_NAME, namespace, frozenset({namespace}), everywhere=True,
                                    remediate=token_remediate)
        self._lock = threading.Lock()
        self._stamps: dict[str, _Stamp] | None = None
        self._keys: list[_Key] = []
        self._entries: list[sc.TokenEntry] = []
        self._reload(initial=True)

    @classmethod
    def from_settings(cls, settings: Any) -> TokenSource:
        """Raises SettingsError when no token is configured and insecure mode is off."""
        source = cls(settings.webhook_token, settings.webhook_token_file, settings.webhook_insecure,
                     token_namespaces=list(settings.webhook_token_namespaces),
                     tokens_file=settings.webhook_tokens_file, namespace=settings.namespace,
                     token_remediate=bool(settings.webhook_token_remediate))
        if not source.keys() and not settings.webhook_insecure:
            raise SettingsError("the webhook needs a bearer token: set PARAMEDIC_WEBHOOK_TOKENS_FILE, "
                                "PARAMEDIC_WEBHOOK_TOKEN_FILE or PARAMEDIC_WEBHOOK_TOKEN "
                                "(or PARAMEDIC_WEBHOOK_INSECURE=1 for local use only)")
        if not source.keys():
            log.warning("no webhook token configured: every request is accepted (PARAMEDIC_WEBHOOK_INSECURE)")
        for key_scope in sorted({k.scope for k in source.keys()}, key=lambda s: s.name):
            log.info("webhook token %r: home %s, may write %s; its alerts %s", key_scope.name, key_scope.home,
                     "every namespace" if key_scope.everywhere else ", ".join(sorted(key_scope.namespaces)),
                     "may trigger remediation" if key_scope.remediate else "never trigger remediation")
        return source

    # loading ---------------------------------------------------------------------
    def _watched(self, entries: list[sc.TokenEntry]) -> list[str]:
        """The files whose change means a reload: the two settings' files and every tokenFile."""
        return [p for p in (self._file, self._tokens_file) if p] + sorted({e.token_file for e in entries
                                                                           if e.token_file})

    def _reload(self, initial: bool = False) -> None:
        """Re-read the files when any of them changed; a broken reload keeps the previous tokens."""
        stamps: dict[str, _Stamp] | None = None
        try:
            if self._stamps is not None and {p: _stamp(p) for p in self._watched(self._entries)} == self._stamps:
                return
            stamps = {p: _stamp(p) for p in self._watched(self._entries)}
            keys, entries = self._load()
            if entries != self._entries:
                stamps = {p: _stamp(p) for p in self._watched(entries)}
        except OSError as exc:  # a stat: the file is gone
            what = {self._file: "PARAMEDIC_WEBHOOK_TOKEN_FILE",
                    self._tokens_file: "PARAMEDIC_WEBHOOK_TOKENS_FILE"}.get(exc.filename, "tokenFile")
            message = f"cannot read {what} {exc.filename}: {exc.strerror}"
            if initial:
                raise SettingsError(f"webhook tokens: {message}") from None
            log.warning("webhook tokens not reloaded (%s); keeping the previous ones", message)
            return
        except (yaml.YAMLError, sc.ScopeError, SettingsError) as exc:
            message = str(exc)
            if initial:
                raise SettingsError(f"webhook tokens: {message}") from None
            log.warning("webhook tokens not reloaded (%s); keeping the previous ones", message)
            if stamps is not None:
                self._stamps = stamps  # said once per change, not on every request
            return
        if not initial and {k.token for k in keys} != {k.token for k in self._keys}:
            log.info("webhook tokens reloaded: %d token(s) accepted", len(keys))
        self._keys, self._entries, self._stamps = keys, entries, stamps

    def _load(self) -> tuple[list[_Key], list[sc.TokenEntry]]:
        keys: list[_Key] = []
        legacy = sc.token_lines(_read(self._file, "PARAMEDIC_WEBHOOK_TOKEN_FILE")) if self._file else self._static
        keys += [_Key(t.encode("utf-8"), self._legacy_scope) for t in legacy]
        entries: list[sc.TokenEntry] = []
        if self._tokens_file:
            text = _read(self._tokens_file, "PARAMEDIC_WEBHOOK_TOKENS_FILE")
            entries = sc.parse_tokens(yaml.safe_load(text) if text.strip() else [], self._namespace)
            for entry in entries:
                if entry.token_file:
                    values = sc.token_lines(_read(entry.token_file, f"tokenFile of token {entry.scope.name!r}"))
                    if not values:
                        raise sc.ScopeError(f"token {entry.scope.name!r}: {entry.token_file} is empty")
                else:
                    values = [entry.token]
                keys += [_Key(v.encode("utf-8"), entry.scope) for v in values]
        seen: dict[bytes, sc.Scope] = {}
        for key in keys:
            other = seen.setdefault(key.token, key.scope)
            if other != key.scope:
                # One secret, two scopes: which one a sender gets would be a guess. Refuse.
                raise sc.ScopeError(f"tokens {other.name!r} and {key.scope.name!r} are the same token")
        return keys, entries

    def keys(self) -> list[_Key]:
        if self._file or self._tokens_file:
            with self._lock:
                self._reload()
        return self._keys

    # checking --------------------------------------------------------------------
    @property
    def open(self) -> bool:
        """True when no token is configured and insecure mode allows that."""
        return self._insecure and not self.keys()

    def check(self, authorization: str | None) -> sc.Scope | None:
        """The scope of the token presented, None when none matches."""
        keys = self.keys()
        if not keys:
            return self._open_scope if self._insecure else None
        if not authorization:
            return None
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        # WSGI hands headers over as latin-1 text: back to the bytes that were sent.
        try:
            given = presented.strip().encode("latin-1")
        except UnicodeEncodeError:
            return None
        found: sc.Scope | None = None
        for key in keys:  # every key is compared: the time taken does not tell which one matched
            if hmac.compare_digest(given, key.token) and found is None:
                found = key.scope
        return found


def challenge(error: str = "invalid_token") -> str:
    """The WWW-Authenticate value of a 401 (RFC 6750)."""
    return f'Bearer realm="{REALM}", error="{error}"'
