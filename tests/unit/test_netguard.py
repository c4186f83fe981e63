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
