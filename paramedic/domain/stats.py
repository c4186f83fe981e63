"""Incident statistics: counts, MTTA/MTTR figures and the SLA breach rate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .lifecycle import STATES, was_acknowledged
from .presentation import format_duration as format_duration  # one implementation (presentation)
from .resources import Incident
from .vocabulary import ENDED_UNSUCCESSFULLY, SEVERITIES, AttemptResult


def created_at(incident: Mapping[str, Any]) -> datetime | None:
    """status.createdAt, else metadata.creationTimestamp (before the operator saw it)."""
    return Incident(incident).created_at


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(values: list[float]) -> dict[str, Any]:
    """count, mean, p50 and p90 of a list of seconds (None when empty)."""
    return {
        "count": len(values),
        "mean": sum(values) / len(values) if values else None,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
    }


def _seconds(incidents: Sequence[Mapping[str, Any]], field: str) -> list[float]:
    out = []
    for inc in incidents:
        value = Incident(inc).status.get(field)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(float(value))
    return out


def _ordered_counts(counter: Counter[str], order: tuple[str, ...] = ()) -> dict[str, int]:
    """Counts in a stable order: known keys first in `order`, then the rest by name."""
    keys = [k for k in order if k in counter] + sorted(k for k in counter if k not in order)
    return {str(k): counter[k] for k in keys}  # plain str keys, also for the vocabulary's enums


def compute_stats(incidents: Sequence[Mapping[str, Any]], now: datetime, window: timedelta | None = None) -> dict[str, Any]:
    """Figures over the incidents created within `window` before `now` (all when None)."""
    if window is not None:
        since = now - window
        incidents = [i for i in incidents if (c := created_at(i)) is not None and c >= since]
    total = len(incidents)
    views = [Incident(i) for i in incidents]
    breached = sum(1 for v in views if v.sla.get("breached"))
    acknowledged = [v.body for v in views if was_acknowledged(v.status) is not False]
    return {
        "window": None if window is None else int(window.total_seconds()),
        "total": total,
        "active": sum(1 for v in views if v.active),
        "byState": _ordered_counts(Counter(v.state for v in views), STATES),
        "bySeverity": _ordered_counts(Counter(v.severity for v in views), SEVERITIES),
        "byService": _ordered_counts(Counter(v.service for v in views)),
        # MTTA only of incidents someone acknowledged: an auto-resolved one has no acknowledgement.
        "mtta": summarize(_seconds(acknowledged, "mttaSeconds")),
        "unacknowledged": sum(1 for v in views if was_acknowledged(v.status) is False),
        "mttr": summarize(_seconds(incidents, "mttrSeconds")),
        "slaBreached": breached,
        "slaBreachRate": breached / total if total else None,
    }


def render_stats_table(stats: Mapping[str, Any]) -> str:
    """Plain-text report of `compute_stats` output, for the terminal."""
    window = stats.get("window")
    lines = [f"Incidents: {stats['total']}" + (f" (last {format_duration(window)})" if window else " (all time)"),
             f"Active: {stats['active']}", ""]
    for title, key in (("STATE", "byState"), ("SEVERITY", "bySeverity"), ("SERVICE", "byService")):
        rows = [[k or "(none)", str(v)] for k, v in stats[key].items()]
        lines += _table([title, "COUNT"], rows) + [""]
    rows = []
    for label, key in (("MTTA", "mtta"), ("MTTR", "mttr")):
        s = stats[key]
        rows.append([label, str(s["count"]), format_duration(s["mean"]), format_duration(s["p50"]),
                     format_duration(s["p90"])])
    lines += _table(["METRIC", "COUNT", "MEAN", "P50", "P90"], rows) + [""]
    rate = stats.get("slaBreachRate")
    shown = "-" if rate is None else f"{rate * 100:.1f}%"
    lines.append(f"SLA breached: {stats['slaBreached']} of {stats['total']} ({shown})")
    if stats.get("unacknowledged"):
        lines.append(f"Resolved without acknowledgement (not in MTTA): {stats['unacknowledged']}")
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns separated by three spaces, like kubectl."""
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    return ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip() for row in [header] + rows]


def daily_series(incidents: Sequence[Mapping[str, Any]], now: datetime, days: int) -> list[dict[str, Any]]:
    """One entry per UTC day of the last `days` days (oldest first), of the incidents created
    that day: `day`, `total`, `bySeverity` counts, `mtta`/`mttr` mean seconds by severity
    (only incidents someone acknowledged count for MTTA) and `breached`."""
    if days < 1:
        raise ValueError("days must be at least 1")
    first = (now - timedelta(days=days - 1)).date()
    buckets: list[dict[str, Any]] = []
    for n in range(days):
        day = first + timedelta(days=n)
        buckets.append({"day": day.isoformat(), "total": 0, "breached": 0,
                        "bySeverity": {str(s): 0 for s in SEVERITIES}, "_mtta": {}, "_mttr": {}})
    for inc in incidents:
        created = created_at(inc)
        if created is None:
            continue
        index = (created.date() - first).days
        if not 0 <= index < days:
            continue
        bucket = buckets[index]
        view = Incident(inc)
        severity, status = str(view.severity), view.status
        bucket["total"] += 1
        bucket["bySeverity"][severity] = bucket["bySeverity"].get(severity, 0) + 1
        if view.sla.get("breached"):
            bucket["breached"] += 1
        if was_acknowledged(status) is not False and _number(status.get("mttaSeconds")) is not None:
            bucket["_mtta"].setdefault(severity, []).append(float(status["mttaSeconds"]))
        if _number(status.get("mttrSeconds")) is not None:
            bucket["_mttr"].setdefault(severity, []).append(float(status["mttrSeconds"]))
    for bucket in buckets:
        for key in ("mtta", "mttr"):
            values: dict[str, list[float]] = bucket.pop("_" + key)
            bucket[key] = {sev: sum(v) / len(v) for sev, v in values.items()}
    return buckets


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def noisiest_services(incidents: Sequence[Mapping[str, Any]], limit: int = 10) -> list[tuple[str, int]]:
    """(service, incident count), most incidents first, at most `limit`."""
    counts = Counter(Incident(i).service for i in incidents)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def remediation_outcomes(incidents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Remediation attempts by result, and the success rate of those that ended
    (`DryRun` and the ones still in progress are not counted in the rate)."""
    results: Counter[str] = Counter()
    for inc in incidents:
        for attempt in Incident(inc).attempts:
            results[str(attempt.get("result") or "")] += 1
    done = (AttemptResult.SUCCEEDED, *ENDED_UNSUCCESSFULLY)
    ended = sum(n for r, n in results.items() if r in done)
    return {"byResult": dict(sorted(results.items())), "ended": ended,
            "successRate": results[AttemptResult.SUCCEEDED] / ended if ended else None}
