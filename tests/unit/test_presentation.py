"""domain/presentation: the one way durations, SLA time left and on-call are shown (CLI, console, reports),
and the console's and receiver's URL maps kept as they were before the blueprints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from paramedic import kube
from paramedic.domain import presentation
from paramedic.domain.presentation import format_duration, on_call, seconds_and_words, short_age, sla_left

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DEADLINES = {"acknowledgeBy": "2026-03-01T12:05:00Z", "resolveBy": "2026-03-01T13:00:00Z"}


def incident(state: str = "open", **status: object) -> dict:
    return {"metadata": {"name": "x", "namespace": "ns"}, "spec": {"state": state}, "status": status}


@pytest.mark.parametrize("seconds,text", [
    (None, "-"), (0, "0s"), (45, "45s"), (725, "12m 5s"), (600, "10m"), (12000, "3h 20m"), (3 * 86400 + 4 * 3600,
                                                                                         "3d 4h"), (-90, "-1m 30s"),
])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_the_callers_share_one_implementation():
    from paramedic import cli
    from paramedic.domain import stats

    assert stats.format_duration is format_duration
    assert cli.human_age is short_age


def test_seconds_and_words():
    assert seconds_and_words(None) is None
    assert seconds_and_words(725) == "12m 5s (725 s)"
    assert seconds_and_words(330, short_age) == "5m30s (330 s)"


def test_sla_left_while_a_deadline_runs():
    left = sla_left(incident(sla=DEADLINES), NOW)
    assert left == presentation.SlaLeft(active=True, seconds=300.0, breached=False)
    assert left.text() == "5m" and left.text(short_age) == "5m" and left.text(suffix=" left") == "5m left"


def test_sla_left_breached_and_stopped():
    passed = sla_left(incident(sla=DEADLINES), NOW + timedelta(minutes=6))
    assert passed.breached and passed.seconds is not None and passed.seconds < 0 and passed.text() == "breached"
    flagged = sla_left(incident("resolved", sla={**DEADLINES, "breached": True}), NOW)
    assert flagged == presentation.SlaLeft(active=False, seconds=None, breached=True)
    assert flagged.text() == "breached"
    assert sla_left(incident("resolved", sla=DEADLINES), NOW).text() == "-"
    assert sla_left(incident(), NOW) == presentation.SlaLeft(active=True, seconds=None, breached=False)


def test_on_call_now_next_and_invalid():
    spec = {"participants": [{"name": "Ana", "email": "ana@example.com"}, {"email": "bo@example.com"}],
            "rotation": {"start": "2026-03-01T09:00:00Z", "lengthHours": 24}}
    who = on_call(spec, NOW)
    assert who.now == {"name": "Ana", "email": "ana@example.com"} and not who.override and not who.error
    assert who.handoff == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert who.next == {"name": "bo@example.com", "email": "bo@example.com"}
    broken = on_call({"participants": []}, NOW)
    assert broken.error and broken.now is None


def test_user_name_reads_the_self_subject_review():
    client = kube.KubeClient(kube.Connection("https://127.0.0.1:9", False, lambda: None))
    try:
        sent: list[tuple] = []
        answers: list[object] = [{"status": {"userInfo": {"username": "ana@example.com"}}},
                                 {}, {"status": None}, {"status": {"userInfo": None}}, None]

        def create(res, body, namespace=None):
            sent.append((res, body))
            return answers.pop(0)
        client.create = create  # type: ignore[method-assign]
        assert client.user_name() == "ana@example.com"
        assert sent[0][0] is kube.SELF_SUBJECT_REVIEWS
        assert [client.user_name() for _ in range(4)] == ["", "", "", ""]
    finally:
        client.close()


CONSOLE_RULES = {
    ("/", "GET"), ("/healthz", "GET"), ("/signin", "GET"), ("/signin", "POST"), ("/signout", "POST"),
    ("/incidents", "GET"), ("/incidents/rows", "GET"), ("/ns/<ns>/incidents/<name>", "GET"),
    ("/ns/<ns>/incidents/<name>/comment", "POST"), ("/ns/<ns>/incidents/<name>/step", "POST"),
    ("/ns/<ns>/incidents/<name>/state", "POST"), ("/ns/<ns>/incidents/<name>/assign", "POST"),
    ("/ns/<ns>/incidents/<name>/rca", "POST"), ("/ns/<ns>/incidents/<name>/report.md", "GET"),
    ("/services", "GET"), ("/ns/<ns>/services/<name>/pause", "POST"), ("/oncall", "GET"), ("/insights", "GET"),
    ("/static/<path:filename>", "GET"),
}
WEBHOOK_RULES = {("/api/v1/alertmanager", "POST"), ("/api/v1/alerts", "POST"), ("/healthz", "GET"),
                 ("/readyz", "GET"), ("/metrics", "GET"), ("/static/<path:filename>", "GET")}


def _rules(app) -> set[tuple[str, str]]:
    return {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods - {"HEAD", "OPTIONS"}}


def test_blueprints_keep_every_url_and_method():
    from paramedic.console.app import create_app as console_app
    from paramedic.settings import Settings
    from paramedic.webhook.app import create_app as webhook_app

    conn = kube.Connection("https://127.0.0.1:9", False, lambda: None)
    console = console_app(Settings(), conn, secret=b"k" * 32, store=object())  # type: ignore[arg-type]
    assert _rules(console) == CONSOLE_RULES
    assert set(console.blueprints) == {"auth", "incidents", "services", "oncall", "insights"}
    client = kube.KubeClient(conn)
    try:
        receiver = webhook_app(Settings(webhook_insecure=True), client)
        assert _rules(receiver) == WEBHOOK_RULES
        assert set(receiver.blueprints) == {"alerts", "health"}
    finally:
        client.close()
