"""The outbound rules as settings make them (paramedic.netguard.policy) and the operator's start-up check."""

from __future__ import annotations

import ipaddress

import pytest

from paramedic import netguard
from paramedic.settings import Settings, SettingsError


def test_hooks_always_refuse_private_ranges_probes_only_when_asked() -> None:
    default = Settings.from_env({})
    assert netguard.policy(default, netguard.HOOK).refuse_private
    assert not netguard.policy(default, netguard.PROBE).refuse_private
    strict = Settings.from_env({"PARAMEDIC_PROBE_DENY_PRIVATE": "true"})
    assert netguard.policy(strict, netguard.PROBE).refuse_private


def test_the_allowlist_comes_from_the_environment() -> None:
    s = Settings.from_env({"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "127.0.0.0/8, 10.77.0.0/24,fd00::/8"})
    assert netguard.policy(s, netguard.HOOK).allow == (
        ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.77.0.0/24"), ipaddress.ip_network("fd00::/8"))
    with pytest.raises(SettingsError, match=r"PARAMEDIC_OUTBOUND_ALLOW_CIDRS: 'localhost' is not a CIDR"):
        netguard.policy(Settings.from_env({"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "localhost"}), netguard.PROBE)


def test_the_operator_exits_2_on_a_bad_allowlist(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from paramedic.operator import main as main_mod

    monkeypatch.setenv("PARAMEDIC_OUTBOUND_ALLOW_CIDRS", "10.0.0.0/8,10.0.0.300/32")
    monkeypatch.setattr(main_mod.kopf, "run", lambda **kw: pytest.fail("Kopf must not start"))
    assert main_mod.main(["--standalone"]) == 2
    assert "'10.0.0.300/32' is not a CIDR" in capsys.readouterr().err


def test_literals_are_refused_before_any_connection() -> None:
    rules = netguard.policy(Settings(), netguard.HOOK)
    for url in ("http://[::ffff:169.254.169.254]/", "http://2852039166/", "https://[fe80::1%25eth0]:8443/x",
                "http://127.0.0.1./", "http://user@10.0.0.1:80/", "http://1.2.3.4.5/"):
        with pytest.raises(netguard.OutboundRefused):
            netguard.refuse_literal(url, rules, netguard.HOOK)
    netguard.refuse_literal("https://hooks.example.com/T0", rules, netguard.HOOK)  # a name: the resolver decides
    with pytest.raises(ValueError, match="no host"):
        netguard.refuse_literal("not a url", rules, netguard.HOOK)


class _Answers:
    """Stands in for the system resolver: nothing is looked up, and resolving connects nowhere."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host, port=0, family=0):
        return [{"hostname": host, "host": self.address, "port": port, "family": family, "proto": 0, "flags": 0}]

    async def close(self):
        return None


def _resolve(allow: str, kind: str, name: str, answer: str) -> list:
    import asyncio

    async def main() -> list:
        resolver = netguard.GuardedResolver(
            netguard.policy(Settings.from_env({"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": allow}), kind), kind)
        return await resolver.resolve(name, 80)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(netguard.aiohttp, "ThreadedResolver", lambda: _Answers(answer))
        return asyncio.run(main())


@pytest.mark.parametrize("kind", [netguard.PROBE, netguard.HOOK])
@pytest.mark.parametrize("answer", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"])
def test_a_name_resolving_to_a_metadata_address_is_refused_on_its_answer_even_under_a_broad_allowlist(
        kind: str, answer: str) -> None:
    # Such names exist in public DNS (169.254.169.254.nip.io); the resolver decides before any connection.
    with pytest.raises(netguard.OutboundRefused, match=r"imds\.example \(.*\) is a metadata address"):
        _resolve("0.0.0.0/0,::/0,169.254.0.0/16", kind, "imds.example", answer)


def test_a_resolved_metadata_address_is_lifted_only_by_an_entry_naming_it() -> None:
    [info] = _resolve("169.254.169.254/32", netguard.PROBE, "imds.example", "169.254.169.254")
    assert info["host"] == "169.254.169.254"


def test_a_resolved_loopback_address_is_refused_and_an_allowed_one_passes() -> None:
    with pytest.raises(netguard.OutboundRefused, match=r"status\.example \(127\.0\.0\.1\) is a loopback address"):
        _resolve("", netguard.HOOK, "status.example", "127.0.0.1")
    assert _resolve("127.0.0.0/8", netguard.HOOK, "status.example", "127.0.0.1")[0]["host"] == "127.0.0.1"


def test_each_kind_has_its_own_allowlist_besides_the_shared_one() -> None:
    s = Settings.from_env({"PARAMEDIC_OUTBOUND_ALLOW_CIDRS": "10.96.0.0/12",
                           "PARAMEDIC_PROBE_ALLOW_CIDRS": "127.0.0.0/8", "PARAMEDIC_HOOK_ALLOW_CIDRS": "10.77.0.0/24"})
    probe, hook = netguard.policy(s, netguard.PROBE), netguard.policy(s, netguard.HOOK)
    assert probe.refusal_of_host("127.0.0.1") is None and hook.refusal_of_host("127.0.0.1") is not None
    # Private addresses are fine for probes by default.
    assert hook.refusal_of_host("10.77.0.5") is None and probe.refusal_of_host("10.77.0.5") is None
    strict = netguard.policy(Settings.from_env({"PARAMEDIC_PROBE_DENY_PRIVATE": "true",
                                                "PARAMEDIC_HOOK_ALLOW_CIDRS": "10.77.0.0/24"}), netguard.PROBE)
    assert strict.refusal_of_host("10.77.0.5") is not None, "a hook's range never lifts a probe's refusal"
    assert hook.refusal_of_host("10.96.0.10") is None and probe.refusal_of_host("10.96.0.10") is None  # shared
    for name in ("PARAMEDIC_PROBE_ALLOW_CIDRS", "PARAMEDIC_HOOK_ALLOW_CIDRS"):
        bad = Settings.from_env({name: "10.0.0.0/8,nope"})
        with pytest.raises(SettingsError, match=rf"{name}: 'nope' is not a CIDR"):
            for kind in (netguard.PROBE, netguard.HOOK):
                netguard.policy(bad, kind)
