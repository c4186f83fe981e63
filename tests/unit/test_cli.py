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


# --- what reaches the terminal: CR and alert values are shown, never obeyed ------------------------

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
CURSOR_UP = "\x1b[2A\x1b[2K"
TERMINAL = ("\x1b", "\x07", "\x9b", "\x9d", "\u202e", "\u2066", "\x7f", "\r", "\x00")


def hostile_incident() -> dict:
    inc = incident("open", timeline=[{"time": "t1", "type": "comment", "actor": f"mallory{OSC52}",
                                      "message": f"hidden{CURSOR_UP}all is fine"}],
                   evidence={"gatheredAt": "t", "target": "Deployment/api",
                             "events": [{"time": "t2", "object": "Pod/p", "reason": "BackOff\x9b2A", "count": 1,
                                         "message": "Back-off\r\x1b[1;1Hrestarting"}],
                             "logs": [{"pod": "p", "container": "app", "lines": f"line 1\n{OSC52}\x1b[3Aline 2\x00"}]},
                   hints=[{"summary": f"pay \u202eevil\u202c {OSC52}", "suggestedAction": "rollback", "evidence": []}])
    inc["spec"].update(title=f"api down {OSC52}\u2066x\u2069{CURSOR_UP}", assignee=f"eve{CURSOR_UP}@example.com",
                       description="first\n\x1b]8;;https://evil.example\x07link\x1b]8;;\x07")
    return inc


class FakeClient:
    def __init__(self, items):
        self.items = items

    def list(self, resource, namespace):
        return self.items

    def close(self):
        pass


@pytest.fixture
def hostile_cluster(monkeypatch):
    inc = hostile_incident()
    monkeypatch.setattr(cli, "default_namespace", lambda kubeconfig, context: "ns")
    monkeypatch.setattr(cli.Session, "client", property(lambda self: FakeClient([inc])))
    monkeypatch.setattr(cli.Session, "get_incident", lambda self, name: inc)
    return inc


@pytest.mark.parametrize("argv", [["show", "x"], ["list"], ["list", "-A"], ["report", "x"]])
def test_table_views_print_cr_values_without_terminal_controls(hostile_cluster, capsys, argv):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert not any(c in out for c in TERMINAL), repr(out)
    assert "52;c;" not in out and "[2A" not in out  # whole sequences go, not only their ESC
    if argv[0] != "list":
        assert "api down x" in out and "hidden" in out and "all is fine" in out


def test_show_keeps_the_layout_and_strips_every_kind_of_control(hostile_cluster, capsys):
    assert cli.main(["show", "x"]) == 0
    out = capsys.readouterr().out
    assert "Title:" in out and "api down x" in out
    assert "Description:\n  first\n  link" in out
    assert "mallory" in out and "hiddenall is fine" in out
    assert "pay evil" in out
    assert "event t2 Pod/p BackOff (x1): Back-off restarting" in out
    assert "    line 1\n" in out and "line 2" in out


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_machine_output_escapes_controls_and_keeps_the_data(hostile_cluster, capsys, fmt):
    import json

    import yaml
    for argv in (["show", "x", "-o", fmt], ["list", "-o", fmt]):
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        assert not any(c in out for c in TERMINAL), repr(out)
        data = json.loads(out) if fmt == "json" else yaml.safe_load(out)
        shown = data if argv[0] == "show" else data["items"][0]
        assert shown == hostile_cluster  # escaped, not lost


def test_plain_values_keep_their_unicode_in_machine_output():
    assert cli.dump({"t": "Zahlung fällt aus — 支付"}, "json") == '{\n  "t": "Zahlung fällt aus — 支付"\n}\n'
    assert cli.dump({"t": "Zahlung fällt aus — 支付"}, "yaml") == "t: Zahlung fällt aus — 支付\n"


def test_errors_naming_cr_values_are_clean_too(monkeypatch, capsys):
    def refuse(self, name):
        raise cli.CliError(f"incident {OSC52}{CURSOR_UP} refused")
    monkeypatch.setattr(cli, "default_namespace", lambda kubeconfig, context: "ns")
    monkeypatch.setattr(cli.Session, "get_incident", refuse)
    assert cli.main(["show", "x"]) == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err == "error: incident  refused\n"
    import sys
    assert not isinstance(sys.stdout, cli.PrintableStream)  # main puts the real streams back
