"""The outbound address rules (`paramedic.domain.outbound`) applied where connections are made.

Probe URLs and notification hook URLs come from MonitoredServices, which people with
namespace rights write. Both clients are aiohttp sessions built by `guarded_session`:
- its resolver checks every address a name resolves to, and the connector connects to
  exactly those addresses, so the address checked is the address connected to (a DNS
  answer that changes between a check and a connect cannot slip through);
- an IP literal in any form never reaches a resolver, so `refuse_literal` checks the URL
  host before each request (aiohttp connects to what it reads as an IP directly);
- redirects are never followed and environment proxies (HTTP_PROXY...) are ignored, so
  the only hop is the one checked.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import aiohttp.abc
from yarl import URL

from paramedic import metrics
from paramedic.domain.outbound import Network, OutboundPolicy, Refusal, parse_cidrs
from paramedic.settings import Settings, SettingsError

PROBE = "probe"
HOOK = "hook"


class OutboundRefused(OSError):
    """A destination the outbound rules refuse; nothing was sent."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def policy(settings: Settings, kind: str) -> OutboundPolicy:
    """The rules for `kind` (PROBE or HOOK) from PARAMEDIC_OUTBOUND_ALLOW_CIDRS, the kind's own
    list (PARAMEDIC_PROBE_ALLOW_CIDRS or PARAMEDIC_HOOK_ALLOW_CIDRS) and
    PARAMEDIC_PROBE_DENY_PRIVATE; SettingsError for an entry that is no CIDR."""
    own = ("PARAMEDIC_PROBE_ALLOW_CIDRS", settings.probe_allow_cidrs) if kind == PROBE \
        else ("PARAMEDIC_HOOK_ALLOW_CIDRS", settings.hook_allow_cidrs)
    allow: tuple[Network, ...] = ()
    for name, entries in (("PARAMEDIC_OUTBOUND_ALLOW_CIDRS", settings.outbound_allow_cidrs), own):
        try:
            allow += parse_cidrs(entries)
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from None
    return OutboundPolicy(allow=allow, refuse_private=kind == HOOK or settings.probe_deny_private)


def _refused(kind: str, refusal: Refusal) -> OutboundRefused:
    metrics.OUTBOUND_REFUSED.labels(kind, str(refusal.reason)).inc()
    return OutboundRefused(refusal)


def refuse_literal(url: str | URL, rules: OutboundPolicy, kind: str) -> None:
    """OutboundRefused when `url`'s host is a refused IP address in any form (no resolver
    sees those); ValueError when it has no host."""
    host = URL(url).raw_host if isinstance(url, str) else url.raw_host
    if not host:
        raise ValueError("the URL has no host")
    refusal = rules.refusal_of_host(host.replace("%25", "%"))
    if refusal is not None:
        raise _refused(kind, refusal)


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's threaded resolver, refusing a name when any address it resolves to is refused."""

    def __init__(self, rules: OutboundPolicy, kind: str) -> None:
        self._rules = rules
        self._kind = kind
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        # Numeric forms aiohttp does not read as IPs (0xa9.0xfe.0xa9.0xfe, 127.0.0.1.)
        # are decided here, without asking the system resolver.
        refusal = self._rules.refusal_of_host(host)
        if refusal is not None:
            raise _refused(self._kind, refusal)
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            refusal = self._rules.refusal_of_host(info["host"])
            if refusal is not None:
                raise _refused(self._kind, Refusal(f"{host} ({refusal.address})", refusal.reason))
        return list(infos)

    async def close(self) -> None:
        await self._inner.close()


def guarded_session(rules: OutboundPolicy, kind: str, **kwargs: Any) -> aiohttp.ClientSession:
    """An aiohttp session whose connections only reach addresses `rules` allow.

    `connector_args` go to the TCPConnector; the rest to the session. Callers pass
    `allow_redirects=False` on every request (the check covers one hop).
    """
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(rules, kind), **kwargs.pop("connector_args", {}))
    return aiohttp.ClientSession(connector=connector, trust_env=False, **kwargs)


def refusal_in(exc: BaseException) -> OutboundRefused | None:
    """The OutboundRefused behind an aiohttp error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OutboundRefused):
            return seen
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(seen.os_error, OutboundRefused):
            return seen.os_error
        seen = seen.__cause__ or seen.__context__
    return None
