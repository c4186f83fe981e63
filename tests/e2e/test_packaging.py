"""Packaging against the real control plane: the chart renders, lints, refuses bad
values and installs; the kustomization and the samples pass server-side
validation; the installed ServiceAccounts may do exactly what Paramedic needs.

Pods never really run here (kwok marks them Running), so this checks what the
API server and Helm decide, not the image.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from devtools.cluster import REPO, tools_bin
from paramedic import kube
from paramedic.domain.playbook_catalog import parse_catalog

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "paramedic"
MANIFESTS = REPO / "manifests"

_spec = importlib.util.spec_from_file_location("paramedic_chart_checks", REPO / "tests" / "chart" / "test_chart_files.py")
checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checks)


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory) -> dict[str, str]:
    # Helm's cache and config stay out of the user's home.
    home = tmp_path_factory.mktemp("helm")
    return {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data")}


@pytest.fixture(scope="module")
def helm(helm_env):
    def run(*args: str, kubeconfig: Path | None = None, check: bool = True, input: str | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess:
        cmd = [str(tools_bin() / "helm"), *args]
        if kubeconfig is not None:
            cmd += ["--kubeconfig", str(kubeconfig)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=helm_env, input=input, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(args[:2])} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out
    return run


def render(helm, *sets: str, namespace: str = "paramedic") -> list[dict]:
    args = ["template", "pm", str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    return checks.load_docs(helm(*args).stdout)


def find(docs: list[dict], kind: str, suffix: str = "") -> list[dict]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]


# --- the chart, rendered -------------------------------------------------------------

def test_helm_lint(helm):
    helm("lint", str(CHART))
    helm("lint", str(CHART), "--set", "allNamespaces=false", "--set", "watchNamespaces={shop}",
         "--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
         "--set", "grafanaDashboard.enabled=true")


def test_default_render_is_least_privilege_and_unprivileged(helm):
    docs = render(helm)
    assert checks.rbac_problems(docs) == []
    assert checks.pod_security_problems(docs) == []
    config = find(docs, "ConfigMap", "-config")[0]
    assert checks.config_problems(config["data"]) == []
    assert config["data"]["PARAMEDIC_NAMESPACE"] == "paramedic"
    operator = find(docs, "Deployment", "-operator")[0]["spec"]["template"]["spec"]["containers"][0]
    assert operator["args"] == ["paramedic-operator", "--all-namespaces"]
    assert not [p for p in docs if p["apiVersion"].startswith("kopf.dev/")]  # replicas share Leases, no peering
    assert checks.ha_problems(docs, "pm-paramedic-operator", "paramedic") == []
    assert not find(docs, "ServiceMonitor") and not find(docs, "PrometheusRule")
    token = find(docs, "Secret", "-webhook-token")[0]
    assert len(token["data"]["token"]) >= 40  # a generated token, base64


def test_toggles_render_monitoring_and_namespaced_rbac(helm, tmp_path):
    docs = render(helm, "allNamespaces=false", "watchNamespaces={shop,payments}", "serviceMonitor.enabled=true",
                  "prometheusRule.enabled=true", "grafanaDashboard.enabled=true", "smtp.host=mail.example.com",
                  "config.adminEmails=ops@example.com",
                  "smtp.password=s3cret", "webhook.existingSecret=alertmanager-token", namespace="ops")
    assert checks.rbac_problems(docs) == []
    assert checks.pod_security_problems(docs) == []
    # Namespaced rules only through RoleBindings in the watched namespaces (the webhook also in its own).
    cluster_rules = [r for d in find(docs, "ClusterRole", "-cluster") for r in d["rules"]]
    assert all("paramedic.dev" not in r["apiGroups"] for r in cluster_rules)
    bindings = {(d["metadata"]["namespace"], d["roleRef"]["name"]) for d in find(docs, "RoleBinding")}
    assert bindings == {("shop", "pm-paramedic-operator"), ("payments", "pm-paramedic-operator"),
                        ("shop", "pm-paramedic-webhook"), ("payments", "pm-paramedic-webhook"),
                        ("ops", "pm-paramedic-webhook"),
                        ("ops", "pm-paramedic-operator-seal"),  # its seal key's Secret, in its own namespace
                        ("ops", "pm-paramedic-operator-leases"),  # and its replicas' Leases
                        ("ops-console-sessions", "pm-paramedic-console-sessions")}  # sessions, apart
    assert checks.ha_problems(docs, "pm-paramedic-operator", "ops") == []
    operator = find(docs, "Deployment", "-operator")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=shop" in operator["args"] and "--all-namespaces" not in operator["args"]
    config = find(docs, "ConfigMap", "-config")[0]["data"]
    assert config["PARAMEDIC_WATCH_NAMESPACES"] == "shop,payments" and config["PARAMEDIC_SMTP_HOST"] == "mail.example.com"
    assert config["PARAMEDIC_ADMIN_EMAILS"] == "ops@example.com"
    assert checks.config_problems(config) == []
    # The token comes from the user's Secret; the chart makes none.
    assert not find(docs, "Secret", "-webhook-token")
    webhook = find(docs, "Deployment", "-webhook")[0]["spec"]["template"]["spec"]
    assert {"name": "token", "secret": {"secretName": "alertmanager-token", "defaultMode": 0o440}} in webhook["volumes"]
    env = {e["name"]: e.get("value") for e in webhook["containers"][0]["env"]}
    assert env["PARAMEDIC_WEBHOOK_TOKEN_FILE"] == "/etc/paramedic/webhook/token"
    assert env["PARAMEDIC_WEBHOOK_BIND"] == "0.0.0.0:8080"

    monitor = find(docs, "ServiceMonitor")[0]
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}
    dashboard = find(docs, "ConfigMap", "-dashboard")[0]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["paramedic.json"])["uid"] == "paramedic-overview"
    rule = find(docs, "PrometheusRule")[0]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"ParamedicWebhookDown", "ParamedicOperatorDown", "ParamedicNotificationsFailing",
            "ParamedicSLABreachesIncreasing"} <= alerts
    if shutil.which("promtool"):
        assert checks.promtool_problems(rule["spec"], tmp_path) == ""


@pytest.mark.parametrize("values, field", [
    ({"webhook": {"replicas": "x"}}, "/webhook/replicas"),
    ({"operator": {"replicas": "x"}}, "/operator/replicas"),
    ({"operator": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                                  "whenUnsatisfiable": "Sometimes"}]}},
     "/operator/topologySpreadConstraints/0/whenUnsatisfiable"),
    ({"peering": {"name": "paramedic"}}, "peering"),
    ({"replicas": 2}, "replicas"),
    ({"allNamespaces": False}, "/watchNamespaces"),
    ({"smtp": {"security": "ssl"}}, "/smtp/security"),
    ({"config": {"adminEmails": ["not-an-address"]}}, "/config/adminEmails/0"),
    ({"config": {"adminEmails": "ops@example.com,nope"}}, "/config/adminEmails"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
])
def test_schema_refuses_bad_values(helm, tmp_path, values, field):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    out = helm("template", "pm", str(CHART), "-f", str(path), check=False)
    assert out.returncode != 0
    assert "schema" in out.stderr and field in out.stderr, out.stderr


# --- plain manifests and samples, validated by the API server -------------------------

def remap_namespace(docs: list[dict], old: str, new: str) -> list[dict]:
    """Move namespaced objects (and ServiceAccount subjects) from `old` to `new`."""
    out = []
    for doc in docs:
        if doc["kind"] == "Namespace":
            continue
        doc = json.loads(json.dumps(doc))
        if doc["metadata"].get("namespace") == old:
            doc["metadata"]["namespace"] = new
        for subject in doc.get("subjects", []):
            if subject.get("namespace") == old:
                subject["namespace"] = new
        out.append(doc)
    return out


def dry_run(run_kubectl, docs: list[dict]) -> str:
    out = run_kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs), check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_kustomization_passes_server_side_dry_run(run_kubectl, namespace):
    built = checks.load_docs(run_kubectl("kustomize", str(MANIFESTS)).stdout)
    assert {d["kind"] for d in built} >= {"Namespace", "Deployment", "ClusterRole", "Role", "PodDisruptionBudget"}
    assert checks.rbac_problems(built) == [] and checks.pod_security_problems(built) == []
    assert checks.ha_problems(built, "paramedic-operator", "paramedic") == []
    # Server dry-run creates nothing, so namespaced objects go to a namespace that exists (the
    # console's sessions' Role too).
    docs = remap_namespace(remap_namespace(built, "paramedic", namespace), "paramedic-console-sessions", namespace)
    out = dry_run(run_kubectl, docs)
    for doc in docs:
        assert f"/{doc['metadata']['name']} " in out, f"{doc['kind']} {doc['metadata']['name']} not applied:\n{out}"


def test_samples_pass_server_side_validation(run_kubectl, namespace):
    docs = checks.sample_docs()
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    out = dry_run(run_kubectl, docs)
    assert "monitoredservice.paramedic.dev/checkout created (server dry run)" in out
    assert "oncallschedule.paramedic.dev/payments created (server dry run)" in out
    # The CRD's validation really runs: a probe with both url and service is refused.
    msvc = next(d for d in docs if d["kind"] == "MonitoredService")
    msvc["spec"]["probe"]["url"] = "http://checkout:8080/healthz"
    bad = run_kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(msvc), check=False)
    assert bad.returncode != 0 and "exactly one of url or service" in bad.stderr


# --- a real helm install ---------------------------------------------------------------

def _new_namespace(kube_client) -> str:
    name = f"pm-{uuid.uuid4().hex[:8]}"
    kube_client.create(kube.NAMESPACES, {"metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def release(helm, kubeconfig, kube_client):
    """Paramedic installed by Helm, watching all namespaces; removed afterwards."""
    ns = _new_namespace(kube_client)
    name = ns  # unique: cluster-scoped objects (ClusterRoles, admission policies) are named after it
    try:
        helm("install", name, str(CHART), "--namespace", ns,
             "--wait", "--timeout", "180s", kubeconfig=kubeconfig)
        yield name, ns
    finally:
        helm("uninstall", name, "--namespace", ns, "--wait", "--timeout", "120s", kubeconfig=kubeconfig, check=False)
        kube_client.delete(kube.NAMESPACES, ns)


def test_helm_install_deployments_become_available(release, run_kubectl, helm, kubeconfig):
    name, ns = release
    out = run_kubectl("wait", "-n", ns, "--for=condition=Available", "--timeout=120s",
                      "deployment", "-l", f"app.kubernetes.io/instance={name}")
    assert out.stdout.count("condition met") == 3
    deployments = json.loads(run_kubectl("get", "deploy", "-n", ns, "-o", "json").stdout)["items"]
    assert {d["metadata"]["name"]: d["status"].get("availableReplicas") for d in deployments} == \
        {f"{name}-paramedic-operator": 2, f"{name}-paramedic-webhook": 2, f"{name}-paramedic-console": 2}
    budgets = json.loads(run_kubectl("get", "pdb", "-n", ns, "-o", "json").stdout)["items"]
    assert sorted(b["metadata"]["name"] for b in budgets) == [
        f"{name}-paramedic-{c}" for c in ("console", "operator", "webhook")]
    status = helm("status", name, "--namespace", ns, kubeconfig=kubeconfig).stdout
    assert "STATUS: deployed" in status and "/api/v1/alertmanager" in status  # NOTES rendered


def test_helm_upgrade_keeps_the_generated_token(release, run_kubectl, helm, kubeconfig):
    name, ns = release
    secret = f"{name}-paramedic-webhook-token"
    before = run_kubectl("get", "secret", secret, "-n", ns, "-o", "jsonpath={.data.token}").stdout
    assert before
    helm("upgrade", name, str(CHART), "--namespace", ns, "--reuse-values", "--set", "config.logLevel=DEBUG",
         kubeconfig=kubeconfig)
    after = run_kubectl("get", "secret", secret, "-n", ns, "-o", "jsonpath={.data.token}").stdout
    assert after == before  # Alertmanager keeps working across upgrades
    level = run_kubectl("get", "configmap", f"{name}-paramedic-config", "-n", ns,
                        "-o", "jsonpath={.data.PARAMEDIC_LOG_LEVEL}").stdout
    assert level == "DEBUG"


def can_i(run_kubectl, sa: str, verb: str, resource: str, namespace: str | None = None,
          subresource: str | None = None) -> bool:
    args = ["auth", "can-i", verb, resource, f"--as={sa}"]
    if subresource:
        args.append(f"--subresource={subresource}")
    args += ["-n", namespace] if namespace else []
    out = run_kubectl(*args, check=False)
    assert out.stdout.strip() in ("yes", "no"), out.stderr
    return out.stdout.strip() == "yes"


def test_installed_operator_service_account_is_least_privilege(release, run_kubectl, namespace):
    name, ns = release
    sa = f"system:serviceaccount:{ns}:{name}-paramedic-operator"
    elsewhere = namespace  # any namespace: it watches them all
    assert can_i(run_kubectl, sa, "patch", "incidents.paramedic.dev", elsewhere, subresource="status")
    assert can_i(run_kubectl, sa, "create", "incidents.paramedic.dev", elsewhere)
    assert can_i(run_kubectl, sa, "delete", "incidents.paramedic.dev", elsewhere)
    assert can_i(run_kubectl, sa, "watch", "monitoredservices.paramedic.dev", elsewhere)
    assert can_i(run_kubectl, sa, "patch", "deployments.apps", elsewhere)
    assert can_i(run_kubectl, sa, "list", "replicasets.apps", elsewhere)
    assert can_i(run_kubectl, sa, "create", "events.events.k8s.io", elsewhere)
    assert can_i(run_kubectl, sa, "watch", "namespaces")
    # Its replicas' Leases: in the release's namespace only.
    from paramedic.operator.preflight import LEASE_VERBS
    for verb in LEASE_VERBS:
        assert can_i(run_kubectl, sa, verb, "leases.coordination.k8s.io", ns)
        assert not can_i(run_kubectl, sa, verb, "leases.coordination.k8s.io", elsewhere)
    assert not can_i(run_kubectl, sa, "patch", "leases.coordination.k8s.io", "kube-system")
    assert not can_i(run_kubectl, sa, "delete", "deployments.apps", elsewhere)
    # Narrowed to what the code uses: only the status of services and schedules is written,
    # workloads are read one by one, pods never.
    assert can_i(run_kubectl, sa, "remediate", "monitoredservices.paramedic.dev", elsewhere)
    assert can_i(run_kubectl, sa, "patch", "deployments.apps", elsewhere, subresource="scale")
    assert not can_i(run_kubectl, sa, "patch", "monitoredservices.paramedic.dev", elsewhere)
    assert not can_i(run_kubectl, sa, "update", "incidents.paramedic.dev", elsewhere)
    assert not can_i(run_kubectl, sa, "list", "deployments.apps", elsewhere)
    assert not can_i(run_kubectl, sa, "get", "pods", elsewhere)
    assert not can_i(run_kubectl, sa, "get", "secrets", elsewhere)
    assert not can_i(run_kubectl, sa, "get", "secrets", ns)
    assert not can_i(run_kubectl, sa, "create", "pods", elsewhere)
    assert not can_i(run_kubectl, sa, "delete", "pods", elsewhere)
    assert not can_i(run_kubectl, sa, "update", "customresourcedefinitions.apiextensions.k8s.io")
    assert not can_i(run_kubectl, sa, "create", "clusterrolebindings.rbac.authorization.k8s.io")
    listed = run_kubectl("auth", "can-i", "--list", f"--as={sa}", "-n", elsewhere).stdout
    resources = {line.split()[0] for line in listed.splitlines()[1:] if line.strip()}
    assert "incidents.paramedic.dev/status" in resources
    assert not {"secrets", "*.*", "*"} & resources


def test_installed_admission_policy_refuses_a_service_beyond_its_authors_rights(release, run_kubectl, namespace):
    name, _ = release
    policies = json.loads(run_kubectl("get", "validatingadmissionpolicies", "-o", "json").stdout)["items"]
    assert {f"{name}-paramedic-monitoredservice-authority", f"{name}-paramedic-incident-authority"} <= \
        {p["metadata"]["name"] for p in policies}
    run_kubectl("create", "serviceaccount", "author", "-n", namespace)
    run_kubectl("create", "role", "author", "-n", namespace, "--verb=create",
                "--resource=monitoredservices.paramedic.dev")
    run_kubectl("create", "rolebinding", "author", "-n", namespace, "--role=author",
                f"--serviceaccount={namespace}:author")
    service = {"apiVersion": "paramedic.dev/v1alpha1", "kind": "MonitoredService",
               "metadata": {"name": "shop", "namespace": namespace},
               "spec": {"target": {"name": "shop"}, "remediation": {"actions": [{"restart": {}}]}}}

    def refused() -> str:
        out = run_kubectl("create", "--dry-run=server", "-f", "-", f"--as=system:serviceaccount:{namespace}:author",
                          input=yaml.safe_dump(service), check=False)
        return out.stderr if out.returncode != 0 and "which the restart action needs" in out.stderr else ""

    from devtools.wait import wait_for
    message = wait_for(refused, 60, "the chart's admission policy to be active")
    assert f'may not patch deployments.apps "shop" in {namespace}' in message


def test_installed_webhook_service_account_only_writes_incidents(release, run_kubectl, namespace):
    name, ns = release
    sa = f"system:serviceaccount:{ns}:{name}-paramedic-webhook"
    assert can_i(run_kubectl, sa, "create", "incidents.paramedic.dev", namespace)
    assert can_i(run_kubectl, sa, "patch", "incidents.paramedic.dev", namespace, subresource="status")
    assert can_i(run_kubectl, sa, "list", "monitoredservices.paramedic.dev", namespace)
    assert can_i(run_kubectl, sa, "get", "namespaces")
    # Routing alerts that name only a pod: the pod's owner, read one object at a time.
    assert can_i(run_kubectl, sa, "get", "pods", namespace)
    assert can_i(run_kubectl, sa, "get", "replicasets.apps", namespace)
    assert not can_i(run_kubectl, sa, "list", "pods", namespace)
    assert not can_i(run_kubectl, sa, "get", "pods", namespace, subresource="log")
    assert not can_i(run_kubectl, sa, "get", "deployments.apps", namespace)
    assert not can_i(run_kubectl, sa, "delete", "incidents.paramedic.dev", namespace)
    assert not can_i(run_kubectl, sa, "patch", "monitoredservices.paramedic.dev", namespace)
    assert can_i(run_kubectl, sa, "remediate", "monitoredservices.paramedic.dev", namespace)  # managed incidents
    assert not can_i(run_kubectl, sa, "update", "incidents.paramedic.dev", namespace)
    assert not can_i(run_kubectl, sa, "list", "namespaces")
    assert not can_i(run_kubectl, sa, "patch", "deployments.apps", namespace)
    assert not can_i(run_kubectl, sa, "get", "secrets", ns)


def test_installed_console_keeps_its_sessions_apart_and_reads_no_secret_of_the_release(
        release, run_kubectl, kube_client, kubeconfig, namespace, tmp_path):
    """The console's ServiceAccount may use Secrets only in the sessions' namespace the chart made;
    the console, under that ServiceAccount's token, signs a person in and out there."""
    from paramedic.console import sessions
    from paramedic.console.apiserver import address_only
    from paramedic.console.app import create_app
    from paramedic.settings import Settings
    from tests.console_support import READ_ONLY_RULES, csrf_of, person

    name, ns = release
    sessions_ns = f"{ns}-console-sessions"
    assert kube_client.get_or_none(kube.NAMESPACES, sessions_ns) is not None  # made by the chart
    sa = f"system:serviceaccount:{ns}:{name}-paramedic-console"
    for verb in ("get", "list", "create", "delete"):
        assert can_i(run_kubectl, sa, verb, "secrets", sessions_ns)
        assert not can_i(run_kubectl, sa, verb, "secrets", ns)  # the receiver's token, the seal key
        assert not can_i(run_kubectl, sa, verb, "secrets", namespace)
    assert not can_i(run_kubectl, sa, "update", "secrets", sessions_ns)
    assert not can_i(run_kubectl, sa, "list", "incidents.paramedic.dev", namespace)  # people's rights only

    sa_config = sa_kubeconfig(run_kubectl, kubeconfig, tmp_path, ns, f"{name}-paramedic-console", "paramedic-console")
    settings = Settings(kubeconfig=str(sa_config), namespace=ns, console_session_seconds=600)
    assert settings.sessions_namespace() == sessions_ns  # the console's default is the chart's
    app = create_app(settings, address_only(str(kubeconfig)), secret=b"k" * 32)
    app.testing = True
    store = app.extensions["paramedic.sessions"]
    assert store.strangers() == []  # nothing but sessions there
    viewer, _ = person(kube_client, namespace, f"viewer-{uuid.uuid4().hex[:6]}", READ_ONLY_RULES)
    web = app.test_client()
    form = web.get("/signin").get_data(as_text=True)
    assert web.post("/signin", data={"token": viewer, "namespaces": namespace, "csrf": csrf_of(form)}).status_code == 302
    [secret] = kube_client.list(kube.SECRETS, sessions_ns, labels={sessions.LABEL: "true"})
    page = web.get("/incidents")
    assert page.status_code == 200
    assert web.post("/signout", data={"csrf": csrf_of(page.get_data(as_text=True))}).status_code == 302
    assert kube_client.get_or_none(kube.SECRETS, secret["metadata"]["name"], sessions_ns) is None


def test_namespaced_install_grants_only_the_watched_namespaces(helm, kubeconfig, kube_client, run_kubectl, namespace):
    ns = _new_namespace(kube_client)
    name = ns
    try:
        helm("install", name, str(CHART), "--namespace", ns, "--set", "allNamespaces=false",
             "--set", f"watchNamespaces={{{namespace}}}",
             "--wait", "--timeout", "180s", kubeconfig=kubeconfig)
        operator = f"system:serviceaccount:{ns}:{name}-paramedic-operator"
        webhook = f"system:serviceaccount:{ns}:{name}-paramedic-webhook"
        assert can_i(run_kubectl, operator, "patch", "incidents.paramedic.dev", namespace, subresource="status")
        assert can_i(run_kubectl, operator, "patch", "leases.coordination.k8s.io", ns)  # its replicas' shards
        assert not can_i(run_kubectl, operator, "patch", "leases.coordination.k8s.io", namespace)
        assert not can_i(run_kubectl, operator, "patch", "incidents.paramedic.dev", "default", subresource="status")
        assert not can_i(run_kubectl, operator, "patch", "deployments.apps", "default")
        assert not can_i(run_kubectl, operator, "remediate", "monitoredservices.paramedic.dev", "default")
        assert can_i(run_kubectl, webhook, "create", "incidents.paramedic.dev", namespace)
        assert can_i(run_kubectl, webhook, "create", "incidents.paramedic.dev", ns)  # unmatched alerts
        assert not can_i(run_kubectl, webhook, "create", "incidents.paramedic.dev", "default")
    finally:
        helm("uninstall", name, "--namespace", ns, "--wait", "--timeout", "120s", kubeconfig=kubeconfig, check=False)
        kube_client.delete(kube.NAMESPACES, ns)


def test_operator_works_under_the_charts_service_account(release, run_kubectl, kube_client, kubeconfig, namespace,
                                                         operators, tmp_path):
    """Not the admin: the operator runs with a token of the chart's ServiceAccount, shares the work
    through its Leases as the chart's replicas do, and still does its job."""
    from paramedic.domain import sharding
    from tests.e2e.test_control_plane import deployment
    from tests.helpers import SwitchableService, wait_object

    name, ns = release
    sa_config = sa_kubeconfig(run_kubectl, kubeconfig, tmp_path, ns, f"{name}-paramedic-operator", "paramedic-operator")
    assert run_kubectl("--kubeconfig", str(sa_config), "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"
                       ).stdout == f"system:serviceaccount:{ns}:{name}-paramedic-operator"

    target = SwitchableService()
    try:
        kube_client.create(kube.DEPLOYMENTS, deployment("shop"), namespace)
        wait_object(kube_client, kube.DEPLOYMENTS, "shop", namespace, lambda d: d["status"]["availableReplicas"] == 2,
                    90, "shop available")
        kube_client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "shop"}, "spec": {
            "target": {"name": "shop"},
            "probe": {"url": target.url, "intervalSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 2},
            "remediation": {"actions": [{"restart": {}}]}}}, namespace)
        # Its own namespace is the release's, as the chart sets it: the seal key's Secret and the Leases are there.
        identity = f"sa-{name}"
        operators(sa_config, namespace, standalone=False, env={
            "KUBECONFIG": str(sa_config), "PARAMEDIC_NAMESPACE": ns, "PARAMEDIC_IDENTITY": identity})
        wait_object(kube_client, kube.MONITORED_SERVICES, "shop", namespace, lambda s: s["status"]["health"] == "Healthy",
                    40, "probe status written under the ServiceAccount")
        target.set("failing")
        wait_object(kube_client, kube.INCIDENTS, "shop-down-1", namespace, bool, 40, "incident created")
        wait_object(kube_client, kube.DEPLOYMENTS, "shop", namespace,
                    lambda d: d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"], 40,
                    "restart")
        events = [e for e in kube_client.list(kube.EVENTS, namespace) if e.get("reportingController") ==
                  "paramedic.dev/operator"]
        assert events, "events are posted under the ServiceAccount"
        # The release's own operator pods never run here (kwok), so every shard is this replica's.
        shards = kube_client.list(kube.LEASES, ns, labels={sharding.LABEL: sharding.SHARD})
        assert shards and {lease["spec"].get("holderIdentity") for lease in shards} == {identity}
    finally:
        target.stop()


def test_chart_mounts_secrets_as_files_and_carries_the_playbook_catalog(helm, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({
        "smtp": {"host": "mail.example.com", "username": "bot", "password": "pw"},
        "slack": {"webhookURL": "https://hooks.example.com/x"},
        "playbookCatalog": {"playbooks": {
            "scale-deployment.yml": None,   # an admin removes a default playbook...
            "my-fix.yml": {"vars": {"level": {"enum": [1, 2]}}, "namespaces": ["shop"]}}}}))  # ...and adds one
    docs = checks.load_docs(helm("template", "pm", str(CHART), "--namespace", "paramedic", "-f", str(values)).stdout)
    pod = find(docs, "Deployment", "-operator")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # No secret as an environment variable: only the pod's own name comes from elsewhere.
    assert [e["valueFrom"] for e in container["env"] if "valueFrom" in e] == [{"fieldRef": {"fieldPath": "metadata.name"}}]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name in ("SMTP_USERNAME", "SMTP_PASSWORD", "SLACK_WEBHOOK_URL", "NOTIFY_WEBHOOK_URL"):
        path = env[f"PARAMEDIC_{name}_FILE"]
        assert volumes[mounts[path.rsplit("/", 1)[0]]]["secret"]["secretName"] == "pm-paramedic-notify"
    secret = find(docs, "Secret", "-notify")[0]
    assert {"smtp-username", "smtp-password", "slack-webhook-url"} <= set(secret["data"])

    catalog_path = env["PARAMEDIC_PLAYBOOK_CATALOG"]
    configmap = volumes[mounts[catalog_path.rsplit("/", 1)[0]]]["configMap"]["name"]
    [cm] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == configmap]
    catalog = yaml.safe_load(cm["data"][catalog_path.rsplit("/", 1)[1]])
    assert sorted(catalog["playbooks"]) == ["my-fix.yml", "restart-deployment.yml", "rollback-deployment.yml"]
    assert parse_catalog(catalog).entries["my-fix.yml"].namespaces == ("shop",)

    [policy] = find(docs, "ValidatingAdmissionPolicy", "-playbook-vars")
    [binding] = find(docs, "ValidatingAdmissionPolicyBinding", "-playbook-vars")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    shipped = next(yaml.safe_load_all((REPO / "manifests" / "playbook-vars-policy.yaml").read_text()))
    assert policy["spec"] == shipped["spec"]
    assert not find(render(helm, "playbookVarsPolicy.enabled=false"), "ValidatingAdmissionPolicy", "-playbook-vars")


def sa_kubeconfig(run_kubectl, kubeconfig: Path, tmp_path: Path, ns: str, account: str, user: str) -> Path:
    """A kubeconfig acting with a one-hour token of the ServiceAccount `account` in `ns`."""
    from devtools.cluster import kubeconfig_yaml

    token = run_kubectl("create", "token", account, "-n", ns, "--duration=1h").stdout.strip()
    cluster = json.loads(Path(kubeconfig).read_text())["clusters"][0]["cluster"]
    path = tmp_path / f"{user}-kubeconfig"
    path.write_text(kubeconfig_yaml(cluster["server"], Path(cluster["certificate-authority"]), token, user=user))
    return path
