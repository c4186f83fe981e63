"""Notifications link to the incident's page in the web console when PARAMEDIC_CONSOLE_URL is set."""

from __future__ import annotations

from datetime import UTC, datetime

from paramedic.domain import notify_render as nr
from paramedic.domain.incident_plan import Effects, PlanSettings, plan
from paramedic.settings import Settings

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INCIDENT = {"metadata": {"name": "checkout-7f3a", "namespace": "shop"},
            "spec": {"service": "checkout", "severity": "critical", "title": "down", "state": "open"}}


def note(console_url: str, name: str = "checkout-7f3a") -> nr.Notification:
    inc = {**INCIDENT, "metadata": {"name": name, "namespace": "shop"}}
    return nr.notification_from_incident(inc, "opened", "down", ["a@example.com"], console_url=console_url)


def test_incident_page_url():
    assert nr.incident_page(note("https://console.example.com")) == \
        "https://console.example.com/ns/shop/incidents/checkout-7f3a"
    assert nr.incident_page(note("https://c.example.com/paramedic/")) == \
        "https://c.example.com/paramedic/ns/shop/incidents/checkout-7f3a"
    assert nr.incident_page(note("")) == ""
    assert nr.incident_page(note("javascript:alert(1)")) == ""
    assert nr.incident_page(note("https://c.example.com", name="a/../b")) == \
        "https://c.example.com/ns/shop/incidents/a%2F..%2Fb"


def test_every_channel_carries_the_link_only_when_set():
    page = "https://console.example.com/ns/shop/incidents/checkout-7f3a"
    n = note("https://console.example.com")
    assert page in nr.render_text(n) and f'href="{page}"' in nr.render_html(n)
    assert any(page in f["text"] for f in nr.render_slack(n)["blocks"][2]["fields"])
    assert nr.render_webhook(n)["incidentURL"] == page
    plain = note("")
    assert "/ns/shop/incidents" not in nr.render_text(plain) + nr.render_html(plain)
    assert not any("Console" in f["text"] for f in nr.render_slack(plain)["blocks"][2]["fields"])


def test_the_planners_deliveries_carry_the_console_url():
    assert Settings.from_env({"PARAMEDIC_CONSOLE_URL": "https://c.example.com"}).console_url == "https://c.example.com"
    inc = {**INCIDENT, "status": {"createdAt": "2026-03-01T11:00:00Z", "observedState": "open",
                                  "notifications": [{"key": "opened", "event": "opened", "detail": "down",
                                                     "recipients": ["a@example.com"], "result": "pending"}]}}
    p = plan(inc, None, None, Effects(), PlanSettings(console_url="https://c.example.com"), NOW)
    [delivery] = p.deliveries
    assert nr.incident_page(delivery.notification) == "https://c.example.com/ns/shop/incidents/checkout-7f3a"
