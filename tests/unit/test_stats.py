import re
from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain import stats

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def inc(name, state, severity, service, days_ago, mtta=None, mttr=None, breached=False, status_created=True):
    created = (NOW - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = {}
    if status_created:
        status["createdAt"] = created
    if mtta is not None:
        status["mttaSeconds"] = mtta
    if mttr is not None:
        status["mttrSeconds"] = mttr
    if breached:
        status["sla"] = {"breached": True}
    return {"metadata": {"name": name, "creationTimestamp": created},
            "spec": {"state": state, "severity": severity, "service": service}, "status": status}


INCIDENTS = [
    inc("a", "closed", "critical", "checkout", 20, mtta=60, mttr=600, breached=True),
    inc("b", "resolved", "high", "checkout", 5, mtta=120, mttr=1200),
    inc("c", "acknowledged", "high", "search", 2, mtta=300),
    inc("d", "open", "low", "search", 1, breached=True, status_created=False),
    inc("e", "mitigated", "medium", "cart", 0.5, mtta=30),
]


def test_percentile_interpolates():
    assert stats.percentile([], 50) is None
    assert stats.percentile([7], 90) == 7
    assert stats.percentile([1, 2, 3, 4], 50) == 2.5
    assert stats.percentile([10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 90) == pytest.approx(91)
    assert stats.percentile([3, 1, 2], 0) == 1 and stats.percentile([3, 1, 2], 100) == 3


def test_all_time_counts_and_figures():
    s = stats.compute_stats(INCIDENTS, NOW, None)
    assert s["total"] == 5 and s["active"] == 3 and s["window"] is None
    assert s["byState"] == {"open": 1, "acknowledged": 1, "mitigated": 1, "resolved": 1, "closed": 1}
    assert list(s["bySeverity"]) == ["critical", "high", "medium", "low"]
    assert s["bySeverity"]["high"] == 2
    assert s["byService"] == {"cart": 1, "checkout": 2, "search": 2}
    assert s["mtta"] == {"count": 4, "mean": 127.5, "p50": 90.0, "p90": pytest.approx(246.0)}
    assert s["mttr"] == {"count": 2, "mean": 900.0, "p50": 900.0, "p90": pytest.approx(1140.0)}
    assert s["slaBreached"] == 2 and s["slaBreachRate"] == pytest.approx(0.4)


def test_window_filters_by_creation_and_falls_back_to_metadata():
    s = stats.compute_stats(INCIDENTS, NOW, timedelta(days=7))
    assert s["total"] == 4 and s["window"] == 7 * 86400
    assert "closed" not in s["byState"]
    assert s["slaBreached"] == 1 and s["slaBreachRate"] == pytest.approx(0.25)  # d counts via metadata
    assert stats.compute_stats(INCIDENTS, NOW, timedelta(hours=1))["total"] == 0


def test_empty():
    s = stats.compute_stats([], NOW, None)
    assert s["total"] == 0 and s["slaBreachRate"] is None
    assert s["mtta"] == {"count": 0, "mean": None, "p50": None, "p90": None}
    text = stats.render_stats_table(s)
    assert "Incidents: 0 (all time)" in text and "SLA breached: 0 of 0 (-)" in text


@pytest.mark.parametrize("seconds,text", [
    (None, "-"), (0, "0s"), (45, "45s"), (60, "1m"), (725, "12m 5s"), (3600, "1h"), (12000, "3h 20m"),
    (187200, "2d 4h"), (-90, "-1m 30s"),
])
def test_format_duration(seconds, text):
    assert stats.format_duration(seconds) == text


def test_render_stats_table():
    text = stats.render_stats_table(stats.compute_stats(INCIDENTS, NOW, timedelta(days=7)))
    lines = text.splitlines()
    assert lines[0] == "Incidents: 4 (last 7d)"
    assert "STATE          COUNT" in lines
    cells = [re.split(r"\s{2,}", line) for line in lines]
    assert ["MTTA", "3", "2m 30s", "2m", "4m 24s"] in cells
    assert ["MTTR", "1", "20m", "20m", "20m"] in cells
    assert lines[-1] == "SLA breached: 1 of 4 (25.0%)"


def test_mtta_counts_only_incidents_someone_acknowledged():
    auto = inc("auto", "resolved", "high", "checkout", 1, mttr=3600)
    auto["status"].update(resolvedAt="2026-03-09T13:00:00Z", unacknowledged=True)
    # Recorded by the old rule: every skipped state stamped with the resolution time.
    legacy = inc("legacy", "resolved", "high", "checkout", 1, mtta=900, mttr=900)
    legacy["status"].update(acknowledgedAt="2026-03-09T12:15:00Z", resolvedAt="2026-03-09T12:15:00Z")
    person = inc("person", "resolved", "high", "checkout", 1, mtta=60, mttr=900)
    person["status"].update(acknowledgedAt="2026-03-09T12:01:00Z", resolvedAt="2026-03-09T12:15:00Z")
    s = stats.compute_stats([auto, legacy, person], NOW)
    assert s["mtta"]["count"] == 1 and s["mtta"]["mean"] == 60
    assert s["mttr"]["count"] == 3
    assert s["unacknowledged"] == 2
    assert "Resolved without acknowledgement (not in MTTA): 2" in stats.render_stats_table(s)


def test_daily_series_buckets_by_creation_day_and_severity():
    auto = inc("auto", "resolved", "high", "checkout", 1, mttr=600)
    auto["status"]["unacknowledged"] = True
    series = stats.daily_series(INCIDENTS + [auto], NOW, 7)
    assert [b["day"] for b in series][0] == "2026-03-04" and series[-1]["day"] == "2026-03-10"
    by_day = {b["day"]: b for b in series}
    assert by_day["2026-03-05"]["bySeverity"]["high"] == 1 and by_day["2026-03-05"]["mtta"] == {"high": 120.0}
    assert by_day["2026-03-09"]["total"] == 2 and by_day["2026-03-09"]["breached"] == 1
    assert by_day["2026-03-09"]["mtta"] == {} and by_day["2026-03-09"]["mttr"] == {"high": 600.0}
    assert sum(b["total"] for b in series) == 5  # "a" is 20 days old
    with pytest.raises(ValueError):
        stats.daily_series([], NOW, 0)


def test_noisiest_services_and_remediation_outcomes():
    assert stats.noisiest_services(INCIDENTS, 2) == [("checkout", 2), ("search", 2)]
    with_attempts = inc("r", "resolved", "high", "cart", 0)
    with_attempts["status"]["remediation"] = {"attempts": [{"result": "Succeeded"}, {"result": "Failed"},
                                                           {"result": "Running"}, {"result": "DryRun"}]}
    out = stats.remediation_outcomes([with_attempts])
    assert out["ended"] == 2 and out["successRate"] == 0.5 and out["byResult"]["Running"] == 1
    assert stats.remediation_outcomes([])["successRate"] is None
