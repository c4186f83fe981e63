"""Bearer-token authentication of the receiver.

The token comes from PARAMEDIC_WEBHOOK_TOKEN or, better, PARAMEDIC_WEBHOOK_TOKEN_FILE
(a mounted Secret): the file is re-read whenever it changes, so rotating the
Secret needs no restart. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from typing import Any

from paramedic.settings import SettingsError

log = logging.getLogger("paramedic.webhook.auth")

REALM = "paramedic"


class TokenSource:
    """The current token; `check` validates an Authorization header against it."""

    def __init__(self, token: str = "", token_file: str = "", insecure: bool = False):
        self._static = token.strip()
        self._file = token_file
        self._insecure = insecure
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._from_file = ""
        if self._file:
            self._reload(initial=True)

    @classmethod
    def from_settings(cls, settings: Any) -> TokenSource:
        """Raises SettingsError when no token is configured and insecure mode is off."""
        source = cls(settings.webhook_token, settings.webhook_token_file, settings.webhook_insecure)
        if not source.current() and not settings.webhook_insecure:
            raise SettingsError("the webhook needs a bearer token: set PARAMEDIC_WEBHOOK_TOKEN_FILE or "
                                "PARAMEDIC_WEBHOOK_TOKEN (or PARAMEDIC_WEBHOOK_INSECURE=1 for local use only)")
        if not source.current():
            log.warning("no webhook token configured: every request is accepted (PARAMEDIC_WEBHOOK_INSECURE)")
        return source

    def _reload(self, initial: bool = False) -> None:
        try:
            st = os.stat(self._file)  # follows the ..data symlink a Secret volume swaps on rotation
        except OSError as exc:
            if initial:
                raise SettingsError(f"cannot read PARAMEDIC_WEBHOOK_TOKEN_FILE {self._file}: {exc.strerror}") from exc
            log.warning("token file %s unreadable (%s); keeping the previous token", self._file, exc.strerror)
            return
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp == self._stamp:
            return
        try:
            with open(self._file, encoding="utf-8") as fh:
                value = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            if initial:
                raise SettingsError(f"cannot read PARAMEDIC_WEBHOOK_TOKEN_FILE {self._file}: {exc}") from exc
            log.warning("token file %s unreadable (%s); keeping the previous token", self._file, exc)
            return
        if not initial and value != self._from_file:
            log.info("webhook token reloaded from %s", self._file)
        self._from_file = value
        self._stamp = stamp

    def current(self) -> str:
        if self._file:
            with self._lock:
                self._reload()
            return self._from_file
        return self._static

    @property
    def open(self) -> bool:
        """True when no token is configured and insecure mode allows that."""
        return self._insecure and not self.current()

    def check(self, authorization: str | None) -> bool:
        token = self.current()
        if not token:
            return self._insecure
        if not authorization:
            return False
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        # WSGI hands headers over as latin-1 text: back to the bytes that were sent.
        try:
            given = presented.strip().encode("latin-1")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(given, token.encode("utf-8"))


def challenge(error: str = "invalid_token") -> str:
    """The WWW-Authenticate value of a 401 (RFC 6750)."""
    return f'Bearer realm="{REALM}", error="{error}"'
