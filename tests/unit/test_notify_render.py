from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain import notify_render as nr
from paramedic.domain.notify_render import DeliveryResult, Notification

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def incident(**spec) -> dict:
    body = {
        "service": "checkout",
        "severity": "critical",
        "title": "checkout is down",
        "description": "probe_success == 0 for 1m",
        "state": "open",
        "assignee": "alice@example.com",
        "runbookURL": "https://runbooks.example.com/checkout",
    }
    body.update(spec)
    return {"apiVersion": "paramedic.dev/v1alpha1", "kind": "Incident",
            "metadata": {"name": "checkout-7f3a", "namespace": "shop"}, "spec": body}


def note(event: str = "opened", detail: str = "3 consecutive probe failures: HTTP 503", **spec) -> Notification:
    return nr.notification_from_incident(incident(**spec), event, detail,
                                         ["alice@example.com", "ops@example.com"], "https://grafana.example.com/d/p")


def parse(msg) -> email.message.EmailMessage:
    """Round-trip through bytes, as the receiving server sees it."""
    return email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)


def parts(msg) -> tuple[str, str]:
    parsed = parse(msg)
    return (parsed.get_body(preferencelist=("plain",)).get_content(),
            parsed.get_body(preferencelist=("html",)).get_content())


def test_notification_from_incident_reads_the_cr_body():
    n = note("remediation", detail="restart succeeded")
    assert (n.incident_name, n.namespace, n.service, n.severity, n.state) == ("checkout-7f3a", "shop", "checkout",
                                                                              "critical", "open")
    assert n.title == "checkout is down" and n.assignee == "alice@example.com"
    assert n.runbook_url == "https://runbooks.example.com/checkout"
    assert n.detail == "restart succeeded" and n.dashboard_url == "https://grafana.example.com/d/p"
    with pytest.raises(ValueError, match="unknown notification event"):
        nr.notification_from_incident(incident(), "exploded", "", [])


def test_notification_from_incident_tolerates_missing_fields():
    n = nr.notification_from_incident({"metadata": {"name": "x", "namespace": "y"}, "spec": {}}, "opened", "", [])
    assert n.severity == "high" and n.state == "open" and n.assignee == "" and n.runbook_url == ""
    text = nr.render_text(n)
    assert "unassigned" in text and "none (set spec.runbookURL" in text


@pytest.mark.parametrize("event", nr.EVENTS)
def test_every_event_renders_both_parts_with_facts_runbook_and_commands(event):
    msg = nr.render_email(note(event, detail=f"what happened for {event}"), "Paramedic <paramedic@example.com>")
    assert msg.get_content_type() == "multipart/alternative"
    text, html = parts(msg)
    for body in (text, html):
        assert f"what happened for {event}" in body
        for fact in ("checkout-7f3a", "shop", "checkout", "critical", "open", "checkout is down", "alice@example.com",
                     "probe_success == 0 for 1m"):
            assert fact in body
        assert "https://runbooks.example.com/checkout" in body
        assert "https://grafana.example.com/d/p" in body
        for verb in ("ack", "resolve", "report"):
            assert f"kubectl paramedic {verb} checkout-7f3a -n shop" in body
    assert '<a href="https://runbooks.example.com/checkout">' in html
    assert "[CRITICAL]" in msg["Subject"] and "checkout is down" in msg["Subject"]
    assert "shop/checkout-7f3a" in msg["Subject"]


def test_subjects_differ_per_event():
    subjects = {nr.render_subject(note(e)) for e in nr.EVENTS}
    assert len(subjects) == len(nr.EVENTS)
    assert nr.render_subject(note("sla_breach")).startswith("[Paramedic] [CRITICAL] SLA breached:")


def test_headers_addresses_and_auto_submitted():
    msg = parse(nr.render_email(note(), "Paramedic <paramedic@example.com>"))
    assert msg["From"] == "Paramedic <paramedic@example.com>"
    assert [a.addr_spec for a in msg["To"].addresses] == ["alice@example.com", "ops@example.com"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Paramedic-Incident"] == "shop/checkout-7f3a"
    assert msg["X-Paramedic-Event"] == "opened"


def test_title_with_crlf_cannot_inject_a_header():
    hostile = "down\r\nBcc: evil@x\r\nX-Evil: 1\n\nbody"
    msg = nr.render_email(note(title=hostile), "paramedic@example.com")
    raw = msg.as_bytes()
    parsed = parse(msg)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    names = [line.split(b":", 1)[0] for line in header_block.split(b"\r\n") if line and not line[:1].isspace()]
    assert b"Bcc" not in names and b"X-Evil" not in names
    assert "\r" not in parsed["Subject"] and "\n" not in parsed["Subject"]
    assert "Bcc: evil@x" in parsed["Subject"]  # kept as harmless text on one line
    # The text part shows the title on one line too, so it cannot fake body structure.
    text, _ = parts(msg)
    assert "Title:     down Bcc: evil@x X-Evil: 1 body" in text


def test_hostile_sender_and_recipients_are_refused_or_dropped():
    with pytest.raises(ValueError, match="sender"):
        nr.render_email(note(), "not an address")
    n = Notification(**{**note().__dict__, "recipients": ["ok@example.com", "x@y\r\nBcc: evil@x", "", "a,b@c"]})
    msg = parse(nr.render_email(n, "paramedic@example.com"))
    assert [a.addr_spec for a in msg["To"].addresses] == ["ok@example.com"]
    with pytest.raises(ValueError, match="no valid recipient"):
        nr.render_email(Notification(**{**note().__dict__, "recipients": ["bad"]}), "paramedic@example.com")


def test_subject_is_bounded():
    msg = nr.render_email(note(title="x" * 5000), "paramedic@example.com")
    assert len(str(msg["Subject"])) <= nr.SUBJECT_LIMIT
    assert str(msg["Subject"]).endswith("…")


def test_html_is_escaped_and_unsafe_links_are_not_linked():
    n = note(title="<script>alert(1)</script>", description="<img src=x onerror=alert(1)>",
             runbookURL="javascript:alert(1)", detail='"><b>x</b>')
    html = nr.render_html(n)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and "<b>x</b>" not in html
    assert "javascript:" not in html
    assert "none (set spec.runbookURL" in html
    text = nr.render_text(n)
    assert "<script>alert(1)</script>" in text  # the text part is verbatim


def test_non_ascii_title_survives_encoding():
    msg = parse(nr.render_email(note(title="Zahlung fällt aus — 支付"), "paramedic@example.com"))
    assert "Zahlung fällt aus — 支付" in msg["Subject"]
    text, html = parts(msg)
    assert "Zahlung fällt aus — 支付" in text and "Zahlung fällt aus — 支付" in html


def test_slack_body():
    body = nr.render_slack(note("escalated", detail="level 2: paging bob@example.com <!channel>"))
    assert "checkout is down" in body["text"] and "shop/checkout-7f3a" in body["text"]
    blocks = body["blocks"]
    assert blocks[0]["type"] == "header" and len(blocks[0]["text"]["text"]) <= 150
    assert blocks[1]["text"]["text"] == "level 2: paging bob@example.com &lt;!channel&gt;"
    fields = " ".join(f["text"] for f in blocks[2]["fields"])
    assert "<https://runbooks.example.com/checkout|open runbook>" in fields
    assert "alice@example.com" in fields and "critical" in fields
    context = blocks[3]["elements"][0]["text"]
    assert "kubectl paramedic ack checkout-7f3a -n shop" in context
    long = nr.render_slack(note(detail="y" * 10000))
    assert len(long["blocks"][1]["text"]["text"]) <= 3000


def test_webhook_body():
    body = nr.render_webhook(note("resolved", detail="probe healthy again"))
    assert body["event"] == "resolved" and body["detail"] == "probe healthy again"
    assert body["incident"] == {
        "name": "checkout-7f3a", "namespace": "shop", "service": "checkout", "severity": "critical",
        "state": "open", "title": "checkout is down", "description": "probe_success == 0 for 1m",
        "assignee": "alice@example.com", "runbookURL": "https://runbooks.example.com/checkout",
    }
    assert body["commands"]["report"] == "kubectl paramedic report checkout-7f3a -n shop"
    assert body["recipients"] == ["alice@example.com", "ops@example.com"]


def test_recipients_dedup_order_and_validation():
    got = nr.recipients_for("opened", "Alice@Example.com",
                            ["ops@example.com", "alice@example.com", "", "not-an-address", "x@y\nBcc: z@w"],
                            ["ops@example.com", "boss@example.com", None, " sre@example.com "])
    assert got == ["Alice@Example.com", "ops@example.com", "boss@example.com", "sre@example.com"]
    assert nr.recipients_for("escalated", "", None, None, extra=["bob@example.com"]) == ["bob@example.com"]
    assert nr.recipients_for("resolved", "", [], []) == []


def test_notification_key():
    assert nr.notification_key("opened") == "opened"
    assert nr.notification_key("escalated", "2") == "escalated:2"
    assert nr.notification_key("remediation", "att-1 / x") == "remediation:att-1-x"
    assert nr.notification_key("sla_breach", "acknowledge") != nr.notification_key("sla_breach", "resolve")
    assert len(nr.notification_key("remediation", "z" * 500)) <= len("remediation:") + 63
    with pytest.raises(ValueError):
        nr.notification_key("nope")


def test_next_retry_schedule_backs_off_and_caps():
    delays = [(nr.next_retry_at(a, NOW) - NOW).total_seconds() for a in range(1, 12)]
    assert delays[:6] == [30, 60, 120, 240, 480, 900]
    assert all(d == 900 for d in delays[5:])
    assert (nr.next_retry_at(1000, NOW) - NOW) == timedelta(minutes=15)
    assert not nr.retries_exhausted(nr.MAX_DELIVERY_ROUNDS - 1) and nr.retries_exhausted(nr.MAX_DELIVERY_ROUNDS)


def test_record_delivery_sent_once_and_final():
    key = nr.notification_key("opened")
    assert nr.needs_delivery([], key, "email", NOW)
    entries = nr.record_delivery([], key, "opened", DeliveryResult("email", ["a@example.com"], ok=True, attempts=1), NOW)
    assert entries == [{"key": "opened", "event": "opened", "channel": "email", "recipients": ["a@example.com"],
                        "time": "2026-03-01T12:00:00Z", "attempts": 1, "result": "sent"}]
    assert not nr.needs_delivery(entries, key, "email", NOW + timedelta(days=1))
    assert nr.needs_delivery(entries, key, "slack", NOW)  # other channels are independent
    skipped = nr.record_delivery(entries, key, "opened", DeliveryResult("slack", [], ok=False, error="not configured",
                                                                        skipped=True), NOW)
    assert nr.find_entry(skipped, key, "slack")["result"] == "skipped"
    assert not nr.needs_delivery(skipped, key, "slack", NOW)


def test_record_delivery_failures_retry_with_backoff_then_give_up():
    key = nr.notification_key("escalated", "1")
    failure = DeliveryResult("email", ["a@example.com"], ok=False, error="cannot connect\r\nto SMTP", attempts=3)
    entries: list[dict] = []
    now = NOW
    for rounds in range(1, nr.MAX_DELIVERY_ROUNDS):
        entries = nr.record_delivery(entries, key, "escalated", failure, now)
        entry = nr.find_entry(entries, key, "email")
        assert entry["result"] == "retrying" and entry["attempts"] == rounds
        assert entry["error"] == "cannot connect to SMTP"
        due = datetime.fromisoformat(entry["nextAttemptAt"].replace("Z", "+00:00"))
        assert due == nr.next_retry_at(rounds, now)
        assert not nr.needs_delivery(entries, key, "email", due - timedelta(seconds=1))
        assert nr.needs_delivery(entries, key, "email", due)
        assert [e["key"] for e in nr.due_retries(entries, due)] == [key]
        now = due
    entries = nr.record_delivery(entries, key, "escalated", failure, now)
    entry = nr.find_entry(entries, key, "email")
    assert entry["result"] == "failed" and "nextAttemptAt" not in entry
    assert not nr.needs_delivery(entries, key, "email", now + timedelta(days=1))
    assert len(entries) == 1


def test_record_delivery_success_after_retry_clears_schedule():
    key = "opened"
    entries = nr.record_delivery([], key, "opened", DeliveryResult("email", [], ok=False, error="down", attempts=3), NOW)
    entries = nr.record_delivery(entries, key, "opened", DeliveryResult("email", ["a@example.com"], ok=True, attempts=1),
                                 NOW + timedelta(minutes=1))
    entry = nr.find_entry(entries, key, "email")
    assert entry["result"] == "sent" and entry["attempts"] == 2
    assert "nextAttemptAt" not in entry and "error" not in entry


def test_record_delivery_is_bounded_and_keeps_pending_retries():
    entries = nr.record_delivery([], "opened", "opened", DeliveryResult("email", [], ok=False, error="x"), NOW)
    for i in range(10):
        entries = nr.record_delivery(entries, f"remediation:{i}", "remediation",
                                     DeliveryResult("email", [], ok=True), NOW, limit=5)
    assert len(entries) == 5
    assert nr.find_entry(entries, "opened", "email")["result"] == "retrying"
    assert nr.find_entry(entries, "remediation:9", "email") is not None
    assert nr.find_entry(entries, "remediation:0", "email") is None


def test_delivery_result_labels():
    assert DeliveryResult("email", [], ok=True).result == "sent"
    assert DeliveryResult("email", [], ok=False).result == "failed"
    assert DeliveryResult("email", [], ok=False, skipped=True).result == "skipped"


def test_probable_causes_travel_in_every_channel():
    inc = {"metadata": {"name": "checkout-1", "namespace": "shop"},
           "spec": {"service": "checkout", "title": "down"},
           "status": {"hints": [{"summary": f"cause {i} <b>", "suggestedAction": "rollback"} for i in range(5)]}}
    n = nr.notification_from_incident(inc, "escalated", "no ack", ["a@example.com"])
    assert n.hints == tuple(f"cause {i} <b> (suggested: rollback)" for i in range(nr.HINTS_SHOWN))
    text = nr.render_text(n)
    assert "Probable causes" in text and "1. cause 0 <b> (suggested: rollback)" in text and "cause 3" not in text
    html = nr.render_html(n)
    assert "<li>cause 0 &lt;b&gt; (suggested: rollback)</li>" in html
    assert nr.render_webhook(n)["hints"] == list(n.hints)
    assert "*Probable causes*" in nr.render_slack(n)["blocks"][1]["text"]["text"]
    bare = nr.notification_from_incident({**inc, "status": {}}, "escalated", "", [])
    assert bare.hints == () and "Probable causes" not in nr.render_text(bare)


def test_record_delivery_a_refused_address_is_final_at_once_other_failures_get_their_rounds():
    key = nr.notification_key("opened", "1")
    refused = DeliveryResult("webhook", [], ok=False, error="webhook hook http://127.0.0.1/… refused: loopback",
                             attempts=1, refused=True)
    entry = nr.find_entry(nr.record_delivery([], key, "opened", refused, NOW), key, "webhook")
    assert entry["result"] == "failed" and "nextAttemptAt" not in entry and entry["attempts"] == 1
    assert not nr.needs_delivery([entry], key, "webhook", NOW + timedelta(days=1))
    login = DeliveryResult("email", ["a@example.com"], ok=False, error="SMTP refused login", attempts=1)
    assert nr.find_entry(nr.record_delivery([], key, "opened", login, NOW), key, "email")["result"] == "retrying"


# --- hostile values from a CR or an alert arrive inert, per channel ------------------------------

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
CURSOR_UP = "\x1b[2A"
BIDI = "\u202eevil\u202c"
TERMINAL = (OSC52, CURSOR_UP, "\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\x7f", "\r")


def hostile_note(event: str = "opened") -> Notification:
    return note(event, detail=f"paging <!channel> {OSC52}after{CURSOR_UP}<script>x</script>{BIDI}",
                title=f"down <!here> {OSC52}{CURSOR_UP}<script>alert(1)</script>\r\nBcc: evil@x{BIDI}",
                description=f"<img src=x onerror=alert(1)> {OSC52}", assignee="a@example.com",
                service="checkout<!everyone>", runbookURL="https://runbooks.example.com/x><!channel>|click<x")


def test_slack_escapes_every_value_and_no_link_breaks_out():
    body = nr.render_slack(hostile_note())
    mrkdwn = [body["text"], body["blocks"][1]["text"]["text"], body["blocks"][3]["elements"][0]["text"]]
    mrkdwn += [f["text"] for f in body["blocks"][2]["fields"]]
    for text in mrkdwn:
        # Outside our own `<url|label>` links no `<` is left: no mention, no link of the sender's.
        outside = text
        for link in ("<https://runbooks.example.com/x%3E%3C!channel%3E%7Cclick%3Cx|open runbook>",
                     "<https://grafana.example.com/d/p|open dashboard>"):
            outside = outside.replace(link, "")
        assert "<" not in outside and ">" not in outside, text
        assert not any(c in text for c in TERMINAL), text
    joined = " ".join(mrkdwn)
    assert "&lt;!channel&gt;" in joined and "&lt;!everyone&gt;" in joined and "&lt;script&gt;" in joined
    # The runbook link keeps its target, with what would end the link percent-encoded.
    fields = " ".join(f["text"] for f in body["blocks"][2]["fields"])
    assert "*Runbook*\n<https://runbooks.example.com/x%3E%3C!channel%3E%7Cclick%3Cx|open runbook>" in fields
    assert not any(c in body["blocks"][0]["text"]["text"] for c in TERMINAL)  # plain_text header: no mrkdwn


def test_slack_link_escapes_ampersands_and_drops_what_is_not_http():
    body = nr.render_slack(note(runbookURL="https://r.example.com/?a=1&b=<2>"))
    fields = " ".join(f["text"] for f in body["blocks"][2]["fields"])
    assert "<https://r.example.com/?a=1&amp;b=%3C2%3E|open runbook>" in fields
    body = nr.render_slack(note(runbookURL="javascript:alert(1)//<!channel>"))
    fields = " ".join(f["text"] for f in body["blocks"][2]["fields"])
    assert "*Runbook*\nnone" in fields and "channel" not in fields


def test_html_email_escapes_every_value_and_strips_terminal_and_bidi_controls():
    _, html = parts(nr.render_email(hostile_note(), "paramedic@example.com"))
    html = html.replace("\r\n", "\n")  # SMTP line ends
    assert "<script>" not in html and "<img" not in html and "<!channel>" not in html and "<!here>" not in html
    assert "&lt;script&gt;" in html and "&lt;!channel&gt;" in html
    assert not any(c in html for c in TERMINAL)
    assert 'href="https://runbooks.example.com/x%3E%3C!channel%3E%7Cclick%3Cx"' in html
    assert nr._env().autoescape("_base.html.j2") and nr._env().autoescape("opened.html.j2")


def test_text_email_and_subject_carry_no_control_characters_or_headers():
    msg = nr.render_email(hostile_note(), "paramedic@example.com")
    parsed = parse(msg)
    text = parts(msg)[0].replace("\r\n", "\n")  # SMTP line ends
    assert not any(c in text for c in TERMINAL)
    assert "52;c;" not in text and "[2A" not in text  # whole sequences go, not only the ESC
    assert "<script>alert(1)</script>" in text  # plain text: markup is only text there
    subject = str(parsed["Subject"])
    assert not any(c in subject for c in TERMINAL + ("\n",))
    assert parsed["Bcc"] is None
    assert subject.endswith("Bcc: evil@x evil (shop/checkout-7f3a)")


def test_generic_webhook_json_is_data_kept_verbatim():
    n = hostile_note()
    body = nr.render_webhook(n)
    assert body["incident"]["title"] == n.title and body["detail"] == n.detail  # its receiver escapes for its medium
    assert "\n" not in body["summary"] and "\x1b" not in body["summary"]


def test_safe_url_encodes_what_ends_markup_and_refuses_controls_and_bidi():
    assert nr.safe_url('https://x.example/a"b<c>d|e') == "https://x.example/a%22b%3Cc%3Ed%7Ce"
    assert nr.safe_url("https://x.example/\u202eevil") == ""
    assert nr.safe_url("https://x.example/\x1b]52;c;x\x07") == ""
