"""The outbound address rules (paramedic.domain.outbound): every written form of an address.

Metadata addresses appear here only as strings given to the pure functions; nothing in
this file opens a connection.
"""

from __future__ import annotations

import ipaddress

import pytest

from paramedic.domain.outbound import (
    MalformedAddress,
    OutboundPolicy,
    classify,
    embedded_ipv4,
    parse_cidrs,
    parse_host,
)
from paramedic.domain.vocabulary import AddressClass as C

# host as written in a URL -> (the address it names, its class)
FORMS = [
    # IPv4, every inet_aton form
    ("169.254.169.254", "169.254.169.254", C.METADATA),
    ("2852039166", "169.254.169.254", C.METADATA),
    ("0xa9fea9fe", "169.254.169.254", C.METADATA),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254", C.METADATA),
    ("0XA9.0XFE.0XA9.0XFE", "169.254.169.254", C.METADATA),
    ("0251.0376.0251.0376", "169.254.169.254", C.METADATA),
    ("169.254.43518", "169.254.169.254", C.METADATA),
    ("169.16689662", "169.254.169.254", C.METADATA),
    ("0xa9.254.0251.0xfe", "169.254.169.254", C.METADATA),
    ("169.254.169.254.", "169.254.169.254", C.METADATA),
    ("000251.0376.169.254", "169.254.169.254", C.METADATA),  # leading zeros: octal, as inet_aton reads it
    ("169.254.170.2", "169.254.170.2", C.METADATA),
    ("100.100.100.200", "100.100.100.200", C.METADATA),
    ("192.0.0.192", "192.0.0.192", C.METADATA),
    ("169.254.1.1", "169.254.1.1", C.LINK_LOCAL),
    ("127.0.0.1", "127.0.0.1", C.LOOPBACK),
    ("127.1", "127.0.0.1", C.LOOPBACK),
    ("2130706433", "127.0.0.1", C.LOOPBACK),
    ("0x7f000001", "127.0.0.1", C.LOOPBACK),
    ("017700000001", "127.0.0.1", C.LOOPBACK),
    ("0177.0.0.1", "127.0.0.1", C.LOOPBACK),
    ("127.255.255.254", "127.255.255.254", C.LOOPBACK),
    ("127.0.0.1.", "127.0.0.1", C.LOOPBACK),
    ("0", "0.0.0.0", C.UNSPECIFIED),
    ("0.0.0.0", "0.0.0.0", C.UNSPECIFIED),
    ("0x0", "0.0.0.0", C.UNSPECIFIED),
    ("0x", "0.0.0.0", C.UNSPECIFIED),  # an empty hex part is zero, as inet_aton reads it
    ("0.1.2.3", "0.1.2.3", C.UNSPECIFIED),
    ("10.0.0.1", "10.0.0.1", C.PRIVATE),
    ("10.77.0.5", "10.77.0.5", C.PRIVATE),
    ("012.0.0.1", "10.0.0.1", C.PRIVATE),
    ("167772161", "10.0.0.1", C.PRIVATE),
    ("172.16.0.1", "172.16.0.1", C.PRIVATE),
    ("172.31.255.255", "172.31.255.255", C.PRIVATE),
    ("192.168.1.1", "192.168.1.1", C.PRIVATE),
    ("100.64.0.1", "100.64.0.1", C.PRIVATE),
    ("100.127.255.254", "100.127.255.254", C.PRIVATE),
    ("224.0.0.1", "224.0.0.1", C.MULTICAST),
    ("239.255.255.250", "239.255.255.250", C.MULTICAST),
    ("255.255.255.255", "255.255.255.255", C.RESERVED),
    ("240.0.0.1", "240.0.0.1", C.RESERVED),
    ("192.0.2.1", "192.0.2.1", C.RESERVED),
    ("198.51.100.1", "198.51.100.1", C.RESERVED),
    ("203.0.113.1", "203.0.113.1", C.RESERVED),
    ("198.18.0.1", "198.18.0.1", C.RESERVED),
    ("192.0.0.8", "192.0.0.8", C.RESERVED),
    ("192.88.99.1", "192.88.99.1", C.RESERVED),
    ("8.8.8.8", "8.8.8.8", C.PUBLIC),
    ("172.32.0.1", "172.32.0.1", C.PUBLIC),
    ("100.128.0.1", "100.128.0.1", C.PUBLIC),
    # IPv6, brackets, zone ids
    ("[::1]", "::1", C.LOOPBACK),
    ("::1", "::1", C.LOOPBACK),
    ("[0:0:0:0:0:0:0:1]", "::1", C.LOOPBACK),
    ("[::]", "::", C.UNSPECIFIED),
    ("[fe80::1]", "fe80::1", C.LINK_LOCAL),
    ("[fe80::1%eth0]", "fe80::1", C.LINK_LOCAL),
    ("[fe80::1%25eth0]", "fe80::1", C.LINK_LOCAL),
    ("[FE80::A9FE:A9FE]", "fe80::a9fe:a9fe", C.LINK_LOCAL),
    ("[fd00:ec2::254]", "fd00:ec2::254", C.METADATA),
    ("[fd00:ec2::23]", "fd00:ec2::23", C.METADATA),
    ("[fd12:3456::1]", "fd12:3456::1", C.PRIVATE),
    ("[fc00::1]", "fc00::1", C.PRIVATE),
    ("[fec0::1]", "fec0::1", C.PRIVATE),
    ("[ff02::1]", "ff02::1", C.MULTICAST),
    ("[2001:db8::1]", "2001:db8::1", C.RESERVED),
    ("[100::1]", "100::1", C.RESERVED),
    ("[4000::1]", "4000::1", C.RESERVED),
    ("[2001:4860:4860::8888]", "2001:4860:4860::8888", C.PUBLIC),
    # IPv6 carrying IPv4: mapped, compatible, translated, NAT64, 6to4, Teredo
    ("[::ffff:169.254.169.254]", "::ffff:169.254.169.254", C.METADATA),
    ("[::ffff:a9fe:a9fe]", "::ffff:169.254.169.254", C.METADATA),
    ("[0:0:0:0:0:ffff:a9fe:a9fe]", "::ffff:169.254.169.254", C.METADATA),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1", C.LOOPBACK),
    ("[::ffff:10.0.0.1]", "::ffff:10.0.0.1", C.PRIVATE),
    ("[::ffff:8.8.8.8]", "::ffff:8.8.8.8", C.PUBLIC),
    ("[::169.254.169.254]", "::a9fe:a9fe", C.METADATA),
    ("[::127.0.0.1]", "::7f00:1", C.LOOPBACK),
    ("[::ffff:0:169.254.169.254]", "::ffff:0:a9fe:a9fe", C.METADATA),
    ("[64:ff9b::169.254.169.254]", "64:ff9b::a9fe:a9fe", C.METADATA),
    ("[64:ff9b::7f00:1]", "64:ff9b::7f00:1", C.LOOPBACK),
    ("[64:ff9b::808:808]", "64:ff9b::808:808", C.PUBLIC),
    ("[64:ff9b:1::a9fe:a9fe]", "64:ff9b:1::a9fe:a9fe", C.METADATA),        # /96 layout
    ("[64:ff9b:1:a9fe:a9:fe00::]", "64:ff9b:1:a9fe:a9:fe00::", C.METADATA),  # /48 layout
    ("[64:ff9b:1:7f:0:1::]", "64:ff9b:1:7f:0:1::", C.LOOPBACK),               # /56 layout
    ("[64:ff9b:1:0:7f:0:100:0]", "64:ff9b:1:0:7f:0:100:0", C.LOOPBACK),      # /64 layout
    ("[64:ff9b:1::808:808]", "64:ff9b:1::808:808", C.PRIVATE),             # a local-use prefix
    ("[2002:a9fe:a9fe::1]", "2002:a9fe:a9fe::1", C.METADATA),
    ("[2002:7f00:1::]", "2002:7f00:1::", C.LOOPBACK),
    ("[2002:808:808::1]", "2002:808:808::1", C.PUBLIC),
    ("[2001:0:4136:e378:8000:63bf:5601:5601]", "2001:0:4136:e378:8000:63bf:5601:5601", C.METADATA),  # client
    ("[2001:0:7f00:1:8000:63bf:f7f7:f7f7]", "2001:0:7f00:1:8000:63bf:f7f7:f7f7", C.LOOPBACK),  # server
    ("[2001:0:808:808::f7f7:f7f7]", "2001:0:808:808::f7f7:f7f7", C.PUBLIC),
]


@pytest.mark.parametrize(("host", "address", "klass"), FORMS, ids=[f[0] for f in FORMS])
def test_every_form_is_read_and_classified(host: str, address: str, klass: C) -> None:
    parsed = parse_host(host)
    assert parsed == ipaddress.ip_address(address)
    assert classify(parsed) is klass


@pytest.mark.parametrize("name", ["example.com", "hooks.slack.com", "169.254.169.254.nip.io", "svc.ns.svc.cluster.local",
                                  "localhost", "a1.b2", "1.2.3.example", "0x7f.example"])
def test_names_are_left_to_the_resolver(name: str) -> None:
    assert parse_host(name) is None


@pytest.mark.parametrize("host", ["1.2.3.4.5", "08.1.1.1", "0x1.0x2.0x3.0x100", "256.1.1.1", "1.2.65536",
                                  "4294967296", "[::ffff:1.2.3]", "[1::2::3]", "[fe80::zz]"])
def test_numeric_hosts_that_are_no_address_are_malformed(host: str) -> None:
    with pytest.raises(MalformedAddress):
        parse_host(host)


def test_embedded_ipv4_is_empty_for_plain_ipv6() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("2001:4860:4860::8888")) == ()
    assert embedded_ipv4(ipaddress.IPv6Address("::1")) == ()
    assert embedded_ipv4(ipaddress.IPv6Address("::")) == ()


PROBES = OutboundPolicy()
HOOKS = OutboundPolicy(refuse_private=True)


@pytest.mark.parametrize(("host", "probe", "hook"), [
    ("169.254.169.254", C.METADATA, C.METADATA),
    ("[::ffff:169.254.169.254]", C.METADATA, C.METADATA),
    ("2852039166", C.METADATA, C.METADATA),
    ("127.0.0.1", C.LOOPBACK, C.LOOPBACK),
    ("[::1]", C.LOOPBACK, C.LOOPBACK),
    ("[fe80::1%eth0]", C.LINK_LOCAL, C.LINK_LOCAL),
    ("0.0.0.0", C.UNSPECIFIED, C.UNSPECIFIED),
    ("[::]", C.UNSPECIFIED, C.UNSPECIFIED),
    ("224.0.0.1", C.MULTICAST, C.MULTICAST),
    ("240.0.0.1", C.RESERVED, C.RESERVED),
    ("1.2.3.4.5", C.RESERVED, C.RESERVED),
    ("10.96.0.1", None, C.PRIVATE),
    ("[fd00::1]", None, C.PRIVATE),
    ("100.64.0.1", None, C.PRIVATE),
    ("8.8.8.8", None, None),
    ("example.com", None, None),
])
def test_default_rules_for_probes_and_hooks(host: str, probe: C | None, hook: C | None) -> None:
    for rules, expected in ((PROBES, probe), (HOOKS, hook)):
        refusal = rules.refusal_of_host(host)
        assert (refusal.reason if refusal else None) is expected, (host, rules)


def test_probes_may_refuse_private_ranges_too() -> None:
    strict = OutboundPolicy(refuse_private=True)
    assert strict.refusal_of_host("10.77.0.5").reason is C.PRIVATE
    assert strict.refusal_of_host("[::ffff:192.168.0.1]").reason is C.PRIVATE


def test_the_allowlist_lifts_refusals_in_every_form() -> None:
    rules = OutboundPolicy(allow=parse_cidrs(["127.0.0.0/8", "10.77.0.0/24", "fd00:1::/64"]), refuse_private=True)
    for host in ("127.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "127.1", "10.77.0.9", "[fd00:1::5]"):
        assert rules.refusal_of_host(host) is None, host
    for host in ("10.77.1.9", "[::1]", "169.254.169.254", "[fd00:2::5]"):
        assert rules.refusal_of_host(host) is not None, host


def test_a_metadata_address_is_lifted_only_when_named_exactly() -> None:
    broad = OutboundPolicy(allow=parse_cidrs(["169.254.0.0/16", "0.0.0.0/0", "::/0"]))
    assert broad.refusal_of_host("169.254.1.1") is None
    assert broad.refusal_of_host("169.254.169.254").reason is C.METADATA
    assert broad.refusal_of_host("[::ffff:169.254.169.254]").reason is C.METADATA
    assert broad.refusal_of_host("[fd00:ec2::254]").reason is C.METADATA
    exact = OutboundPolicy(allow=parse_cidrs(["169.254.169.254/32"]))
    assert exact.refusal_of_host("169.254.169.254") is None


def test_refusals_say_why() -> None:
    refusal = HOOKS.refusal_of_host("[::ffff:127.0.0.1]")
    assert str(refusal) == ("::ffff:7f00:1 is a loopback address, refused unless PARAMEDIC_OUTBOUND_ALLOW_CIDRS "
                            "names it")


def test_allowlist_entries_must_be_cidrs() -> None:
    assert parse_cidrs([" 10.0.0.0/8 ", "127.0.0.1", "fd00::/8"]) == (
        ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("fd00::/8"))
    with pytest.raises(ValueError, match="'10.0.0.0/33' is not a CIDR"):
        parse_cidrs(["10.0.0.0/33"])
