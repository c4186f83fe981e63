"""`make demo` end to end: the whole story, told by `python -m devtools.demo` with DEMO_EXIT=1.

It runs against the session's control plane (PARAMEDIC_DEMO_KUBECONFIG) in a namespace of
its own, its demo service a real container on the real node, with real Prometheus,
blackbox_exporter and Alertmanager, the webhook, the operator, an SMTP server and Ansible;
every checkpoint of the story must appear, in causal order.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from devtools.cluster import REPO
from devtools.proc import alive
from paramedic import kube

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# (name, pattern) in the order the story must tell them; each is searched after the previous
# one of its chain (see CHAINS), so the narration's causality is checked, not just its words.
CHECKPOINTS = {
    "break": r"\[break\]\s+a bad release of Deployment demo .* over container [0-9a-f]{12}",
    "bad-rollout": r"\[remediation\]\s+Deployment demo: rollout finished on the real node: container "
                   r"[0-9a-f]{12} → [0-9a-f]{12} \(Ready; /healthz 500\)",
    "probe": r"\[probe\]\s+Paramedic's probe: demo is Down",
    "blackbox": r"\[probe\]\s+blackbox_exporter: probe_success 0",
    "incident": r"\[incident\]\s+Incident demo-down-1 opened by probe",
    "kubectl-open": r"demo-down-1\s+open\s+high\s+demo\s+alice@example\.com",
    "assigned": r"\[on-call\]\s+assigned to Alice <alice@example\.com>",
    "mail-opened": r"\[mail\]\s+to alice@example\.com, demo-team@example\.com, admin@example\.com: .*demo-down-1",
    "alert-firing": r"\[alert\]\s+Prometheus: DemoServiceDown firing",
    "alert-am": r"\[alert\]\s+Alertmanager: DemoServiceDown active",
    "alert-recorded": r"\[alert\]\s+webhook: .*DemoServiceDown recorded on demo-down-1",
    "restart": r"\[remediation\]\s+attempt 1: rollout restart Deployment/demo",
    "rollout": r"\[remediation\]\s+Deployment demo: rollout finished on the real node: container "
               r"[0-9a-f]{12} → [0-9a-f]{12} \(Ready; /healthz 500\)",
    "restart-failed": r"\[remediation\]\s+attempt 1 failed: .*did not recover",
    "ansible": r"\[remediation\]\s+attempt 2: ansible rollback-deployment\.yml \(ansible-runner, kubernetes\.core\)",
    "rolled-back": r"\[remediation\]\s+Deployment demo: pod template rolled back",
    "healed-rollout": r"\[remediation\]\s+Deployment demo: rollout finished on the real node: container "
                      r"[0-9a-f]{12} → [0-9a-f]{12} \(Ready; /healthz 200\)",
    "recovered": r"\[recovery\]\s+http://10\.0\.0\.80:8080/healthz answers 200 again, from container [0-9a-f]{12}",
    "resolved": r"\[resolved\]\s+demo-down-1 resolved .*MTTA -, MTTR \d+s",  # nobody acknowledged: no MTTA
    "kubectl-resolved": r"demo-down-1\s+resolved\s+high\s+demo\s+alice@example\.com",
    "alert-resolved": r"\[alert\]\s+Alertmanager: DemoServiceDown resolved",
    "report": r"\[report\]\s+post-mortem written to (\S+\.md)",
    "summary": r"^Self-healed: detected, paged, repaired and resolved \d+s after the break",
    "stopping": r"^DEMO_EXIT is set: stopping everything\.",
    "stopped": r"^demo stopped$",
}
CHAINS = [
    # The operator opens the incident and then writes the service's health: the narrator may
    # see either first, so the probe line is only required after the break.
    ["break", "incident", "kubectl-open", "assigned", "resolved", "kubectl-resolved", "report",
     "summary", "stopping", "stopped"],
    ["break", "bad-rollout", "probe", "resolved"],
    ["break", "blackbox", "alert-firing", "alert-am", "alert-recorded", "alert-resolved", "report"],
    ["incident", "mail-opened", "resolved"],
    ["incident", "restart", "rollout", "restart-failed", "ansible", "rolled-back", "healed-rollout", "resolved"],
    ["ansible", "recovered", "resolved"],
]


def _index(lines: list[str], name: str, after: int) -> int:
    pattern = re.compile(CHECKPOINTS[name])
    for i in range(after + 1, len(lines)):
        if pattern.search(lines[i]):
            return i
    raise AssertionError(f"checkpoint {name!r} ({CHECKPOINTS[name]}) missing after line {after + 1}")


def _logs(demo_dir: Path) -> str:
    out = []
    for log in sorted((demo_dir / "logs").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-25:]
        out.append(f"--- {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(out)


@pytest.mark.timeout(480)
def test_demo_tells_the_whole_self_healing_story(kubeconfig, kube_client, real_node, tmp_path):
    demo_dir = tmp_path / "demo"
    namespace = f"demo-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARAMEDIC_DEMO_")}
    env.update(DEMO_EXIT="1", PARAMEDIC_DEMO_KUBECONFIG=str(kubeconfig), PARAMEDIC_DEMO_DIR=str(demo_dir),
               PARAMEDIC_DEMO_NAMESPACE=namespace)
    try:
        proc = subprocess.run([sys.executable, "-m", "devtools.demo"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=420)
    finally:
        # Whatever happened (a timeout above kills only the narrator), nothing may keep running.
        subprocess.run([sys.executable, "-m", "devtools.demo", "down"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=120)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"the demo failed (exit {proc.returncode}):\n{output}\n{_logs(demo_dir)}"
    lines = output.splitlines()
    try:
        for chain in CHAINS:
            at = -1
            for name in chain:
                at = _index(lines, name, at)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- demo output:\n{output}") from None

    # The story's claims hold outside its output too.
    report = Path(re.search(CHECKPOINTS["report"], output).group(1))
    if not report.is_absolute():
        report = REPO / report
    text = report.read_text()
    assert text.startswith("# Post-mortem: demo is down")
    assert f"`{namespace}/demo-down-1`" in text and "| State | resolved |" in text
    assert "DemoServiceDown" in text and "rollback-deployment.yml" in text

    mails = sorted((demo_dir / "mail").glob("*.eml"))
    assert len(mails) >= 3, f"expected opened, remediation and resolved e-mails, got {len(mails)}"
    for path in mails:
        with open(path, "rb") as fh:
            msg = BytesParser(policy=policy.default).parse(fh)
        assert "alice@example.com" in msg["To"] and f"{namespace}/demo-down-1" in msg["Subject"]
        # PARAMEDIC_CONSOLE_URL is set: every mail links to the incident's page in the console.
        assert f"/ns/{namespace}/incidents/demo-down-1" in msg.get_body(preferencelist=("plain",)).get_content()
    assert len([line for line in lines if "[mail]" in line]) == len(mails)

    # The console ran, and the demo handed out a sign-in token for its responder.
    assert re.search(r"^  console +http://127\.0\.0\.1:\d+ +sign in as responder", output, re.M), output
    assert "console" in re.findall(r"^stopped (\S+) \(pid", output, re.M), output

    # DEMO_EXIT stopped everything it started, and removed its namespace from the shared cluster.
    assert not (demo_dir / "state.json").exists()
    stopped = [int(pid) for pid in re.findall(r"^stopped .* \(pid (\d+)\)$", output, re.M)]
    assert len(stopped) >= 7, output  # seven processes (the demo service is a pod of the namespace)
    assert not [pid for pid in stopped if alive(pid)]
    ns = kube_client.get_or_none(kube.NAMESPACES, namespace)
    assert ns is None or ns["metadata"].get("deletionTimestamp"), json.dumps(ns)[:500]


def test_demo_down_without_a_demo_says_so(tmp_path):
    env = {**os.environ, "PARAMEDIC_DEMO_DIR": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, "-m", "devtools.demo", "down"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "no demo running" in proc.stdout
