"""Delivery of notifications: SMTP, Slack incoming webhooks, generic JSON webhooks.

One `deliver` call tries each channel a few times with a short backoff and always
returns results, never raises for a delivery problem: the operator records failures
in the Incident's status and retries later (`notify_render.next_retry_at`), so a dead
mail server never blocks remediation. smtplib is blocking and runs in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
import smtplib
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from http import HTTPStatus
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, retry_if_not_exception_type, stop_after_attempt, wait_exponential

from paramedic import metrics, netguard
from paramedic.domain.notify_render import (
    CHANNELS,
    DeliveryResult,
    Notification,
    render_email,
    render_slack,
    render_webhook,
    sender_address,
)
from paramedic.domain.vocabulary import is_deliverable_email
from paramedic.settings import Settings, SettingsError

__all__ = ["DeliveryResult", "Notifier", "redact_url"]

log = logging.getLogger("paramedic.notify")


class _Permanent(Exception):
    """A failure that another try will not fix (bad credentials, rejected address, 4xx)."""


class _Refused(_Permanent):
    """The outbound rules refuse the hook's address: no later delivery round either."""


def redact_url(url: str) -> str:
    """scheme://host[:port]/… : webhook URLs carry their secret in the path or query."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{tail}"


def page_message_id(delivery_id: str, domain: str) -> str:
    """The Message-ID of a page: the same for every send of it (RFC 5322 dot-atom characters)."""
    return f"<paramedic.{re.sub(r'[^A-Za-z0-9.-]+', '-', delivery_id).strip('.-')}@{domain}>"


class Notifier:
    """Sends Notifications on the channels `Settings` configures.

    `tries`, `backoff` and `max_backoff` bound the retries within one call
    (0.5 s, 1 s, ... at most 2 s between tries).
    """

    def __init__(self, settings: Settings, *, tries: int = 3, backoff: float = 0.5, max_backoff: float = 2.0,
                 http_timeout: float = 10.0) -> None:
        self.settings = settings
        self.tries = max(1, tries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.http_timeout = http_timeout
        # Hooks are named by MonitoredServices: private ranges are refused too (netguard).
        self._rules = netguard.policy(settings, netguard.HOOK)
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Notifier:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = netguard.guarded_session(self._rules, netguard.HOOK,
                                                  timeout=aiohttp.ClientTimeout(total=self.http_timeout),
                                                  headers={"User-Agent": "paramedic-notifier"})
        return self._http

    async def deliver(self, n: Notification, channels: set[str] | None = None, slack_url: str = "",
                      webhook_url: str = "") -> list[DeliveryResult]:
        """Send `n` on `channels` (default: all of email, slack, webhook), concurrently.

        `slack_url` / `webhook_url` override the global settings (a MonitoredService's own
        hooks). A channel without configuration comes back `skipped`.
        """
        wanted = [c for c in CHANNELS if channels is None or c in channels]
        unknown = sorted(set(channels or ()) - set(CHANNELS))
        jobs: list[Awaitable[DeliveryResult]] = []
        for channel in wanted:
            if channel == "email":
                jobs.append(self._deliver_email(n))
            elif channel == "slack":
                jobs.append(self._deliver_http("slack", slack_url or self._url("slack_webhook_url"), render_slack, n))
            else:
                jobs.append(self._deliver_http("webhook", webhook_url or self._url("notify_webhook_url"),
                                               render_webhook, n))
        results = list(await asyncio.gather(*jobs))
        for channel in unknown:
            results.append(DeliveryResult(channel, [], ok=False, error=f"unknown channel {channel!r}"))
        return results

    def configured(self) -> frozenset[str]:
        """The channels configured globally right now: "email" (an SMTP host), "slack" and "webhook"
        (their URLs, values or keys of a mounted Secret). Read at each call, so a URL added to the
        Secret while the operator runs counts from its next pass. A Secret file that cannot be read
        counts as configured: the delivery then records why it failed."""
        found = {"email"} if self.settings.smtp_host else set()
        for channel, name in (("slack", "slack_webhook_url"), ("webhook", "notify_webhook_url")):
            try:
                configured = self.settings.has_secret(name)
            except SettingsError:
                configured = True
            if configured:
                found.add(channel)
        return frozenset(found)

    # --- retry loop ---------------------------------------------------------------

    async def _with_retries(self, channel: str, n: Notification, recipients: list[str],
                            attempt: Callable[[], Awaitable[None]]) -> DeliveryResult:
        # `tries` attempts, `backoff` doubling up to `max_backoff` between them; a _Permanent
        # failure ends at once. Every failed attempt is counted.
        retrying = AsyncRetrying(stop=stop_after_attempt(self.tries),
                                 wait=wait_exponential(multiplier=self.backoff, max=self.max_backoff),
                                 retry=retry_if_not_exception_type(_Permanent), reraise=True)
        tries = 0
        try:
            async for state in retrying:
                with state:
                    tries = state.retry_state.attempt_number
                    try:
                        await attempt()
                    except Exception:  # every failure but _Permanent is worth another try
                        metrics.NOTIFICATIONS_SENT.labels(channel, "failed").inc()
                        raise
        except Exception as exc:
            error = str(exc) or type(exc).__name__
            log.warning("notification %s for %s/%s failed on %s after %d tries: %s",
                        n.event, n.namespace, n.incident_name, channel, tries, error)
            return DeliveryResult(channel, recipients, ok=False, error=error, attempts=tries,
                                  refused=isinstance(exc, _Refused))
        metrics.NOTIFICATIONS_SENT.labels(channel, "sent").inc()
        log.info("notification %s for %s/%s sent by %s", n.event, n.namespace, n.incident_name, channel)
        return DeliveryResult(channel, recipients, ok=True, attempts=tries)

    def _skipped(self, channel: str, reason: str, recipients: list[str] | None = None) -> DeliveryResult:
        metrics.NOTIFICATIONS_SENT.labels(channel, "skipped").inc()
        return DeliveryResult(channel, recipients or [], ok=False, error=reason, attempts=0, skipped=True)

    # --- SMTP -----------------------------------------------------------------------

    async def _deliver_email(self, n: Notification) -> DeliveryResult:
        s = self.settings
        recipients = [r.strip() for r in n.recipients if isinstance(r, str) and is_deliverable_email(r.strip())]
        if not s.smtp_host:
            return self._skipped("email", "SMTP not configured (PARAMEDIC_SMTP_HOST)", recipients)
        if not recipients:
            return self._skipped("email", "no recipients")
        try:
            msg = render_email(n, s.smtp_from)
            # Read at each delivery: a mounted Secret that rotates is picked up without a restart.
            username = s.secret("smtp_username") if s.has_secret("smtp_username") else ""
            password = s.secret("smtp_password") if username and s.has_secret("smtp_password") else ""
        except (ValueError, SettingsError) as exc:
            metrics.NOTIFICATIONS_SENT.labels("email", "failed").inc()
            return DeliveryResult("email", recipients, ok=False, error=str(exc), attempts=1)
        # Set once: a retry resends the same message, so receiving MTAs can spot a duplicate;
        # and a page's Message-ID is its own (`delivery_id`), whichever replica sends it.
        domain = sender_address(s.smtp_from).rpartition("@")[2] or "localhost"
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = page_message_id(n.delivery_id, domain) if n.delivery_id else make_msgid(domain=domain)
        msg["X-Paramedic-Send-ID"] = make_msgid(domain=domain)  # this send (its retries resend it)
        refused: dict[str, Any] = {}

        async def attempt() -> None:
            # Socket timeouts bound each SMTP step; the overall bound covers a server that
            # answers every step just in time.
            overall = s.smtp_timeout_seconds * 4 + 1
            try:
                refused.update(await asyncio.wait_for(
                    asyncio.to_thread(self._smtp_send, msg, recipients, username, password), overall))
            except TimeoutError:
                # The thread may still finish sending; another try could mail twice.
                raise _Permanent(f"SMTP {s.smtp_host}:{s.smtp_port} did not finish within {overall:.0f} s") from None

        result = await self._with_retries("email", n, recipients, attempt)
        if result.ok and refused:
            # Some recipients refused, the others got it: report, do not resend to everyone.
            return DeliveryResult("email", [r for r in recipients if r not in refused], ok=True,
                                  error="refused: " + ", ".join(f"{r} ({code} {_text(m)})"
                                                                for r, (code, m) in refused.items()),
                                  attempts=result.attempts)
        return result

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.settings.smtp_ca_file or None
        try:
            return ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise _Permanent(f"cannot load PARAMEDIC_SMTP_CA_FILE {ca_file!r}: {_describe(exc)}") from None

    def _smtp_send(self, msg: EmailMessage, recipients: list[str], username: str, password: str) -> dict[str, Any]:
        s = self.settings
        where = f"{s.smtp_host}:{s.smtp_port}"
        context = self._tls_context() if s.smtp_security in ("tls", "starttls") else None
        try:
            if s.smtp_security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds,
                                                      context=context)
            else:
                smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)
        except ssl.SSLCertVerificationError as exc:
            raise _Permanent(f"TLS certificate of SMTP {where} not trusted: {exc.verify_message}") from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionError(f"cannot connect to SMTP {where}: {_describe(exc)}") from None
        try:
            smtp.ehlo()
            if s.smtp_security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if username:
                smtp.login(username, password)
            return smtp.send_message(msg, from_addr=sender_address(s.smtp_from), to_addrs=recipients)
        except ssl.SSLCertVerificationError as exc:
            raise _Permanent(f"TLS certificate of SMTP {where} not trusted: {exc.verify_message}") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise _Permanent(f"SMTP {where}: {_describe(exc)}") from None
        except smtplib.SMTPAuthenticationError as exc:
            # Never the password: only the server's answer.
            raise _Permanent(f"SMTP {where} refused login for {username!r}: {exc.smtp_code} "
                             f"{_text(exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = ", ".join(f"{r} ({c} {_text(m)})" for r, (c, m) in exc.recipients.items())
            if all(400 <= c < 500 for c in codes):
                raise ConnectionError(f"SMTP {where} deferred all recipients: {detail}") from None
            raise _Permanent(f"SMTP {where} refused all recipients: {detail}") from None
        except smtplib.SMTPResponseException as exc:
            message = f"SMTP {where} answered {exc.smtp_code} {_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise ConnectionError(message) from None
            raise _Permanent(message) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionError(f"SMTP {where}: {_describe(exc)}") from None
        finally:
            # A failed QUIT after the message was accepted must not turn into a resend.
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()

    # --- HTTP webhooks ------------------------------------------------------------------

    def _url(self, name: str) -> str | SettingsError:
        # Read at each delivery: a mounted Secret that rotates is picked up without a restart.
        try:
            return self.settings.secret(name) if self.settings.has_secret(name) else ""
        except SettingsError as exc:
            return exc

    async def _deliver_http(self, channel: str, url: str | SettingsError,
                            render: Callable[[Notification], dict[str, Any]], n: Notification) -> DeliveryResult:
        if isinstance(url, SettingsError):
            metrics.NOTIFICATIONS_SENT.labels(channel, "failed").inc()
            return DeliveryResult(channel, [], ok=False, error=str(url), attempts=1)
        if not url:
            return self._skipped(channel, f"{channel} webhook URL not configured")
        shown = redact_url(url)
        if not url.lower().startswith(("http://", "https://")):
            metrics.NOTIFICATIONS_SENT.labels(channel, "failed").inc()
            return DeliveryResult(channel, [], ok=False, error=f"{channel} webhook URL {shown} is not http(s)",
                                  attempts=1)
        body = render(n)

        async def attempt() -> None:
            try:
                netguard.refuse_literal(url, self._rules, netguard.HOOK)
                # One hop only: a redirect is a failure, never followed to an unchecked address.
                async with self._client().post(url, json=body, allow_redirects=False) as response:
                    code = response.status
                    await response.release()  # the body is the hook's, never copied anywhere
            except netguard.OutboundRefused as exc:
                raise _Refused(f"{channel} hook {shown} refused: {exc}") from None
            except aiohttp.ClientConnectorDNSError as exc:
                refused = netguard.refusal_in(exc)
                if refused is not None:
                    raise _Refused(f"{channel} hook {shown} refused: {refused}") from None
                # The name does not resolve (now): worth another try.
                raise ConnectionError(f"POST {shown} failed: cannot resolve the host: "
                                      f"{_describe(exc.os_error)}") from None
            except TimeoutError:
                raise ConnectionError(f"POST {shown} timed out after {self.http_timeout:g} s") from None
            except aiohttp.ClientConnectorError as exc:
                raise ConnectionError(f"POST {shown} failed: cannot connect: {_describe(exc.os_error)}") from None
            except (aiohttp.ClientError, ValueError) as exc:
                # The exception's text may quote the URL and its secret: only its type.
                raise ConnectionError(f"POST {shown} failed: {type(exc).__name__}") from None
            if 200 <= code < 300:
                return
            # The status code and its standard phrase only: the response body is the hook
            # server's text and never reaches the Incident, the Events or the logs.
            message = f"POST {shown} answered HTTP {code} {_phrase(code)}".rstrip()
            # 408/429 and 5xx are transient; other 4xx mean the hook itself is wrong.
            if code in (408, 429) or code >= 500:
                raise ConnectionError(message)
            raise _Permanent(message)

        return await self._with_retries(channel, n, list(n.recipients), attempt)


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
    return text or type(exc).__name__


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
