"""Tenant safety of playbooks (issue #16): a namespace user picks playbooks only from the admin's
catalog, with only the variables its schema allows, never Ansible's reserved variables nor the
ones that pin a playbook to the service's own target; and a playbook gets none of the
operator's environment. Against the real API server, with the tenants' own tokens where the
API server decides, and the real operator and ansible-runner where the operator does."""

from __future__ import annotations

import json

import pytest
import yaml

from devtools.cluster import REPO
from paramedic import kube
from paramedic.remediation_io import RUN_MARKER
from tests.e2e.test_control_plane import deployment
from tests.helpers import wait_for, wait_object

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FIXTURES = REPO / "tests" / "fixtures" / "playbooks"
POLICY_FILE = REPO / "manifests" / "playbook-vars-policy.yaml"
POLICIES = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                         "ValidatingAdmissionPolicy", namespaced=False)
BINDINGS = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                         "ValidatingAdmissionPolicyBinding", namespaced=False)
CANARY = "paramedic-canary-7f3e"  # in every secret the operator holds; must reach no playbook


def service(name: str, playbook: str, extra_vars: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "severity": "high", "target": {"kind": "Deployment", "name": name},
        "remediation": {"actions": [{"ansible": {"playbook": playbook, "extraVars": extra_vars,
                                                 "timeoutSeconds": 120}}],
                        "maxAttempts": 1, "cooldownSeconds": 0, "verifySeconds": 3}}}


def incident(name: str, svc: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"service": svc, "severity": "high", "source": "manual",
                                                 "title": "down"}}


def finished_attempt(inc: dict) -> dict | None:
    found = ((inc.get("status") or {}).get("remediation") or {}).get("attempts") or []
    done = [a for a in found if a.get("result") not in ("Running", "Verifying")]
    return done[0] if done else None


def timeline(inc: dict) -> str:
    return "\n".join(e.get("message", "") for e in (inc.get("status") or {}).get("timeline") or [])


@pytest.fixture
def vars_policy(kube_client):
    """manifests/playbook-vars-policy.yaml installed as shipped, and in force."""
    docs = list(yaml.safe_load_all(POLICY_FILE.read_text()))
    for res, doc in zip((POLICIES, BINDINGS), docs, strict=True):
        kube_client.create(res, doc)
    probe = service("policy-probe", "dump-env.yml", {"become": True})

    def refused() -> bool:
        try:
            kube_client.create(kube.MONITORED_SERVICES, probe, "default")
        except kube.ApiError as exc:
            return exc.status == 422 and "reserved by Ansible" in exc.message
        kube_client.delete(kube.MONITORED_SERVICES, "policy-probe", "default")
        return False
    wait_for(refused, 30, "the playbook-vars policy in force")
    yield
    for res, doc in zip((BINDINGS, POLICIES), reversed(docs), strict=True):
        kube_client.delete(res, doc["metadata"]["name"])
    # The API server drops a deleted policy a moment later: later tests must not meet it.
    wait_for(lambda: not refused(), 30, "the playbook-vars policy to be gone")  # (an accepted probe is deleted)


ADMISSION_CASES = [
    ({"ansible_python_interpreter": "/bin/sh"}, "reserved by Ansible"),
    ({"ansible_connection": "ssh"}, "reserved by Ansible"),
    ({"ANSIBLE_BECOME": True}, "reserved by Ansible"),
    ({"become": True, "become_user": "root"}, "reserved by Ansible"),
    ({"environment": {"LD_PRELOAD": "/tmp/x.so"}}, "reserved by Ansible"),
    ({"hostvars": {}}, "reserved by Ansible"),
    ({"namespace": "kube-system"}, "operator sets itself"),
    ({"target_name": "coredns", "target_kind": "DaemonSet"}, "operator sets itself"),
    ({"kubeconfig": "/etc/kubernetes/admin.conf"}, "operator sets itself"),
    ({"_name": "coredns"}, "must be variable names"),
    ({"bad name; id": 1}, "must be variable names"),
]


def test_api_server_refuses_reserved_and_operator_owned_vars(vars_policy, tenants, kube_client):
    a, _ = tenants
    # What the authority rule asks of an ansible action's author (issue #16), so that only
    # this policy can refuse these.
    a.grant(kube_client, "patch-workloads", [{"apiGroups": ["apps"], "resources": ["deployments"],
                                              "verbs": ["patch"]}])
    client = a.client()
    try:
        for extra_vars, refusal in ADMISSION_CASES:
            with pytest.raises(kube.ApiError) as err:
                client.create(kube.MONITORED_SERVICES, service("evil", "dump-env.yml", extra_vars), a.namespace)
            assert err.value.status == 422, (extra_vars, err.value)
            assert refusal in err.value.message, (extra_vars, err.value.message)
            for name in extra_vars:
                assert name in err.value.message  # the refusal names the offending variable
            assert client.get_or_none(kube.MONITORED_SERVICES, "evil", a.namespace) is None
        # Allowed names pass admission (the catalog and the values are the operator's to check).
        created = client.create(kube.MONITORED_SERVICES, service("fine", "dump-env.yml", {"dump_to": "/tmp/x"}),
                                a.namespace)
        assert created["spec"]["remediation"]["actions"][0]["ansible"]["extraVars"] == {"dump_to": "/tmp/x"}
    finally:
        client.close()


def test_operator_runs_only_catalog_playbooks_with_schema_vars_and_a_clean_environment(
        kube_client, tenants, operators, kubeconfig, tmp_path):
    a, b = tenants
    out = tmp_path / "out"
    out.mkdir()
    marker = out / "ran-outside-catalog"
    # The admin's catalog: dump-env.yml, for tenant A's namespace only; the local-restart
    # playbook sits in the same directory but is not listed.
    catalog = tmp_path / "catalog.yaml"
    test_catalog = yaml.safe_load((FIXTURES / "catalog.yaml").read_text())
    entry = dict(test_catalog["playbooks"]["dump-env.yml"], namespaces=[a.namespace])
    catalog.write_text(yaml.safe_dump({"playbooks": {"dump-env.yml": entry}}))

    created = [
        (a.namespace, "outside", "restart-local-service.yml", {"restart_command": ["touch", str(marker)]}),
        (a.namespace, "shell", "dump-env.yml", {"dump_to": str(out / "shell.json"), "mode": "names; touch /tmp/x"}),
        (a.namespace, "unknown", "dump-env.yml", {"dump_to": str(out / "unknown.json"), "cmd": "id"}),
        (a.namespace, "good", "dump-env.yml", {"dump_to": str(out / "good.json"), "mode": "full"}),
        (b.namespace, "foreign", "dump-env.yml", {"dump_to": str(out / "foreign.json")}),
        # Without the admission policy (a cluster that lacks it), the operator refuses these itself.
        (a.namespace, "reserved", "dump-env.yml", {"dump_to": str(out / "reserved.json"),
                                                   "ansible_python_interpreter": "/bin/sh", "become": True}),
        (a.namespace, "override", "dump-env.yml", {"dump_to": str(out / "override.json"),
                                                   "namespace": b.namespace, "target_name": "victim"}),
    ]
    for ns, name, playbook, extra in created:
        # As admin: these are about the operator's own checks, not the tenant's rights.
        kube_client.create(kube.DEPLOYMENTS, deployment(name, replicas=1), ns)
        kube_client.create(kube.MONITORED_SERVICES, service(name, playbook, extra), ns)
    secrets = {
        "PARAMEDIC_SMTP_PASSWORD": CANARY, "PARAMEDIC_WEBHOOK_TOKEN": CANARY,
        "PARAMEDIC_SLACK_WEBHOOK_URL": f"http://127.0.0.1:9/{CANARY}",
        "PARAMEDIC_NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:9/{CANARY}",
        "OPERATOR_ONLY_SETTING": CANARY,
    }
    operators(kubeconfig, a.namespace, b.namespace, env={
        "PARAMEDIC_PLAYBOOKS_DIR": str(FIXTURES), "PARAMEDIC_PLAYBOOK_CATALOG": str(catalog), **secrets})
    for ns, name, *_ in created:
        kube_client.create(kube.INCIDENTS, incident(f"{name}-1", name), ns)

    refusals = {
        "outside": "playbook restart-local-service.yml is not in the playbook catalog (allowed: dump-env.yml)",
        "shell": "extraVars.mode must be one of ['names', 'full']",
        "unknown": "extraVars cmd not declared in the playbook catalog (allowed: dump_to, mode)",
        "foreign": f"playbook dump-env.yml is not allowed in namespace {b.namespace} by the playbook catalog",
        "reserved": "extraVars may not set 'ansible_python_interpreter': reserved by Ansible",
        "override": "extraVars may not set 'namespace': set by the operator",
    }
    for ns, name, *_ in created:
        # The attempt's outcome and, for a refusal, its timeline entry: one object.
        inc = wait_object(kube_client, kube.INCIDENTS, f"{name}-1", ns,
                          lambda i, name=name: finished_attempt(i) and (name == "good" or refusals[name] in timeline(i)),
                          180, f"the attempt of {name}")
        attempt = finished_attempt(inc)
        if name == "good":
            assert attempt.get("status") == "successful" and attempt.get("rc") == 0, attempt
            continue
        assert attempt["result"] == "Failed", attempt
        assert refusals[name] in attempt["message"], attempt
        assert "rc" not in attempt and "outputTail" not in attempt, "a refused playbook must not run"
        assert refusals[name] in timeline(inc)
    assert not marker.exists(), "the playbook outside the catalog ran"
    assert sorted(p.name for p in out.iterdir()) == ["good.json"], "a refused playbook ran"

    # The one allowed run saw an allowlisted environment: no setting, no secret of the operator.
    env = json.loads((out / "good.json").read_text())
    # (RUN_MARKER is the run's own random id, set for killing what a timed-out run left behind.)
    leaked = sorted(k for k, v in env.items()
                    if (k.startswith("PARAMEDIC_") and k != RUN_MARKER) or CANARY in v or k == "OPERATOR_ONLY_SETTING")
    assert not leaked, f"operator environment reached the playbook: {leaked}"
    assert env["PATH"] and env["LANG"]
    good = kube_client.get(kube.INCIDENTS, "good-1", a.namespace)
    assert CANARY not in json.dumps(good)
    # The operator passed the service's own target; the tenant could not choose another.
    tail = finished_attempt(good)["outputTail"]
    assert f"mode full for Deployment/good in {a.namespace}" in tail

