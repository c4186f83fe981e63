"""Which addresses Paramedic may send a request to on a namespace user's say-so.

Probe URLs and notification hook URLs come from MonitoredServices, which anyone with
namespace rights writes. This module is the pure policy: parse a URL host in every form
an IP address can take (decimal, octal, hex and short IPv4, bracketed IPv6 with a zone id,
a trailing dot), unwrap every IPv6 form that carries an IPv4 address (mapped, compatible,
translated, NAT64, 6to4, Teredo), classify the address, and decide. `paramedic.netguard`
applies it to the address actually connected to.

Rules: probes and hooks refuse metadata, loopback, link-local, unspecified, multicast and
reserved addresses; hooks also refuse private ranges (probes only when asked); an admin
allowlist of CIDRs lifts a refusal. A metadata address is lifted only by an entry naming
exactly that address, so a broad range never opens the credentials endpoint by accident.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from paramedic.domain.vocabulary import AddressClass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Most restrictive first: an address with several readings takes the first that applies.
_ORDER = tuple(AddressClass)

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",   # most clouds' instance metadata
    "169.254.170.2",     # container task metadata and credentials
    "169.254.170.23",    # pod identity agent
    "100.100.100.200",   # metadata inside the CGNAT range
    "192.0.0.192",       # an older metadata address
    "fd00:ec2::254",     # IPv6 instance metadata
    "fd00:ec2::23",      # IPv6 pod identity agent
))

_V4_TABLE: tuple[tuple[str, AddressClass], ...] = (
    ("0.0.0.0/8", AddressClass.UNSPECIFIED),
    ("127.0.0.0/8", AddressClass.LOOPBACK),
    ("169.254.0.0/16", AddressClass.LINK_LOCAL),
    ("10.0.0.0/8", AddressClass.PRIVATE),
    ("172.16.0.0/12", AddressClass.PRIVATE),
    ("192.168.0.0/16", AddressClass.PRIVATE),
    ("100.64.0.0/10", AddressClass.PRIVATE),
    ("224.0.0.0/4", AddressClass.MULTICAST),
    ("240.0.0.0/4", AddressClass.RESERVED),      # future use, and 255.255.255.255
    ("192.0.0.0/24", AddressClass.RESERVED),     # protocol assignments
    ("192.0.2.0/24", AddressClass.RESERVED),     # documentation
    ("198.51.100.0/24", AddressClass.RESERVED),
    ("203.0.113.0/24", AddressClass.RESERVED),
    ("198.18.0.0/15", AddressClass.RESERVED),    # benchmarking
    ("192.88.99.0/24", AddressClass.RESERVED),   # 6to4 relay anycast
)
_V6_TABLE: tuple[tuple[str, AddressClass], ...] = (
    ("::/128", AddressClass.UNSPECIFIED),
    ("::1/128", AddressClass.LOOPBACK),
    ("fe80::/10", AddressClass.LINK_LOCAL),
    ("fc00::/7", AddressClass.PRIVATE),
    ("fec0::/10", AddressClass.PRIVATE),         # deprecated site-local
    ("ff00::/8", AddressClass.MULTICAST),
    ("2001:db8::/32", AddressClass.RESERVED),    # documentation
    ("3fff::/20", AddressClass.RESERVED),
    ("2001::/23", AddressClass.RESERVED),        # protocol assignments (Teredo is unwrapped first)
    ("100::/64", AddressClass.RESERVED),         # discard
    ("5f00::/16", AddressClass.RESERVED),
)
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_V4_NETS = tuple((ipaddress.IPv4Network(n), c) for n, c in _V4_TABLE)
_V6_NETS = tuple((ipaddress.IPv6Network(n), c) for n, c in _V6_TABLE)

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")

_V4_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class MalformedAddress(ValueError):
    """A host that a resolver would read as an IP address, but not one this module can read."""


def parse_host(host: str) -> IPAddress | None:
    """The IP address `host` names, in any form a resolver or client accepts; None for a name.

    `[...]` brackets, an IPv6 zone id (`%eth0`, `%25eth0`) and one trailing dot are
    dropped. IPv4 may be written as inet_aton reads it: 1 to 4 parts, each decimal, octal
    (leading 0) or hex (0x), the last part filling the remaining bytes (`2852039166`,
    `0xa9.0xfe.0xa9.0xfe`, `127.1`). Raises MalformedAddress for a host made only of
    numeric parts (or with a colon) that is no valid address: such a host is not a name.
    """
    text = host.strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        text = text.split("%", 1)[0]
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            raise MalformedAddress(f"{host!r} is not a valid IPv6 address") from None
    if text.endswith("."):
        text = text[:-1]
    parts = text.split(".")
    if not text or not all(_V4_PART.match(p) for p in parts):
        return None  # a name (its labels are not all numbers)
    if len(parts) > 4:
        raise MalformedAddress(f"{host!r} has more than 4 numeric parts")
    try:
        numbers = [int(p, 16) if p.startswith("0x") else int(p, 8) if len(p) > 1 and p.startswith("0") else int(p)
                   for p in (p if p != "0x" else "0x0" for p in parts)]
    except ValueError:
        raise MalformedAddress(f"{host!r} is not a valid IPv4 address") from None
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 1 << (8 * (5 - len(numbers))):
        raise MalformedAddress(f"{host!r} is out of the IPv4 range")
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """Every IPv4 address an IPv6 address may deliver to (empty when it carries none)."""
    value = int(addr)
    if addr.ipv4_mapped is not None:
        return (addr.ipv4_mapped,)
    if addr in _TRANSLATED or addr in _NAT64_WELL_KNOWN:
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if addr in _COMPATIBLE and value > 1:  # ::a.b.c.d (not :: nor ::1)
        return (ipaddress.IPv4Address(value & 0xFFFFFFFF),)
    if addr in _SIX_TO_FOUR:
        return (ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF),)
    if addr.teredo is not None:
        return addr.teredo
    if addr in _NAT64_LOCAL:
        # RFC 6052: the prefix length is the operator's choice, so read every layout a
        # /48 or longer prefix allows (bits 64-71 are always skipped).
        b = addr.packed
        # A reading in 0.0.0.0/8 is no destination a translator serves: it is skipped.
        layouts = (b[6:8] + b[9:11], b[7:8] + b[9:12], b[9:13], b[12:16])
        return tuple(ipaddress.IPv4Address(x) for x in layouts if x[0] != 0)
    return ()


def _classify_plain(addr: IPAddress) -> AddressClass:
    if addr in METADATA_ADDRESSES:
        return AddressClass.METADATA
    if isinstance(addr, ipaddress.IPv4Address):
        return next((c for net, c in _V4_NETS if addr in net), AddressClass.PUBLIC)
    found = next((c for net, c in _V6_NETS if addr in net), None)
    if found is not None:
        return found
    return AddressClass.PUBLIC if addr in _GLOBAL_UNICAST_V6 else AddressClass.RESERVED


def classify(addr: IPAddress) -> AddressClass:
    """The class of the address a connection to `addr` reaches (an embedded IPv4 counts)."""
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.scope_id:
            addr = ipaddress.IPv6Address(addr.compressed.split("%", 1)[0])
        inner = embedded_ipv4(addr)
        if inner:
            readings = [_classify_plain(a) for a in inner]
            if addr in _NAT64_LOCAL:
                readings.append(AddressClass.PRIVATE)  # a local-use prefix
            return min(readings, key=_ORDER.index)
    return _classify_plain(addr)


def parse_cidrs(entries: Iterable[str]) -> tuple[Network, ...]:
    """The allowlist; ValueError naming the first entry that is no CIDR (or address)."""
    nets = []
    for entry in entries:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not a CIDR (e.g. 10.0.0.0/8, fd00::/8, 127.0.0.1)") from None
    return tuple(nets)


REFUSED_ALWAYS: frozenset[AddressClass] = frozenset({
    AddressClass.METADATA, AddressClass.LOOPBACK, AddressClass.LINK_LOCAL, AddressClass.UNSPECIFIED,
    AddressClass.MULTICAST, AddressClass.RESERVED})


@dataclass(frozen=True)
class Refusal:
    address: str
    reason: AddressClass

    def __str__(self) -> str:
        return (f"{self.address} is a {self.reason} address, refused unless PARAMEDIC_OUTBOUND_ALLOW_CIDRS "
                f"names it")


@dataclass(frozen=True)
class OutboundPolicy:
    """The rules for one kind of request: probes (`refuse_private` optional) or hooks (True)."""

    allow: tuple[Network, ...] = ()
    refuse_private: bool = False

    def refusal(self, addr: IPAddress) -> Refusal | None:
        """Why a connection to `addr` is refused, or None when it may go ahead."""
        reason = classify(addr)
        refused = reason in REFUSED_ALWAYS or (reason is AddressClass.PRIVATE and self.refuse_private)
        if not refused or self._allowed(addr, reason):
            return None
        return Refusal(str(addr), reason)

    def refusal_of_host(self, host: str) -> Refusal | None:
        """`refusal` for a URL host that is an IP address in any form; None for a name
        (the resolver checks what it resolves to)."""
        try:
            addr = parse_host(host)
        except MalformedAddress:
            return Refusal(host, AddressClass.RESERVED)
        return None if addr is None else self.refusal(addr)

    def _allowed(self, addr: IPAddress, reason: AddressClass) -> bool:
        if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id:
            addr = ipaddress.IPv6Address(addr.compressed.split("%", 1)[0])
        inner = embedded_ipv4(addr) if isinstance(addr, ipaddress.IPv6Address) else ()
        # The address as written, or every IPv4 address it carries, must be inside the allowlist.
        candidates: list[tuple[IPAddress, ...]] = [(addr,)]
        if inner:
            candidates.append(inner)
        for group in candidates:
            if all(self._allows(a, reason) for a in group):
                return True
        return False

    def _allows(self, addr: IPAddress, reason: AddressClass) -> bool:
        for net in self.allow:
            if addr.version != net.version or addr not in net:
                continue
            if reason is AddressClass.METADATA and net.num_addresses != 1:
                continue  # only an entry naming the metadata address itself
            return True
        return False
