"""Post-mortem rendering: a golden file over a rich incident, plus focused checks.

Regenerate the golden file after an intended change with
`PARAMEDIC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_report.py`
and review the diff.
"""

import copy
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paramedic.domain import report

GOLDEN = Path(__file__).parent / "golden" / "postmortem.md"
NOW = datetime(2026, 3, 2, 9, 30, 0, tzinfo=UTC)

INCIDENT = {
    "apiVersion": "paramedic.dev/v1alpha1",
    "kind": "Incident",
    "metadata": {"name": "checkout-probe-3", "namespace": "shop", "creationTimestamp": "2026-03-01T10:00:00Z"},
    "spec": {
        "service": "checkout",
        "severity": "critical",
        "title": "checkout is down\n(probe)",
        "description": "probe_success == 0 for 1m\nHTTP 503 from /healthz",
        "source": "probe",
        "state": "closed",
        "assignee": "alice@example.com",
        "managed": True,
        "runbookURL": "https://runbooks.example.com/checkout",
        "labels": {"service": "checkout", "env": "prod"},
        "runbookSteps": [
            {"step": 1, "title": "Check the pool size", "author": "alice@example.com", "time": "2026-03-01T10:09:00Z",
             "note": "pool_size=0 | in the live config"},
            {"step": 3, "title": "Roll back the config", "author": "system:serviceaccount:ops:bot",
             "time": "2026-03-01T10:15:00Z"},
        ],
        "comments": [
            {"author": "alice@example.com", "time": "2026-03-01T10:10:00Z", "text": "It started with the 09:56 push."},
            {"author": "bob@example.com", "time": "2026-03-01T10:30:00Z", "text": "Mitigated\nwatching for 30 min"},
        ],
        "rca": {
            "rootCause": "A bad config push set the DB pool size to 0.",
            "contributingFactors": "No canary for config changes.\nAlert thresholds too loose.",
            "correctiveActions": "Rolled back the config; restarted pods.",
        },
    },
    "status": {
        "team": "payments",
        "createdAt": "2026-03-01T10:00:00Z",
        "acknowledgedAt": "2026-03-01T10:07:30Z",
        "investigatingAt": "2026-03-01T10:08:00Z",
        "mitigatedAt": "2026-03-01T10:20:00Z",
        "resolvedAt": "2026-03-01T11:05:00Z",
        "closedAt": "2026-03-02T09:00:00Z",
        "mttaSeconds": 450,
        "mttrSeconds": 3900,
        "escalationLevel": 2,
        "sla": {"acknowledgeMinutes": 5, "resolveMinutes": 60, "acknowledgeBy": "2026-03-01T10:05:00Z",
                "resolveBy": "2026-03-01T11:00:00Z", "acknowledgeBreached": True, "resolveBreached": True,
                "breached": True},
        "alerts": [
            {"key": "fp1:2026-03-01T09:59:00Z", "fingerprint": "fp1", "alertname": "CheckoutDown",
             "status": "resolved", "startsAt": "2026-03-01T09:59:00Z", "resolvedAt": "2026-03-01T11:04:00Z",
             "summary": "checkout | 5xx rate > 50%"},
            {"key": "fp2:2026-03-01T10:01:00Z", "fingerprint": "fp2", "alertname": "HighLatency",
             "status": "firing", "startsAt": "2026-03-01T10:01:00Z", "summary": "p99 > 2s"},
        ],
        "evidence": {
            "gatheredAt": "2026-03-01T10:04:00Z", "target": "Deployment/checkout", "truncated": False,
            "rollouts": [
                {"ref": "rollout/7", "revision": 7, "previousRevision": 6, "current": True, "name": "checkout-7f9",
                 "time": "2026-03-01T09:56:00Z", "images": ["shop/checkout:1.5"],
                 "changes": ["image app: shop/checkout:1.4 → shop/checkout:1.5", "env app: +POOL_SIZE"]},
                {"ref": "rollout/6", "revision": 6, "current": False, "name": "checkout-5c4",
                 "time": "2026-02-20T12:00:00Z", "images": ["shop/checkout:1.4"], "changes": []},
            ],
            "containers": [
                {"ref": "pod/checkout-7f9-x/app", "pod": "checkout-7f9-x", "container": "app", "node": "node-a",
                 "revision": 7, "ready": False, "restarts": 6, "state": "Waiting", "reason": "CrashLoopBackOff",
                 "lastReason": "Error", "lastExitCode": 1, "memoryLimit": "256Mi",
                 "time": "2026-03-01T10:03:40Z"},
            ],
            "events": [
                {"ref": "event/checkout-7f9-x.1", "time": "2026-03-01T10:03:50Z", "object": "Pod/checkout-7f9-x",
                 "reason": "BackOff", "message": "Back-off restarting failed container app | pipe", "count": 14},
            ],
            "nodes": [{"ref": "node/node-a", "name": "node-a", "ready": True, "problems": [],
                       "time": "2026-02-01T00:00:00Z"}],
            "logs": [{"ref": "log/checkout-7f9-x/app", "pod": "checkout-7f9-x", "container": "app", "previous": True,
                      "time": "2026-03-01T10:04:00Z", "lines": "starting\nKeyError: 'POOL_SIZE'\n"}],
        },
        "seenBefore": [
            {"name": "checkout-down-3", "createdAt": "2026-02-20T12:05:00Z", "state": "closed",
             "title": "checkout down", "rootCause": "release 1.4 shipped without its migration"},
            {"name": "checkout-down-2", "createdAt": "2026-01-02T08:00:00Z", "state": "resolved",
             "title": "checkout slow", "probableCause": "container app OOMKilled"},
        ],
        "hints": [
            {"rule": "bad-rollout", "suggestedAction": "rollback",
             "summary": "Deployment/checkout rolled out revision 7 (from 6) 4 min before the incident opened: "
                        "image app: shop/checkout:1.4 → shop/checkout:1.5; since then 1 container(s) fail: "
                        "CrashLoopBackOff, exit code 1",
             "evidence": ["rollout/7", "pod/checkout-7f9-x/app"]},
        ],
        "remediation": {
            "phase": "Succeeded",
            "message": "service recovered after attempt 2",
            "attempts": [
                {"id": "a1", "index": 0, "action": "restart", "startedAt": "2026-03-01T10:01:00Z",
                 "finishedAt": "2026-03-01T10:03:00Z", "result": "Failed", "message": "rollout timed out"},
                {"id": "a2", "index": 1, "action": "ansible", "detail": "restart-deployment.yml",
                 "startedAt": "2026-03-01T10:06:00Z", "finishedAt": "2026-03-01T10:09:00Z",
                 "result": "Succeeded", "rc": 0, "outputTail": "PLAY RECAP\nlocalhost : ok=3 changed=1"},
            ],
        },
        "notifications": [
            {"key": "opened/email", "event": "opened", "channel": "email", "time": "2026-03-01T10:00:05Z",
             "recipients": ["ops@example.com", "alice@example.com"], "result": "sent", "attempts": 1},
            {"key": "escalated-1/slack", "event": "escalated", "channel": "slack", "time": "2026-03-01T10:05:01Z",
             "recipients": [], "result": "failed", "attempts": 3, "error": "HTTP 500 | upstream"},
        ],
        "timeline": [
            {"time": "2026-03-01T10:00:00.000Z", "type": "opened", "actor": "paramedic/operator",
             "message": "3 consecutive probe failures: HTTP 503"},
            {"time": "2026-03-01T10:01:00.120Z", "type": "remediation", "actor": "paramedic/operator",
             "message": "restart deployment/checkout"},
            {"time": "2026-03-01T10:05:01.000Z", "type": "escalated", "actor": "paramedic/operator",
             "message": "level 2: next → bob@example.com"},
            {"time": "2026-03-01T10:07:30.000Z", "type": "acknowledged", "actor": "alice@example.com",
             "message": "state open → acknowledged"},
            {"time": "2026-03-01T10:30:00.000Z", "type": "note", "actor": "alice@example.com",
             "message": "grep 'pool' | wc -l said 0\nsecond line with a \\ backslash"},
            {"time": "2026-03-01T11:05:00.000Z", "type": "resolved", "actor": "paramedic/operator",
             "message": "probe healthy again"},
        ],
    },
}


def test_golden_postmortem():
    text = report.render_postmortem(INCIDENT, NOW)
    if os.environ.get("PARAMEDIC_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_sections_in_order():
    text = report.render_postmortem(INCIDENT, NOW)
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Summary", "## Impact", "## Timeline", "## Alerts", "## Probable causes", "## Seen before",
                        "## Evidence",
                        "## Remediation attempts",
                        "## Runbook steps applied", "## Comments",
                        "## Notifications", "## Metrics", "## Root cause analysis", "## Runbook"]


@pytest.mark.parametrize("value,expected", [
    ("a|b", "a\\|b"), ("one\ntwo", "one<br>two"), ("x\r\ny", "x<br>y"), ("back\\slash", "back\\\\slash"),
    (None, "-"), ("", "-"), ([], "-"), (["a", "b"], "a, b"), (True, "yes"), (0, "0"),
])
def test_escape_cell(value, expected):
    assert report.escape_cell(value) == expected


def test_every_table_row_has_the_header_column_count():
    text = report.render_postmortem(INCIDENT, NOW)
    lines = text.splitlines()
    tables, rows, checked = 0, 0, set()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("| ---"):
            tables += 1
            width = _cells(line)
            assert _cells(lines[i + 1]) == width, lines[i + 1]
            checked |= {i, i + 1}
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                assert _cells(lines[j]) == width, lines[j]
                checked.add(j)
                rows += 1
                j += 1
    # The full incident fills every section: its tables are found and have rows, and no line of
    # a table escaped the check (a header the scan did not recognise).
    assert tables >= 10 and rows >= tables
    assert [line for i, line in enumerate(lines) if line.startswith("|") and i not in checked] == []


def _cells(line: str) -> int:
    # Unescaped pipes separate cells.
    count, escaped = 0, False
    for ch in line:
        if ch == "|" and not escaped:
            count += 1
        escaped = ch == "\\" and not escaped
    return count - 1


def test_minimal_open_incident_says_what_is_missing():
    inc = {"metadata": {"name": "x", "namespace": "ns", "creationTimestamp": "2026-03-02T09:00:00Z"},
           "spec": {"service": "api", "title": "api slow", "state": "open"}}
    text = report.render_postmortem(inc, NOW)
    assert "| Duration | 30m so far (not resolved) |" in text
    assert "| Assignee | unassigned |" in text
    assert text.count(report.NOT_WRITTEN) == 4
    for phrase in ("_No timeline entries._", "_No alerts._", "_No remediation attempted._",
                   "_No notifications._", "_No runbook linked._", "_No description recorded._"):
        assert phrase in text


def test_unmanaged_incident_is_marked():
    inc = copy.deepcopy(INCIDENT)
    inc["spec"]["managed"] = False
    assert "| Managed | no (matched no MonitoredService; never remediated) |" in report.render_postmortem(inc, NOW)


def test_resolved_without_recorded_time_does_not_claim_ongoing():
    inc = {"metadata": {"name": "x", "creationTimestamp": "2026-03-02T09:00:00Z"},
           "spec": {"service": "api", "title": "api slow", "state": "closed"}}
    assert "| Duration | - (resolution time not recorded) |" in report.render_postmortem(inc, NOW)


def test_hostile_values_arrive_printable_and_the_runbook_cannot_become_markup():
    inc = copy.deepcopy(INCIDENT)
    inc["spec"]["title"] = "down \x1b]52;c;cm0gLXJmIH4=\x07\x1b[2A\u202eevil"
    inc["spec"]["runbookURL"] = "https://r.example.com/x>[click](https://evil.example)<"
    inc.setdefault("status", {})["timeline"] = [{"time": "t", "type": "comment", "actor": "m\x9b2A",
                                                 "message": "log\x1b[1;1Hline"}]
    inc["status"]["evidence"] = {"target": "Deployment/checkout", "rollouts": [
        {"ref": "rollout/2", "revision": 2, "previousRevision": 1, "current": True, "time": "t",
         "changes": ["args app: --db-password (value changed)"]}]}
    text = report.render_postmortem(inc, NOW)
    assert not any(c in text for c in ("\x1b", "\x07", "\x9b", "\u202e")) and "52;c;" not in text
    assert "# Post-mortem: down evil" in text and "logline" in text
    assert "<https://r.example.com/x%3E[click](https://evil.example)%3C>" in text
    assert "args app: --db-password (value changed)" in text
    inc["spec"]["runbookURL"] = "javascript:alert(`1`)"
    assert "Not an http(s) link: `javascript:alert(1)`" in report.render_postmortem(inc, NOW)
