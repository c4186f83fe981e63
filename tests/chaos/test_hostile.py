"""Custom resources with hostile values: refused by the API server with a clear message, or
carried safely as data (an e-mail for a title full of CRLF and headers injects none)."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from paramedic import kube
from tests.helpers import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]


def incident(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"service": "checkout", "severity": "high", "title": "t", **spec}}


def msvc(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"target": {"name": name}, **spec}}


REFUSED = [
    ("incident", incident("long-title", title="x" * 257), "256"),
    ("incident", incident("long-description", description="d" * 9000), "8192"),
    ("incident", incident("bad-severity", severity="sev1; DROP TABLE"), "severity"),
    ("incident", incident("bad-state", state="closed\r\nX: y"), "state"),
    ("service", msvc("js-url", probe={"url": "javascript:alert(1)"}), "http:// or https://"),
    ("service", msvc("file-url", probe={"url": "file:///etc/passwd"}), "http:// or https://"),
    ("service", msvc("no-host", probe={"url": "http:///path"}), "absolute URL with a host"),
    ("service", msvc("long-url", probe={"url": "http://x/" + "a" * 2100}), "2048"),
    ("service", msvc("abs-book", remediation={"actions": [{"ansible": {"playbook": "/etc/ansible/evil.yml"}}]}),
     "inside the playbooks directory"),
    ("service", msvc("dotdot-book", remediation={"actions": [{"ansible": {"playbook": "ok/../../../evil.yml"}}]}),
     "inside the playbooks directory"),
    ("service", msvc("crlf-admin", notify={"admins": ["ops@example.com\r\nBcc: evil@example.com"]}), "admins"),
    ("service", msvc("space-admin", notify={"admins": ["ops@example.com, evil@example.com"]}), "admins"),
    ("service", msvc("huge-timeout", remediation={"actions": [{"ansible": {"playbook": "x.yml", "timeoutSeconds": 10**9}}]}),
     "timeoutSeconds"),
]


@pytest.mark.parametrize("kind, body, fragment", REFUSED, ids=[b["metadata"]["name"] for _, b, _ in REFUSED])
def test_hostile_values_are_refused_with_a_clear_message(kube_client, namespace, kind, body, fragment):
    res = kube.INCIDENTS if kind == "incident" else kube.MONITORED_SERVICES
    with pytest.raises(kube.Invalid) as err:
        kube_client.create(res, body, namespace)
    assert fragment in err.value.message, err.value.message
    assert kube_client.get_or_none(res, body["metadata"]["name"], namespace) is None


def test_a_body_over_the_api_servers_limit_is_refused(kube_client, namespace):
    # 3 MiB is kube-apiserver's request limit: refused whole, not truncated.
    with pytest.raises(kube.ApiError) as err:
        kube_client.create(kube.INCIDENTS, incident("huge", labels={f"k{i}": "v" * 60000 for i in range(60)}), namespace)
    assert err.value.status == 413, err.value
    assert kube_client.get_or_none(kube.INCIDENTS, "huge", namespace) is None


INJECTED_TITLE = "checkout down\r\nBcc: evil@example.com\r\nX-Injected: yes\r\n\r\n<script>alert(1)</script>"


def test_header_injection_in_a_title_stays_in_the_subject(kube_client, namespace, operators, kubeconfig, mail):
    kube_client.create(kube.MONITORED_SERVICES, msvc("checkout", notify={"admins": ["ops@example.com"]},
                                                     runbookURL="javascript:alert(document.cookie)"), namespace)
    # The CRD puts no pattern on a title (alert summaries are free text): it is accepted and
    # stored byte for byte, and made safe where it is used (the e-mail below).
    kube_client.create(kube.INCIDENTS, incident("inject", title=INJECTED_TITLE,
                                                description="line1\r\nSubject: forged\r\n.\r\nMAIL FROM:<x@y>"),
                       namespace)
    stored = kube_client.get(kube.INCIDENTS, "inject", namespace)["spec"]["title"]
    assert stored == INJECTED_TITLE  # carried as data
    operators(kubeconfig, namespace, env={"PARAMEDIC_SMTP_HOST": "127.0.0.1", "PARAMEDIC_SMTP_PORT": str(mail.port),
                                          "PARAMEDIC_SMTP_FROM": "paramedic@example.com"})
    [msg] = wait_for(lambda: [m for m in mail.messages if "checkout down" in m["subject"]], 60, "the opened e-mail")
    assert msg["to"] == ["ops@example.com"], msg["to"]
    parsed = message_from_bytes(msg["raw"], policy=policy.default)
    names = [k.lower() for k in parsed.keys()]
    assert "x-injected" not in names and "bcc" not in names, parsed.keys()
    assert names.count("subject") == 1 and "forged" not in str(parsed["Subject"])
    assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
    assert "<script>" not in msg["html"], "the title reached the HTML body unescaped"
    assert "javascript:" not in msg["html"], "a javascript: runbook URL became a link"
    # The SMTP dialogue was not broken by a lone "." line: exactly one message arrived.
    assert len([m for m in mail.messages if "checkout down" in m["subject"]]) == 1
