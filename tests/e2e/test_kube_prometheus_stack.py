"""kube-prometheus-stack in one flag: what the chart renders for it is what prometheus-operator accepts.

The AlertmanagerConfig and PrometheusRule the chart renders are server-side dry-run applied
on the real API server after installing prometheus-operator's own CRDs (vendored, with their
version, in tests/fixtures/prometheus-operator/). The rules are checked and unit-tested with
Debian's promtool: the alerts they raise carry the labels Paramedic routes by.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess

import pytest
import yaml

from devtools.cluster import REPO, tools_bin, wait_established
from paramedic.domain import alert_parse as parsing
from paramedic.domain import alert_routing as routing
from paramedic.domain.alert import Alert

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "paramedic"
FIXTURES = REPO / "tests" / "fixtures" / "prometheus-operator"
CRDS = [FIXTURES / "monitoring.coreos.com_alertmanagerconfigs.yaml",
        FIXTURES / "monitoring.coreos.com_prometheusrules.yaml"]


@pytest.fixture(scope="module")
def prometheus_operator_crds(kubeconfig):
    """prometheus-operator's CRDs on the API server (server-side apply: they are too large for
    client-side apply's annotation); removed afterwards unless they were there already."""
    def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(tools_bin() / "kubectl"), "--kubeconfig", str(kubeconfig), *args],
                              capture_output=True, text=True, check=check)

    names = ["alertmanagerconfigs.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"]
    existed = kubectl("get", "crd", *names, check=False).returncode == 0
    files = [arg for path in CRDS for arg in ("-f", str(path))]
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=paramedic-tests", *files)
    wait_established(kubeconfig, CRDS, timeout=180)
    yield
    if not existed:
        kubectl("delete", "--wait=false", *files, check=False)


@pytest.fixture(scope="module")
def render(tmp_path_factory):
    home = tmp_path_factory.mktemp("helm")
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}

    def run(namespace: str, *sets: str) -> dict[str, dict]:
        args = [str(tools_bin() / "helm"), "template", "pm", str(CHART), "--namespace", namespace,
                "--set", "kubePrometheusStack.enabled=true"]
        for s in sets:
            args += ["--set", s]
        out = subprocess.run(args, capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stderr
        docs = [d for d in yaml.safe_load_all(out.stdout) if d]
        return {d["kind"]: d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")}
    return run


def server_dry_run(run_kubectl, doc: dict) -> subprocess.CompletedProcess:
    return run_kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=paramedic-tests",
                       "-f", "-", input=yaml.safe_dump(doc), check=False)


def test_rendered_alertmanager_config_and_rules_pass_the_crd_schema(prometheus_operator_crds, render, run_kubectl,
                                                                    namespace):
    for sets in ([], ["allNamespaces=false", f"watchNamespaces={{{namespace}}}", "webhook.existingSecret=am-token",
                      "webhook.existingSecretKey=bearer"]):
        objs = render(namespace, *sets)
        assert set(objs) == {"AlertmanagerConfig", "PrometheusRule"}
        for kind, doc in objs.items():
            out = server_dry_run(run_kubectl, doc)
            assert out.returncode == 0, f"{kind} refused by the API server: {out.stderr}"
            assert "serverside-applied (server dry run)" in out.stdout, out.stdout

    amcfg = render(namespace)["AlertmanagerConfig"]
    [receiver] = amcfg["spec"]["receivers"]
    [hook] = receiver["webhookConfigs"]
    assert amcfg["spec"]["route"]["receiver"] == receiver["name"]
    assert hook["url"] == f"http://pm-paramedic-webhook.{namespace}.svc:8080/api/v1/alertmanager"
    assert hook["sendResolved"] is True and hook["maxAlerts"] == 1000
    assert hook["httpConfig"]["authorization"] == {
        "type": "Bearer", "credentials": {"name": "pm-paramedic-webhook-token", "key": "token"}}
    own = render(namespace, "webhook.existingSecret=am-token", "webhook.existingSecretKey=bearer")
    assert own["AlertmanagerConfig"]["spec"]["receivers"][0]["webhookConfigs"][0]["httpConfig"]["authorization"][
        "credentials"] == {"name": "am-token", "key": "bearer"}
    scoped = render(namespace, "allNamespaces=false", "watchNamespaces={shop,payments}")
    assert {"name": "namespace", "matchType": "=~", "value": "shop|payments"} in \
        scoped["AlertmanagerConfig"]["spec"]["route"]["matchers"]


def test_the_crd_schema_really_refuses_a_bad_object(prometheus_operator_crds, render, run_kubectl, namespace):
    """The negative control: the dry run checks the vendored schema, it does not just accept anything."""
    amcfg = copy.deepcopy(render(namespace)["AlertmanagerConfig"])
    amcfg["spec"]["route"]["matchers"][0]["matchType"] = "~"
    out = server_dry_run(run_kubectl, amcfg)
    assert out.returncode != 0 and "matchType" in out.stderr, out.stderr
    rule = copy.deepcopy(render(namespace)["PrometheusRule"])
    rule["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    out = server_dry_run(run_kubectl, rule)
    assert out.returncode != 0 and "for" in out.stderr, out.stderr


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian prometheus) not installed")
def test_rules_fire_with_the_labels_paramedic_routes_by(render, tmp_path, namespace):
    rule = render("paramedic", "kubePrometheusStack.rules.for=2m")["PrometheusRule"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    ksm = 'job="kube-state-metrics", service="kps-kube-state-metrics", instance="10.0.0.9:8080"'
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'kube_pod_container_status_waiting_reason{{{ksm}, namespace="shop", '
                           f'pod="checkout-7d9f8b6c5d-x2x4z", container="app", reason="CrashLoopBackOff", '
                           f'uid="u1"}}', "values": "1x10"},
                {"series": f'kube_deployment_spec_replicas{{{ksm}, namespace="shop", deployment="checkout"}}',
                 "values": "2x10"},
                {"series": f'kube_deployment_status_replicas_available{{{ksm}, namespace="shop", '
                           f'deployment="checkout"}}', "values": "0x10"},
                {"series": f'kube_statefulset_replicas{{{ksm}, namespace="shop", statefulset="db"}}', "values": "3x10"},
                {"series": f'kube_statefulset_status_replicas_ready{{{ksm}, namespace="shop", statefulset="db"}}',
                 "values": "3x10"},
            ],
            "alert_rule_test": [
                {"eval_time": "5m", "alertname": "ParamedicPodCrashLooping", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "shop", "pod": "checkout-7d9f8b6c5d-x2x4z",
                                   "container": "app"},
                    "exp_annotations": {
                        "summary": "Pod shop/checkout-7d9f8b6c5d-x2x4z (app) is crash looping",
                        "description": "Container app of pod shop/checkout-7d9f8b6c5d-x2x4z has been in "
                                       "CrashLoopBackOff for 2m."}}]},
                {"eval_time": "1m", "alertname": "ParamedicPodCrashLooping", "exp_alerts": []},  # `for` holds it
                {"eval_time": "5m", "alertname": "ParamedicDeploymentUnavailable", "exp_alerts": [{
                    "exp_labels": {"severity": "warning", "namespace": "shop", "deployment": "checkout"},
                    "exp_annotations": {
                        "summary": "Deployment shop/checkout has unavailable replicas",
                        "description": "Fewer replicas of shop/checkout are available than it wants, for 2m."}}]},
                {"eval_time": "5m", "alertname": "ParamedicStatefulSetUnavailable", "exp_alerts": []},
            ],
        }],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    out = subprocess.run(["promtool", "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

    # Those labels are what the receiver routes by: the target's own, in the alert's namespace.
    services = [{"metadata": {"name": "checkout", "namespace": "shop"}, "spec": {"target": {"name": "checkout"}}}]
    by_deployment = Alert(fingerprint="a", status="firing", starts_at=parsing._NO_TIME_BEFORE, annotations={},
                              labels={"alertname": "ParamedicDeploymentUnavailable", "severity": "warning",
                                      "namespace": "shop", "deployment": "checkout"})
    assert routing.claim(by_deployment, services).rule == routing.CLAIM_WORKLOAD_LABEL
    by_pod = Alert(fingerprint="b", status="firing", starts_at=parsing._NO_TIME_BEFORE, annotations={},
                       labels={"alertname": "ParamedicPodCrashLooping", "severity": "warning", "namespace": "shop",
                               "pod": "checkout-7d9f8b6c5d-x2x4z", "container": "app"})
    assert routing.pod_to_look_up(by_pod, services) == "checkout-7d9f8b6c5d-x2x4z"
