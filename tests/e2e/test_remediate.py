"""Remediation actions against the real local control plane (kwok runs the pods) and real ansible-runner."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from devtools.proc import alive, find
from devtools.wait import wait_for
from paramedic import kube
from paramedic.domain.rollout import RESTARTED_AT
from paramedic.remediation_io import (
    RUN_MARKER,
    RemediationError,
    checked_playbook_vars,
    resolve_playbook,
    restart_workload,
    run_playbook,
    scale_workload,
    wait_rollout,
)
from paramedic.settings import Settings
from tests.helpers import wait_object

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
# Test-only playbooks (the demo-only local restart runs whatever command it is given: it is in
# neither the image nor the default catalog) and their explicit test catalog.
LOCAL = REPO / "tests" / "fixtures" / "playbooks"
IMAGE = "registry.local/demo:1"


def arun(kubeconfig: Path, fn: Callable[[kube.AsyncKubeClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        client = kube.AsyncKubeClient(kube.Connection.load(str(kubeconfig)))
        try:
            return await fn(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def deployment(name: str, replicas: int = 2, image: str = IMAGE, paused: bool = False) -> dict:
    labels = {"app": name}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "paused": paused,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": image}]},
            },
        },
    }


def create_available(kube_client: kube.KubeClient, kubeconfig: Path, namespace: str, name: str,
                     replicas: int = 2, image: str = IMAGE) -> dict:
    kube_client.create(kube.DEPLOYMENTS, deployment(name, replicas, image), namespace)
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", name, timeout=90))
    assert status.done, status.message
    return kube_client.get(kube.DEPLOYMENTS, name, namespace)


def owned_replicasets(kube_client: kube.KubeClient, namespace: str, name: str) -> list[dict]:
    dep = kube_client.get(kube.DEPLOYMENTS, name, namespace)
    return [rs for rs in kube_client.list(kube.REPLICASETS, namespace)
            if any(o.get("uid") == dep["metadata"]["uid"] for o in rs["metadata"].get("ownerReferences", []))]


def live_pods(kube_client: kube.KubeClient, namespace: str, name: str) -> set[str]:
    return {p["metadata"]["name"] for p in kube_client.list(kube.PODS, namespace, labels={"app": name})
            if not p["metadata"].get("deletionTimestamp") and p.get("status", {}).get("phase") == "Running"}


def template_annotation(obj: dict) -> str | None:
    return ((obj["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT)


class CountingClient(kube.AsyncKubeClient):
    """The real client, counting the PATCH requests it sends."""

    patches = 0

    async def patch(self, *args: Any, **kwargs: Any) -> dict:
        self.patches += 1
        return await super().patch(*args, **kwargs)


# --- built-in actions -----------------------------------------------------------------------


def test_restart_rolls_out_new_pods_once_per_decision(kube_client, kubeconfig, namespace):
    create_available(kube_client, kubeconfig, namespace, "checkout")
    old_pods = wait_for(lambda: (lambda pods: pods if len(pods) == 2 else None)(
        live_pods(kube_client, namespace, "checkout")), 60, "2 pods")
    assert len(owned_replicasets(kube_client, namespace, "checkout")) == 1

    t1 = "2026-03-01T12:00:00Z"
    obj = arun(kubeconfig, lambda c: restart_workload(c, namespace, "Deployment", "checkout", t1))
    assert template_annotation(obj) == t1
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "checkout", timeout=90))
    assert status.done and not status.failed, status.message
    assert status.message == 'deployment "checkout" successfully rolled out'
    assert len(owned_replicasets(kube_client, namespace, "checkout")) == 2
    new_pods = wait_for(lambda: (lambda pods: pods if len(pods) == 2 and not (pods & old_pods) else None)(
        live_pods(kube_client, namespace, "checkout")), 60, "two new pods")
    assert not new_pods & old_pods

    # The same decision again (an operator restarted mid-way): nothing is sent, nothing rolls.
    before = kube_client.get(kube.DEPLOYMENTS, "checkout", namespace)

    async def again(_: kube.AsyncKubeClient) -> tuple[dict, int]:
        client = CountingClient(kube.Connection.load(str(kubeconfig)))
        try:
            out = await restart_workload(client, namespace, "Deployment", "checkout", t1)
            return out, client.patches
        finally:
            await client.aclose()

    obj, patches = arun(kubeconfig, again)
    assert patches == 0
    after = kube_client.get(kube.DEPLOYMENTS, "checkout", namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert len(owned_replicasets(kube_client, namespace, "checkout")) == 2

    # A new decision (new restartedAt) restarts again.
    arun(kubeconfig, lambda c: restart_workload(c, namespace, "Deployment", "checkout", "2026-03-01T12:05:00Z"))
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "checkout", timeout=90))
    assert status.done, status.message
    assert len(owned_replicasets(kube_client, namespace, "checkout")) == 3


def test_paused_deployment_is_refused(kube_client, kubeconfig, namespace):
    kube_client.create(kube.DEPLOYMENTS, deployment("paused", paused=True), namespace)
    with pytest.raises(RemediationError, match="paused"):
        arun(kubeconfig, lambda c: restart_workload(c, namespace, "Deployment", "paused", "2026-03-01T12:00:00Z"))
    assert template_annotation(kube_client.get(kube.DEPLOYMENTS, "paused", namespace)) is None


def test_missing_target_is_refused(kubeconfig, namespace):
    with pytest.raises(RemediationError, match="Deployment nothere not found"):
        arun(kubeconfig, lambda c: restart_workload(c, namespace, "Deployment", "nothere", "2026-03-01T12:00:00Z"))
    with pytest.raises(RemediationError, match="not found"):
        arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "nothere", timeout=2))
    with pytest.raises(RemediationError, match="not found"):
        arun(kubeconfig, lambda c: scale_workload(c, namespace, "Deployment", "nothere", 2))
    with pytest.raises(RemediationError, match="unsupported target kind"):
        arun(kubeconfig, lambda c: restart_workload(c, namespace, "CronJob", "x", "2026-03-01T12:00:00Z"))


def test_wait_rollout_gives_up_at_its_timeout(kube_client, kubeconfig, namespace):
    create_available(kube_client, kubeconfig, namespace, "stuck", replicas=1)
    # A paused Deployment takes the new template but never rolls it out.
    kube_client.patch(kube.DEPLOYMENTS, "stuck", {"spec": {"paused": True}}, namespace)
    kube_client.patch(kube.DEPLOYMENTS, "stuck", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/demo:2"}]}}}}, namespace, content_type=kube.STRATEGIC)
    started = time.monotonic()
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "stuck", timeout=2, poll=0.2))
    assert status.timed_out and status.failed and not status.done
    assert "did not finish within 2s" in status.message
    assert time.monotonic() - started < 10


def test_scale_workload(kube_client, kubeconfig, namespace):
    create_available(kube_client, kubeconfig, namespace, "web", replicas=1)
    obj = arun(kubeconfig, lambda c: scale_workload(c, namespace, "Deployment", "web", 3))
    assert obj["spec"]["replicas"] == 3
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "web", timeout=90))
    assert status.done, status.message
    wait_for(lambda: len(live_pods(kube_client, namespace, "web")) == 3, 60, "3 pods")
    with pytest.raises(RemediationError, match="DaemonSet cannot be scaled"):
        arun(kubeconfig, lambda c: scale_workload(c, namespace, "DaemonSet", "web", 3))
    with pytest.raises(RemediationError, match="replicas"):
        arun(kubeconfig, lambda c: scale_workload(c, namespace, "Deployment", "web", -1))


# --- playbooks ------------------------------------------------------------------------------


def play(playbooks_dir: Path | str, playbook: str, extravars: dict, timeout: int = 180):
    return asyncio.run(run_playbook(str(playbooks_dir), playbook, extravars, timeout))


def test_restart_playbook_restarts_through_kubernetes_core(kube_client, kubeconfig, namespace):
    create_available(kube_client, kubeconfig, namespace, "checkout")
    restarted_at = "2026-03-01T13:00:00Z"
    result = play(PLAYBOOKS, "restart-deployment.yml", {
        "namespace": namespace, "target_name": "checkout", "target_kind": "Deployment",
        "restarted_at": restarted_at, "kubeconfig": str(kubeconfig),
        "incident_name": "checkout-abc", "incident_namespace": namespace, "service": "checkout", "severity": "high",
    })
    assert result.ok, result.output_tail
    assert result.rc == 0 and not result.timed_out and result.duration > 0
    assert "PLAY RECAP" in result.output_tail
    obj = kube_client.get(kube.DEPLOYMENTS, "checkout", namespace)
    assert template_annotation(obj) == restarted_at
    assert len(owned_replicasets(kube_client, namespace, "checkout")) == 2
    # The playbook waited for the rollout before it returned.
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "checkout", timeout=0))
    assert status.done, status.message


def test_failing_playbook_reports_rc_status_and_tail(kubeconfig, namespace):
    result = play(PLAYBOOKS, "restart-deployment.yml", {
        "namespace": namespace, "deployment": "ghost", "restarted_at": "2026-03-01T13:00:00Z",
        "kubeconfig": str(kubeconfig)})
    assert result.rc not in (None, 0)
    assert result.status == "failed" and not result.timed_out and not result.ok
    assert "Deployment ghost not found" in result.output_tail
    assert len(result.output_tail.splitlines()) <= 40 and len(result.output_tail.encode()) <= 4096


def test_hanging_playbook_times_out_and_leaves_nothing_running(tmp_path):
    token = f"{time.time() % 1000:.4f}9"  # a sleep argument no other process uses
    (tmp_path / "hang.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f"    - ansible.builtin.command: {{argv: [sleep, '{token}']}}\n")
    started = time.monotonic()
    result = play(tmp_path, "hang.yml", {}, timeout=3)
    assert result.timed_out and result.status == "timeout"
    assert result.rc != 0
    assert time.monotonic() - started < 45
    leftovers = list(find(token))
    assert not leftovers, "the timed-out run left processes behind"


PAYLOADS = ["; rm -rf /", "$(id)", "`id`", "a && b || c > /tmp/x", "{{ lookup('pipe', 'id') }}",
            "{% raw %}x", "'\"quotes\"'", "line1\nline2", "ünïcode ✓",
            # YAML would turn these into a datetime, a boolean, numbers and null.
            "2026-03-01T13:00:00Z", "no", "yes", "123", "1e3", "0x1F", "null", "~", ""]


def test_extravars_arrive_verbatim_as_data(tmp_path):
    out = tmp_path / "out.json"
    (tmp_path / "echo.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        "        dest: '{{ out }}'\n"
        "        content: '{{ {\"payload\": payload, \"nested\": nested, \"number\": number} | to_json }}'\n")
    nested = {"weird key; $(x)": ["{{ 7 * 7 }}", None, True, 1.5], "{{ lookup('pipe', 'id') }}": "k"}
    result = play(tmp_path, "echo.yml", {"out": str(out), "payload": PAYLOADS, "nested": nested, "number": 3})
    assert result.ok, result.output_tail
    assert json.loads(out.read_text()) == {"payload": PAYLOADS, "nested": nested, "number": 3}


def test_bad_extravars_are_refused_before_running(tmp_path):
    (tmp_path / "p.yml").write_text("- hosts: localhost\n  tasks: []\n")
    with pytest.raises(RemediationError, match="not a valid Ansible variable name"):
        play(tmp_path, "p.yml", {"bad name": 1})
    with pytest.raises(RemediationError, match="unsupported type"):
        play(tmp_path, "p.yml", {"x": object()})
    with pytest.raises(RemediationError, match="timeout"):
        play(tmp_path, "p.yml", {}, timeout=0)


def test_resolve_playbook_refuses_paths_leaving_the_directory(tmp_path):
    pb = tmp_path / "playbooks"
    pb.mkdir()
    (pb / "ok.yml").write_text("- hosts: localhost\n  tasks: []\n")
    (pb / "sub").mkdir()
    (pb / "sub" / "deep.yaml").write_text("[]\n")
    outside = tmp_path / "outside.yml"
    outside.write_text("[]\n")
    (pb / "evil.yml").symlink_to(outside)
    (pb / "passwd.yml").symlink_to("/etc/passwd")
    (pb / "linkdir").symlink_to(tmp_path)
    # ConfigMap volumes are links inside the directory: those are fine.
    (pb / "..data").mkdir()
    (pb / "..data" / "cm.yml").write_text("[]\n")
    (pb / "cm.yml").symlink_to("..data/cm.yml")

    assert resolve_playbook(pb, "ok.yml") == (pb / "ok.yml").resolve()
    assert resolve_playbook(pb, "sub/deep.yaml") == (pb / "sub" / "deep.yaml").resolve()
    assert resolve_playbook(pb, "cm.yml") == (pb / "..data" / "cm.yml").resolve()
    for bad, why in [("../etc/passwd", "'..'"), ("/etc/passwd", "absolute"), ("sub/../../outside.yml", "'..'"),
                     ("evil.yml", "outside"), ("passwd.yml", "outside"), ("linkdir/outside.yml", "outside"),
                     ("missing.yml", "not found"), ("", "empty"), ("sub", "yml"), ("ok.yml\x00.yml", "NUL")]:
        with pytest.raises(RemediationError, match=why):
            resolve_playbook(pb, bad)
    with pytest.raises(RemediationError, match="does not exist"):
        resolve_playbook(tmp_path / "nope", "ok.yml")
    for name in ("restart-deployment.yml", "scale-deployment.yml", "rollback-deployment.yml"):
        assert resolve_playbook(PLAYBOOKS, name).is_file()
    with pytest.raises(RemediationError, match="not found"):
        resolve_playbook(PLAYBOOKS, "restart-local-service.yml")
    assert resolve_playbook(LOCAL, "restart-local-service.yml").is_file()


def test_scale_playbook(kube_client, kubeconfig, namespace):
    create_available(kube_client, kubeconfig, namespace, "web", replicas=1)
    result = play(PLAYBOOKS, "scale-deployment.yml", {
        "namespace": namespace, "target_name": "web", "replicas": 3, "kubeconfig": str(kubeconfig)})
    assert result.ok, result.output_tail
    dep = kube_client.get(kube.DEPLOYMENTS, "web", namespace)
    assert dep["spec"]["replicas"] == 3 and dep["status"].get("availableReplicas") == 3


def test_rollback_playbook_returns_to_the_previous_template(kube_client, kubeconfig, namespace):
    create_available(kube_client, kubeconfig, namespace, "api", replicas=1, image="registry.local/demo:1")
    kube_client.patch(kube.DEPLOYMENTS, "api", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.local/demo:2"}]}}}}, namespace, content_type=kube.STRATEGIC)
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "api", timeout=90))
    assert status.done, status.message
    # A rollout restart of the bad revision makes a revision of its own with the same pod spec:
    # rolling back to it would change nothing, so the rollback skips it.
    kube_client.patch(kube.DEPLOYMENTS, "api", {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}, namespace, content_type=kube.STRATEGIC)
    status = arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "api", timeout=90))
    assert status.done, status.message
    result = play(PLAYBOOKS, "rollback-deployment.yml", {
        "namespace": namespace, "deployment": "api", "kubeconfig": str(kubeconfig)})
    assert result.ok, result.output_tail
    dep = kube_client.get(kube.DEPLOYMENTS, "api", namespace)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/demo:1"
    assert "pod-template-hash" not in dep["spec"]["template"]["metadata"]["labels"]
    assert arun(kubeconfig, lambda c: wait_rollout(c, namespace, "Deployment", "api", timeout=0)).done
    # Nothing older than revision 1 on a fresh Deployment: a clear failure, not a guess.
    kube_client.create(kube.DEPLOYMENTS, deployment("fresh", 1), namespace)
    wait_object(kube_client, kube.DEPLOYMENTS, "fresh", namespace,
                lambda d: d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], 60, "revision annotation")
    result = play(PLAYBOOKS, "rollback-deployment.yml", {
        "namespace": namespace, "deployment": "fresh", "kubeconfig": str(kubeconfig), "wait": False})
    assert result.status == "failed" and "no rollout history found" in result.output_tail


START_SCRIPT = """
import subprocess, sys
p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[2]],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
open(sys.argv[1], "w").write(str(p.pid))
"""


def local_play(playbook: str, extravars: dict, namespace: str = "team") -> Any:
    """Run a test playbook as the operator does: its vars checked against the test catalog first."""
    settings = Settings(playbooks_dir=str(LOCAL))
    checked = checked_playbook_vars(settings, {"playbook": playbook, "extraVars": extravars}, namespace)
    return play(LOCAL, playbook, checked)


def test_restart_local_service_playbook(tmp_path):
    marker = f"paramedic-test-svc-{uuid.uuid4().hex[:8]}"
    start = tmp_path / "start.py"
    start.write_text(START_SCRIPT)
    pid_file = tmp_path / "svc.pid"
    subprocess.run([sys.executable, str(start), str(pid_file), marker], check=True)
    old = int(pid_file.read_text())
    new = None
    try:
        assert alive(old)
        result = local_play("restart-local-service.yml", {
            "pid_file": str(pid_file), "start_command": [sys.executable, str(start), str(pid_file), marker],
            "expect_cmdline": marker, "stop_timeout": 5})
        assert result.ok, result.output_tail
        new = int(pid_file.read_text())
        assert new != old
        wait_for(lambda: not alive(old), 10, "old process gone")
        assert alive(new)
    finally:
        for pid in (old, new):
            if pid and alive(pid):
                os.kill(pid, 9)


def test_restart_local_service_command_is_argv_not_shell(tmp_path):
    out = tmp_path / "restarted.txt"
    text = "$(id); echo pwned > /tmp/x `id` && true"
    result = local_play("restart-local-service.yml", {
        "restart_command": [sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                            str(out), text]})
    assert result.ok, result.output_tail
    assert out.read_text() == text
    # The playbook itself refuses a string (a shell would split it)...
    result = play(LOCAL, "restart-local-service.yml", {"restart_command": "systemctl restart ims"})
    assert result.status == "failed" and "list of arguments" in result.output_tail
    # ...and the test catalog's schema refuses it before anything runs.
    with pytest.raises(RemediationError, match=r"extraVars.restart_command must be of type array"):
        local_play("restart-local-service.yml", {"restart_command": "systemctl restart ims"})


def test_playbook_environment_is_an_allowlist_not_the_operators(tmp_path, monkeypatch):
    canary = "paramedic-canary-env"
    for name in ("PARAMEDIC_SMTP_PASSWORD", "PARAMEDIC_SLACK_WEBHOOK_URL", "PARAMEDIC_WEBHOOK_TOKEN",
                 "AWS_SECRET_ACCESS_KEY", "SOME_OPERATOR_SETTING"):
        monkeypatch.setenv(name, canary)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")  # what in-cluster clients need is kept
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    out = tmp_path / "env.json"
    result = local_play("dump-env.yml", {"dump_to": str(out)})
    assert result.ok, result.output_tail
    env = json.loads(out.read_text())
    leaked = sorted(k for k, v in env.items() if canary in v or (k.startswith("PARAMEDIC_") and k != RUN_MARKER))
    assert not leaked, leaked
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1" and env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["TMPDIR"].startswith(tempfile.gettempdir()) and "paramedic-ansible-" in env["TMPDIR"]
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
