"""Blueprint `insights`: MTTA, MTTR, SLA and noise over a range of days, as server-drawn charts."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request

from paramedic import kube
from paramedic.domain.stats import compute_stats, daily_series, noisiest_services, remediation_outcomes
from paramedic.domain.timeutil import utcnow
from paramedic.domain.vocabulary import SEVERITIES

from . import charts, views
from .current import listed, whoami

bp = Blueprint("insights", __name__)

INSIGHT_RANGES = {"7d": 7, "30d": 30, "90d": 90}


@bp.get("/insights")
def insights() -> Any:
    whoami()
    rng = request.args.get("range", "30d")
    days = INSIGHT_RANGES.get(rng, 30)
    items, denied = listed(kube.INCIDENTS)
    now = utcnow()
    recent = [i for i in items if views.created_within(i, now, days)]
    outcomes = remediation_outcomes(recent)
    return render_template("insights.html", rng=rng, ranges=list(INSIGHT_RANGES), denied=denied,
                           stats=compute_stats(recent, now), **_charts(daily_series(recent, now, days)),
                           noisy=charts.hbars("Noisiest services", noisiest_services(recent, 10)), outcomes=outcomes,
                           remediation=charts.hbars("Remediation attempts by result",
                                                    list(outcomes["byResult"].items())))


def _charts(series: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-day charts: incidents by severity, MTTA and MTTR by severity, SLA breach rate."""
    labels = [b["day"][5:] for b in series]
    sevs = [str(s) for s in SEVERITIES]

    def minutes(key: str, sev: str) -> list[float | None]:
        return [None if sev not in b[key] else b[key][sev] / 60 for b in series]
    return {
        "per_day": charts.stacked_bars("Incidents per day by severity", labels,
                                       [(s, [b["bySeverity"].get(s, 0) for b in series]) for s in sevs]),
        "mtta": charts.lines("MTTA by severity (minutes)", labels, [(s, minutes("mtta", s)) for s in sevs], "{:.1f}"),
        "mttr": charts.lines("MTTR by severity (minutes)", labels, [(s, minutes("mttr", s)) for s in sevs], "{:.1f}"),
        "breach": charts.lines("SLA breach rate (%)", labels,
                               [("rate", [100 * b["breached"] / b["total"] if b["total"] else None for b in series])],
                               "{:.0f}%"),
    }
