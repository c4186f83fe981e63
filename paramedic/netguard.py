"""Addresses Paramedic never sends to on someone's say-so: link-local and cloud metadata.

Probe URLs and notification hook URLs come from MonitoredServices, which people
with namespace rights write; cloud metadata endpoints (169.254.169.254 and
friends) answer on link-local addresses and hand out credentials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


def forbidden_address(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return addr.is_link_local or addr in _METADATA


def refuse_forbidden_literal(url: str) -> None:
    """ValueError when `url`'s host is a forbidden IP literal (which no resolver sees)."""
    host = urlsplit(url).hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: see GuardedResolver and refuse_forbidden
    if forbidden_address(str(ip)):
        raise ValueError(f"{host} is a forbidden address")


class GuardedResolver(aiohttp.abc.AbstractResolver):
    """aiohttp's threaded resolver, refusing names that resolve to forbidden addresses:
    the address checked is the address connected to."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        infos = await self._inner.resolve(host, port, family)
        for info in infos:
            if forbidden_address(info["host"]):
                raise OSError(f"{host} resolves to a forbidden address ({info['host']})")
        return infos

    async def close(self) -> None:
        await self._inner.close()


async def refuse_forbidden(url: str) -> None:
    """ValueError when `url`'s host is, or resolves to, a forbidden address.

    The answer is checked, then the client resolves again: a DNS answer that changes
    in between (rebinding) is not caught here. The prober avoids that by checking
    in its resolver; notification hooks are rare enough for this check.
    """
    host = urlsplit(url).hostname or ""
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = await _resolve(host)
    for address in addresses:
        if forbidden_address(address):
            raise ValueError(f"{host} is or resolves to a forbidden address ({address})")


async def _resolve(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]  # an address string (typed str | int for AF_UNIX's sake)
