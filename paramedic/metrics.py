"""Every Prometheus metric Paramedic exports, in one place.

Both processes (operator and webhook) import this module and expose the default
registry in the Prometheus text format.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest, start_http_server

# Incident lifetimes span seconds to days.
_DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200)

INCIDENTS_CREATED = Counter("paramedic_incidents_created_total", "Incidents created", ["severity", "source"])
INCIDENTS_OPEN = Gauge("paramedic_incidents_open", "Incidents not yet resolved", ["severity"])
INCIDENT_MTTA = Histogram("paramedic_incident_mtta_seconds", "Time from creation to acknowledgement",
                          ["severity"], buckets=_DURATION_BUCKETS)
INCIDENT_MTTR = Histogram("paramedic_incident_mttr_seconds", "Time from creation to resolution",
                          ["severity"], buckets=_DURATION_BUCKETS)

ALERTS_RECEIVED = Counter("paramedic_alerts_received_total", "Alerts received by the webhook", ["status"])
ALERTS_DEDUPLICATED = Counter("paramedic_alerts_deduplicated_total", "Alerts already recorded (re-sends, HA duplicates)")
ALERT_PROCESSING = Histogram("paramedic_alert_processing_seconds", "Time to persist one webhook request",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ALERTS_ROUTED = Counter("paramedic_alerts_routed_total",
                        "Alerts by the rule that gave them a MonitoredService (none: unmanaged in their own "
                        "namespace; rehomed: recorded in the token's home namespace instead)", ["rule"])
ALERTS_REHOMED = Counter("paramedic_alerts_rehomed_total",
                         "Alerts recorded unmanaged in their token's home namespace instead of the one they claim "
                         "(out_of_scope: the token may not write there; forbidden: the receiver may not)", ["reason"])
POD_OWNER_LOOKUPS = Counter("paramedic_pod_owner_lookups_total",
                            "Pod owner lookups of alert routing (cached, found, unowned, gone, forbidden)", ["result"])

REMEDIATIONS = Counter("paramedic_remediations_total", "Remediation attempts", ["action", "result"])
REMEDIATION_DURATION = Histogram("paramedic_remediation_duration_seconds", "Duration of remediation attempts",
                                 ["action"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))

NOTIFICATIONS_SENT = Counter("paramedic_notifications_sent_total", "Notification deliveries", ["channel", "result"])
ESCALATIONS = Counter("paramedic_escalations_total", "Escalation steps taken", ["team"])
EVENTS_DROPPED = Counter("paramedic_events_dropped_total",
                         "Kubernetes Events not posted: over PARAMEDIC_EVENTS_PER_SECOND")
SLA_BREACHES = Counter("paramedic_sla_breaches_total", "SLA breaches recorded", ["kind"])

KUBE_REQUESTS = Counter("paramedic_kube_api_requests_total", "Requests to the Kubernetes API server",
                        ["method", "resource", "code"])

PROBE_DURATION = Histogram("paramedic_probe_duration_seconds", "HTTP probe duration",
                           buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PROBE_SUCCESS = Gauge("paramedic_probe_success", "1 if the last probe succeeded", ["namespace", "service"])
OUTBOUND_REFUSED = Counter("paramedic_outbound_refused_total",
                           "Probe and hook requests refused by the outbound address rules, nothing sent",
                           ["kind", "reason"])
SHARDS_HELD = Gauge("paramedic_shards_held", "Shards this operator replica holds", ["replica"])
SERVICES_HANDLED = Gauge("paramedic_services_handled", "MonitoredServices in the shards this replica holds", ["replica"])
INCIDENTS_HANDLED = Gauge("paramedic_incidents_handled", "Incidents in the shards this replica holds", ["replica"])
SHARD_MOVES = Counter("paramedic_shard_moves_total", "Shards this replica took or handed over",
                      ["replica", "move"])
PROBE_LAG = Histogram("paramedic_probe_schedule_lag_seconds", "How late probes start against their schedule",
                      buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def serve(port: int, addr: str = "0.0.0.0") -> None:
    """Expose /metrics on its own port (the operator)."""
    if port:
        start_http_server(port, addr=addr)


def exposition() -> tuple[bytes, str]:
    """Body and content type for a /metrics route (the webhook)."""
    return generate_latest(), CONTENT_TYPE_LATEST
