"""Incident names per correlation window and the escaped field selectors (domain/alert_naming.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from paramedic.domain import alert_naming as naming
from paramedic.domain.alert import SEVERITIES
from tests.unit.alert_samples import NOW

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def test_names_are_deterministic_per_window():
    a = naming.incident_name("checkout", "critical", datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC), 300)
    b = naming.incident_name("checkout", "critical", datetime(2026, 3, 2, 10, 4, 59, tzinfo=UTC), 300)
    c = naming.incident_name("checkout", "critical", datetime(2026, 3, 2, 10, 5, 0, tzinfo=UTC), 300)
    assert a == b != c
    assert a.startswith("checkout-critical-")
    assert naming.incident_name("checkout", "critical", NOW, 300, attempt=2) == \
        naming.incident_name("checkout", "critical", NOW, 300) + "-2"
    assert naming.incident_name("checkout", "high", NOW, 300) != naming.incident_name("checkout", "low", NOW, 300)


def test_bucket_is_compact():
    name = naming.incident_name("checkout", "critical", NOW, 300)
    assert len(name.rsplit("-", 1)[1]) <= 6


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=400), st.sampled_from(SEVERITIES),
       st.integers(min_value=0, max_value=4_000_000_000), st.integers(min_value=1, max_value=100))
def test_names_are_always_valid(service, severity, epoch, attempt):
    name = naming.incident_name(service, severity, datetime.fromtimestamp(epoch, UTC), 300, attempt)
    assert DNS1123.match(name) and len(name) <= 253


def test_distinct_services_get_distinct_names():
    names = {naming.incident_name(s, "high", NOW, 300) for s in ("My_Svc", "my-svc", "my.svc", "MY SVC", "a" * 300,
                                                                "a" * 301)}
    assert len(names) == 6


def test_field_selector_escapes_values():
    assert naming.active_field_selector("checkout", "high") == \
        "spec.service=checkout,spec.severity=high,spec.state!=resolved,spec.state!=closed"
    assert naming.active_field_selector("a,b=c\\", "low").startswith("spec.service=a\\,b\\=c\\\\,")
