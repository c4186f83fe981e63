"""What the chart and manifests/ ship for probes: private ranges refused unless the admin's allowlist
names them. Decided by the pure policy only: no traffic goes to any private address."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from paramedic import netguard
from paramedic.domain.outbound import OutboundPolicy
from paramedic.domain.vocabulary import AddressClass
from paramedic.settings import Settings
from tests.chart.helm import render

REPO = Path(__file__).resolve().parents[2]
PRIVATE = ["10.96.0.1", "10.0.0.10", "172.16.5.4", "172.31.255.1", "192.168.1.1", "100.64.0.1", "fd12:3456::1",
           "fc00::1", "[::ffff:10.96.0.1]", "167772161"]  # the last two: 10.96.0.1 and 10.0.0.1 in other spellings
PUBLIC = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]


def chart_config(*sets: str) -> dict[str, str]:
    [cm] = [d for d in render(*sets) if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")]
    return {k: v for k, v in cm["data"].items()}


def manifests_config() -> dict[str, str]:
    [cm] = [d for d in yaml.safe_load_all((REPO / "manifests" / "config.yaml").read_text()) if d]
    return dict(cm["data"])


def probe_rules(config: dict[str, str]) -> OutboundPolicy:
    return netguard.policy(Settings.from_env(config), netguard.PROBE)


def refused(rules: OutboundPolicy, host: str) -> AddressClass | None:
    r = rules.refusal_of_host(host)
    return r.reason if r else None


@pytest.mark.parametrize("source", ["chart", "manifests"])
def test_shipped_probe_rules_refuse_private_ranges(source: str) -> None:
    config = chart_config() if source == "chart" else manifests_config()
    assert config["PARAMEDIC_PROBE_DENY_PRIVATE"] == "true" and not config["PARAMEDIC_PROBE_ALLOW_CIDRS"]
    rules = probe_rules(config)
    assert {h: refused(rules, h) for h in PRIVATE} == {h: AddressClass.PRIVATE for h in PRIVATE}
    assert {h: refused(rules, h) for h in PUBLIC} == {h: None for h in PUBLIC}


def test_the_charts_probe_allowlist_lets_the_service_cidr_through_and_nothing_else() -> None:
    config = chart_config("operator.probeAllowCIDRs={10.96.0.0/12}")
    assert config["PARAMEDIC_PROBE_ALLOW_CIDRS"] == "10.96.0.0/12"
    rules = probe_rules(config)
    assert refused(rules, "10.96.0.1") is None and refused(rules, "10.111.255.254") is None
    assert refused(rules, "10.0.0.10") is AddressClass.PRIVATE and refused(rules, "192.168.1.1") is AddressClass.PRIVATE
    # Hooks are not lifted by the probes' list.
    hooks = netguard.policy(Settings.from_env(config), netguard.HOOK)
    assert refused(hooks, "10.96.0.1") is AddressClass.PRIVATE


def test_without_settings_the_process_keeps_probing_private_ranges() -> None:
    # The process-level default is unchanged (a local or test operator probes what it is told);
    # the chart and manifests/ are what turn the refusal on.
    rules = netguard.policy(Settings.from_env({}), netguard.PROBE)
    assert all(refused(rules, h) is None for h in PRIVATE)
    assert refused(rules, "127.0.0.1") is AddressClass.LOOPBACK
