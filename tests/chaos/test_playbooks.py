"""Playbooks misbehaving or abused, through the real operator and ansible-runner: a playbook
that hangs is timed out, recorded, and the next action is taken; extra vars full of shell
and template metacharacters arrive as data; a playbook linking out of the playbooks
directory is refused (the CRD already refuses `..` and absolute paths, see test_hostile)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from paramedic import kube
from tests.chaos.conftest import leftover_processes
from tests.e2e.test_control_plane import deployment
from tests.helpers import wait_object

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]


def service(name: str, actions: list) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "severity": "high", "target": {"kind": "Deployment", "name": name},
        "remediation": {"actions": actions, "maxAttempts": len(actions), "cooldownSeconds": 0, "verifySeconds": 5}}}


def incident(name: str, svc: str, title: str = "down") -> dict:
    return {"metadata": {"name": name}, "spec": {"service": svc, "severity": "high", "source": "manual", "title": title}}


def attempts_of(inc: dict) -> list[dict]:
    return ((inc.get("status") or {}).get("remediation") or {}).get("attempts") or []


def finished(client, ns, name, count: int, timeout: float, what: str, also=lambda inc: True) -> list[dict]:
    """The incident's attempts once `count` of them have an outcome (and `also` holds over the incident)."""
    def done(inc: dict) -> bool:
        ended = [a for a in attempts_of(inc) if a.get("result") not in ("Running", "Verifying")]
        return len(ended) >= count and also(inc)
    return attempts_of(wait_object(client, kube.INCIDENTS, name, ns, done, timeout, what))


HOSTILE = ["; touch {m}-semicolon", "$(touch {m}-subshell)", "`touch {m}-backtick`", "a && touch {m}-and || x",
           "{{{{ lookup('pipe', 'touch {m}-jinja') }}}}", "{{% raw %}}x", "'\"quotes\"'\n$IFS",
           "--extra-vars=@/etc/passwd", "ünïcode ✓"]


def test_hanging_playbook_hostile_vars_and_escaping_links(kube_client, namespace, operators, kubeconfig, tmp_path):
    marker = f"/tmp/paramedic-chaos-{uuid.uuid4().hex}"
    books = tmp_path / "playbooks"
    books.mkdir()
    sleep_arg = f"{time.time() % 1000:.4f}7"  # a sleep argument no other process uses
    (books / "hang.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.command: {{argv: [sleep, '{sleep_arg}']}}\n")
    out = tmp_path / "vars.json"
    (books / "echo.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        f"        dest: '{out}'\n"
        "        content: '{{ {\"hostile\": hostile, \"nested\": nested, \"incident\": incident_name} | to_json }}'\n")
    outside = tmp_path / "outside.yml"  # would leave a marker if it ever ran
    outside.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                       f"    - ansible.builtin.file: {{path: '{marker}-outside', state: touch}}\n")
    (books / "escape.yml").symlink_to(outside)
    # The admin's catalog for this directory: all three listed (the escaping link is refused by
    # the path check, not the catalog), the hostile values allowed as any strings.
    (books / "catalog.yaml").write_text(json.dumps({"playbooks": {
        "hang.yml": {}, "escape.yml": {},
        "echo.yml": {"vars": {"hostile": {"type": "array", "items": {"type": "string"}},
                              "nested": {"type": "object"}}}}}))

    hostile = [h.format(m=marker) for h in HOSTILE]
    nested = {"key; $(touch " + marker + "-key)": ["{{ 7 * 7 }}", None, True, 1.5]}
    kube_client.create(kube.DEPLOYMENTS, deployment("hang", replicas=1), namespace)
    kube_client.create(kube.MONITORED_SERVICES, service("hang", [
        {"ansible": {"playbook": "hang.yml", "timeoutSeconds": 3}}, {"restart": {}}]), namespace)
    kube_client.create(kube.MONITORED_SERVICES, service("vars", [
        {"ansible": {"playbook": "echo.yml", "timeoutSeconds": 120, "extraVars": {"hostile": hostile, "nested": nested}}}]),
        namespace)
    kube_client.create(kube.MONITORED_SERVICES, service("escape", [
        {"ansible": {"playbook": "escape.yml", "timeoutSeconds": 60}}]), namespace)
    operators(kubeconfig, namespace, env={"PARAMEDIC_PLAYBOOKS_DIR": str(books)})
    for svc in ("hang", "vars", "escape"):
        kube_client.create(kube.INCIDENTS, incident(f"{svc}-1", svc), namespace)

    # The hanging playbook: timed out, recorded, and the next action (restart) taken.
    first, second = finished(kube_client, namespace, "hang-1", 2, 150, "both attempts on hang-1")
    assert first["action"] == "ansible" and first["result"] == "TimedOut", first
    assert "timed out" in first["message"] and first.get("status") == "timeout"
    assert second["action"] == "restart" and second["result"] == "Succeeded", second
    inc = wait_object(kube_client, kube.INCIDENTS, "hang-1", namespace,
                      lambda i: i["spec"]["state"] == "mitigated"
                      and sum(e["type"] == "remediation-started" for e in i["status"]["timeline"]) >= 2, 60,
                      "hang-1 mitigated")
    types = [e["type"] for e in inc["status"]["timeline"]]
    assert types.count("remediation-started") == 2 and "remediation-failed" in types
    assert not leftover_processes(sleep_arg), "the timed-out playbook left processes behind"

    # Hostile extra vars: carried verbatim, nothing executed.
    [done] = finished(kube_client, namespace, "vars-1", 1, 120, "the vars playbook")
    assert done["result"] == "Succeeded", done
    assert json.loads(out.read_text()) == {"hostile": hostile, "nested": nested, "incident": "vars-1"}

    # A link out of the playbooks directory is refused before anything runs.
    [refused] = finished(kube_client, namespace, "escape-1", 1, 60, "the escaping playbook")
    assert refused["result"] == "Failed" and "outside the playbooks directory" in refused["message"], refused
    assert not list(Path("/tmp").glob(Path(marker).name + "*")), "a hostile value was executed"
