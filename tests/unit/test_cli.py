"""The CLI's pure parts: parsing, formatting, views. The commands run end to end in tests/e2e/test_cli.py."""

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from paramedic import cli

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("text,expected", [
    ("7d", timedelta(days=7)), ("12h", timedelta(hours=12)), ("30m", timedelta(minutes=30)),
    ("2w", timedelta(weeks=2)), ("1d12h", timedelta(days=1, hours=12)), ("90s", timedelta(seconds=90)),
    ("all", None), ("0", None),
])
def test_parse_window(text, expected):
    assert cli.parse_window(text) == expected


@pytest.mark.parametrize("text", ["7", "7x", "d7", "1d 2h", "-1d"])
def test_parse_window_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="invalid window"):
        cli.parse_window(text)


@pytest.mark.parametrize("seconds,text", [
    (-5, "0s"), (45, "45s"), (119, "119s"), (120, "2m"), (330, "5m30s"), (3000, "50m"), (3 * 3600, "3h"),
    (3 * 3600 + 600, "3h10m"), (20 * 3600, "20h"), (50 * 3600, "2d2h"), (30 * 86400, "30d"),
    (800 * 86400, "2y70d"),
])
def test_human_age_like_kubectl(seconds, text):
    assert cli.human_age(seconds) == text


def test_parse_labels():
    assert cli.parse_labels(["a=b", "c=d=e", "empty="]) == {"a": "b", "c": "d=e", "empty": ""}
    with pytest.raises(cli.CliError) as err:
        cli.parse_labels(["novalue"])
    assert err.value.code == cli.EXIT_USAGE


def incident(state="open", **status):
    return {"metadata": {"name": "x", "namespace": "ns", "creationTimestamp": "2026-03-01T11:00:00Z"},
            "spec": {"service": "api", "title": "api down", "state": state}, "status": status}


def test_sla_left():
    deadlines = {"acknowledgeBy": "2026-03-01T12:05:00Z", "resolveBy": "2026-03-01T13:00:00Z"}
    assert cli.sla_left(incident(sla=deadlines), NOW) == "5m"
    assert cli.sla_left(incident("acknowledged", sla=deadlines, acknowledgedAt="2026-03-01T11:01:00Z"), NOW) == "60m"
    assert cli.sla_left(incident(sla=deadlines), NOW + timedelta(minutes=6)) == "breached"
    assert cli.sla_left(incident(sla={**deadlines, "acknowledgeBreached": True, "resolveBreached": True,
                                      "breached": True}), NOW) == "breached"
    assert cli.sla_left(incident("resolved", sla=deadlines), NOW) == "-"
    assert cli.sla_left(incident(), NOW) == "-"


def test_describe_shows_fields_and_timeline():
    inc = incident("acknowledged", createdAt="2026-03-01T11:00:00Z", mttaSeconds=300,
                   timeline=[{"time": "t1", "type": "opened", "actor": "op", "message": "multi\nline"}])
    inc["spec"]["description"] = "first\nsecond"
    text = cli.describe(inc, NOW)
    assert "Name:" in text and "State:" in text and "acknowledged" in text
    assert "MTTA:" in text and "5m (300 s)" in text
    assert "Root cause:" in text and "<not written>" in text
    assert "Description:\n  first\n  second" in text
    assert "multi line" in text


def test_describe_shows_probable_causes_and_evidence():
    inc = incident("open", hints=[{"summary": "Deployment/api rolled out revision 2", "suggestedAction": "rollback",
                                   "evidence": ["rollout/2", "pod/p/app"]}],
                   evidence={"gatheredAt": "2026-03-01T11:59:00Z", "target": "Deployment/api", "error": "boom",
                             "rollouts": [{"revision": 2, "previousRevision": 1, "current": True, "time": "t",
                                           "changes": ["image app: a → b"]},
                                          {"revision": 1, "time": "t0", "changes": []}],
                             "containers": [{"pod": "p", "container": "app", "ready": False, "restarts": 3,
                                             "state": "Waiting", "reason": "CrashLoopBackOff", "lastReason": "Error",
                                             "lastExitCode": 1, "memoryLimit": "64Mi", "node": "n1"}],
                             "events": [{"time": "t2", "object": "Pod/p", "reason": "BackOff", "count": 9,
                                         "message": "Back-off\nrestarting"}],
                             "nodes": [{"name": "n1", "problems": ["MemoryPressure"]}]})
    text = cli.describe(inc, NOW)
    assert "Probable causes:\n  1. Deployment/api rolled out revision 2\n" in text
    assert "suggested: rollback; evidence: rollout/2, pod/p/app" in text
    assert "Evidence (Deployment/api, gathered 2026-03-01T11:59:00Z; last gathering failed: boom):" in text
    assert "rollout 2 (current) at t: image app: a → b" in text and "rollout 1 at t0: first revision" in text
    assert "CrashLoopBackOff" in text and "Error (1)" in text and "64Mi" in text
    assert "event t2 Pod/p BackOff (x9): Back-off restarting" in text
    assert "node n1: MemoryPressure" in text


def test_oncall_view():
    schedule = {"metadata": {"name": "payments", "namespace": "ns"},
                "spec": {"participants": [{"name": "Alice", "email": "alice@example.com"},
                                          {"email": "bob@example.com"}],
                         "rotation": {"start": "2026-03-01T09:00:00Z", "lengthHours": 24}}}
    view = cli.oncall_view(schedule, NOW)
    assert view == {"team": "payments", "namespace": "ns", "onCall": {"name": "Alice", "email": "alice@example.com"},
                    "override": False, "nextHandoff": "2026-03-02T09:00:00Z",
                    "next": {"name": "bob@example.com", "email": "bob@example.com"}}
    broken = cli.oncall_view({"metadata": {"name": "x"}, "spec": {"participants": []}}, NOW)
    assert "error" in broken


def test_rca_template_round_trips_multiline():
    import yaml
    inc = incident()
    inc["spec"]["rca"] = {"rootCause": "line one\nline two", "correctiveActions": "restart"}
    text = cli.rca_template(inc, "x")
    assert "rootCause: |" in text
    data = yaml.safe_load(text)
    assert data == {"rootCause": "line one\nline two", "contributingFactors": "", "correctiveActions": "restart",
                    "preventionActions": ""}


@pytest.mark.parametrize("argv", [[], ["nope"], ["show"], ["stats", "--window", "7x"], ["fire", "--service", "a"],
                                  ["list", "-o", "wide"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_global_flags_work_before_and_after_the_command():
    parser = cli.build_parser()
    a = parser.parse_args(["-n", "shop", "list"])
    b = parser.parse_args(["list", "-n", "shop", "-o", "json"])
    c = parser.parse_args(["list"])
    assert a.namespace == "shop" and a.output == "table"
    assert b.namespace == "shop" and b.output == "json"
    assert c.namespace is None and c.all_namespaces is False and c.kubeconfig == ""
