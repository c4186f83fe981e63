"""The chart's and the manifests' defences: admission policies, NetworkPolicies, PodDisruptionBudgets,
and the console's transport (no Ingress without TLS unless asked for; a Secure cookie unless asked not to).

The policies' behaviour is proven against the API server in tests/e2e/test_tenant_admission.py
(installed from manifests/); here the chart's copies are held equal to them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.helm import render

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
POLICY_FILES = ("admission-policy.yaml", "playbook-vars-policy.yaml")


def manifest(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# Who Paramedic is, in the manifests (namespace paramedic) and in render()'s release (pm in ops).
IDENTITIES = {"system:serviceaccount:ops:pm-paramedic-operator": "system:serviceaccount:paramedic:paramedic-operator",
              "system:serviceaccount:ops:pm-paramedic-webhook": "system:serviceaccount:paramedic:paramedic-webhook"}


def as_in_the_manifests(doc: dict) -> dict:
    text = yaml.safe_dump(doc)
    for chart, manifests in IDENTITIES.items():
        text = text.replace(chart, manifests)
    return yaml.safe_load(text)


def test_chart_policies_are_the_manifests_policies():
    docs = [as_in_the_manifests(d) for d in render()]
    for kind in POLICY_KINDS:
        chart = of_kind(docs, kind)
        shipped = of_kind([d for f in POLICY_FILES for d in manifest(f)], kind)
        assert sorted(chart) == sorted(f"pm-{name}" for name in shipped)
        for name, doc in shipped.items():
            spec = chart[f"pm-{name}"]["spec"]
            if kind == "ValidatingAdmissionPolicyBinding":
                assert spec["policyName"] == f"pm-{doc['spec']['policyName']}"
                spec = {**spec, "policyName": doc["spec"]["policyName"]}
            assert spec == doc["spec"], name
            assert doc["spec"].get("validationActions", ["Deny"]) == ["Deny"]


@pytest.mark.parametrize("path, reason", [("admission-policy.yaml", "Forbidden"),  # a missing right
                                          ("playbook-vars-policy.yaml", "Invalid")])  # a bad value
def test_policies_deny_and_fail_closed(path, reason):
    for doc in manifest(path):
        if doc["kind"] == "ValidatingAdmissionPolicy":
            assert doc["spec"]["failurePolicy"] == "Fail"
            assert all(v["reason"] == reason and v["messageExpression"] for v in doc["spec"]["validations"])
            # The checks run with the request's user; status writes match only the policy that
            # keeps them Paramedic's own.
            resources = {r for rule in doc["spec"]["matchConstraints"]["resourceRules"] for r in rule["resources"]}
            if doc["metadata"]["name"] == "paramedic-status-writers":
                assert resources == {"incidents/status", "monitoredservices/status", "oncallschedules/status"}
            else:
                assert all("/" not in r for r in resources)
        else:
            assert doc["spec"]["validationActions"] == ["Deny"] and "paramRef" not in doc["spec"]


def expressions(spec: dict) -> str:
    found = [v for part in ("matchConditions", "variables", "validations") for item in spec.get(part) or []
             for k, v in item.items() if k in ("expression", "messageExpression")]
    return "\n".join(found)


def test_chart_policies_name_the_releases_service_accounts_and_break_glass_group():
    policies = of_kind(render("admissionPolicy.breakGlassGroup=oncall:repair",
                              "serviceAccount.operatorName=op-sa"), "ValidatingAdmissionPolicy")
    for name in ("pm-paramedic-status-writers", "pm-paramedic-incident-truth"):
        text = expressions(policies[name]["spec"])
        assert "'system:serviceaccount:ops:op-sa'" in text and "'system:serviceaccount:ops:pm-paramedic-webhook'" in text
        assert "'oncall:repair' in request.userInfo.groups" in text and "break-glass" not in text
    # A group name cannot break out of the CEL string it is put in.
    with pytest.raises(subprocess.CalledProcessError) as err:
        render("admissionPolicy.breakGlassGroup=a'b")
    assert "breakGlassGroup" in err.value.stderr


def test_policies_can_be_turned_off():
    assert not [d for d in render("admissionPolicy.enabled=false", "playbookVarsPolicy.enabled=false")
                if d["kind"] in POLICY_KINDS]


def pod_labels(docs: list[dict], suffix: str) -> dict:
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith(suffix))
    return dep["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


def test_chart_network_policies_default_to_the_monitoring_namespace():
    docs = render()
    policies = of_kind(docs, "NetworkPolicy")
    webhook, operator = policies["pm-paramedic-webhook"]["spec"], policies["pm-paramedic-operator"]["spec"]
    assert selects(webhook["podSelector"], pod_labels(docs, "-webhook"))
    assert selects(operator["podSelector"], pod_labels(docs, "-operator"))
    assert not selects(webhook["podSelector"], pod_labels(docs, "-operator"))
    monitoring = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    alertmanager = {"namespaceSelector": monitoring, "podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "alertmanager"}}}
    prometheus = {"namespaceSelector": monitoring, "podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "prometheus"}}}
    [rule] = webhook["ingress"]
    assert webhook["policyTypes"] == ["Ingress"] and rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"][:2] == [alertmanager, prometheus]
    # The third peer is `helm test`'s pod, in the release's own namespace only.
    assert set(rule["from"][2]) == {"podSelector"}
    assert rule["from"][2]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"
    health, metrics = operator["ingress"]
    assert health == {"ports": [{"port": "health", "protocol": "TCP"}]}  # the kubelet's probe
    assert metrics == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [prometheus]}


def test_chart_console_takes_traffic_only_from_the_ingress_controller():
    docs = render()
    console = of_kind(docs, "NetworkPolicy")["pm-paramedic-console"]["spec"]
    assert selects(console["podSelector"], pod_labels(docs, "-console"))
    assert not selects(console["podSelector"], pod_labels(docs, "-webhook"))
    assert console["policyTypes"] == ["Ingress"]
    assert console["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}], "from": [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]}]
    [rule] = of_kind(render("networkPolicy.ingressControllerNamespace=traefik"),
                     "NetworkPolicy")["pm-paramedic-console"]["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}]
    [rule] = of_kind(render("networkPolicy.consoleFrom[0].podSelector.matchLabels.app=oauth2-proxy"),
                     "NetworkPolicy")["pm-paramedic-console"]["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app": "oauth2-proxy"}}}]
    assert "pm-paramedic-console" not in of_kind(render("console.enabled=false"), "NetworkPolicy")


def console_env(docs: list[dict]) -> dict[str, str]:
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-console"))
    [container] = dep["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


def test_chart_console_cookie_is_secure_unless_plain_http_is_asked_for():
    env = console_env(render())
    assert "PARAMEDIC_CONSOLE_INSECURE_HTTP" not in env and env["PARAMEDIC_CONSOLE_SESSION_SECONDS"] == "43200"
    env = console_env(render("console.insecureHTTP=true", "console.sessionSeconds=3600"))
    assert env["PARAMEDIC_CONSOLE_INSECURE_HTTP"] == "true" and env["PARAMEDIC_CONSOLE_SESSION_SECONDS"] == "3600"
    with pytest.raises(subprocess.CalledProcessError) as err:
        render("console.sessionSeconds=10")
    assert "sessionSeconds" in err.value.stderr


def test_chart_refuses_a_console_ingress_without_tls_unless_told():
    with pytest.raises(subprocess.CalledProcessError) as err:
        render("console.ingress.enabled=true", "console.ingress.host=pm.example.com")
    assert "console.ingress without TLS" in err.value.stderr
    [ingress] = of_kind(render("console.ingress.enabled=true", "console.ingress.host=pm.example.com",
                               "console.ingress.tlsSecretName=pm-tls"), "Ingress").values()
    assert ingress["spec"]["tls"] == [{"hosts": ["pm.example.com"], "secretName": "pm-tls"}]
    [ingress] = of_kind(render("console.ingress.enabled=true", "console.ingress.allowPlainHTTP=true"),
                        "Ingress").values()
    assert "tls" not in ingress["spec"]


def test_chart_network_policy_sources_are_configurable():
    docs = render("networkPolicy.monitoringNamespace=observability",
                  "networkPolicy.webhookFrom[0].namespaceSelector.matchLabels.team=grafana",
                  "operator.metricsPort=0")
    policies = of_kind(docs, "NetworkPolicy")
    [rule] = policies["pm-paramedic-webhook"]["spec"]["ingress"]
    assert rule["from"][0] == {"namespaceSelector": {"matchLabels": {"team": "grafana"}}}
    assert rule["from"][1]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "observability"}
    assert [list(r) for r in policies["pm-paramedic-operator"]["spec"]["ingress"]] == [["ports"]]
    assert not of_kind(render("networkPolicy.enabled=false"), "NetworkPolicy")


def test_chart_disruption_budgets():
    docs = render()  # two replicas of each by default
    budgets = of_kind(docs, "PodDisruptionBudget")
    assert sorted(budgets) == ["pm-paramedic-console", "pm-paramedic-operator", "pm-paramedic-webhook"]
    for name in ("operator", "webhook", "console"):
        selector = budgets[f"pm-paramedic-{name}"]["spec"]["selector"]
        assert budgets[f"pm-paramedic-{name}"]["spec"]["maxUnavailable"] == 1
        assert [n for n in ("operator", "webhook", "console") if selects(selector, pod_labels(docs, f"-{n}"))] == [name]
    # A single replica gets none: a drain just moves it.
    assert sorted(of_kind(render("operator.replicas=1", "console.replicas=1"), "PodDisruptionBudget")) == [
        "pm-paramedic-webhook"]
    assert sorted(of_kind(render("webhook.replicas=1"), "PodDisruptionBudget")) == [
        "pm-paramedic-console", "pm-paramedic-operator"]
    assert "pm-paramedic-console" not in of_kind(render("console.enabled=false"), "PodDisruptionBudget")
    assert not of_kind(render("podDisruptionBudget.enabled=false"), "PodDisruptionBudget")


def test_manifests_carry_the_same_defences():
    resources = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    assert {"admission-policy.yaml", "networkpolicy.yaml", "poddisruptionbudget.yaml"} <= set(resources)
    deployments = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
                   for name in ("operator.yaml", "webhook.yaml", "console.yaml") for d in manifest(name)
                   if d["kind"] == "Deployment"}
    policies = of_kind(manifest("networkpolicy.yaml"), "NetworkPolicy")
    for name in ("webhook", "operator", "console"):
        selector = policies[f"paramedic-{name}"]["spec"]["podSelector"]
        assert [d for d, labels in deployments.items() if selects(selector, labels)] == [f"paramedic-{name}"]
    chart = of_kind(render(), "NetworkPolicy")
    for name in ("webhook", "operator", "console"):
        ingress = chart[f"pm-paramedic-{name}"]["spec"]["ingress"]
        if name == "webhook":  # the chart adds `helm test`'s pod
            ingress = [{**ingress[0], "from": ingress[0]["from"][:2]}]
        assert policies[f"paramedic-{name}"]["spec"]["ingress"] == ingress
    budgets = of_kind(manifest("poddisruptionbudget.yaml"), "PodDisruptionBudget")
    assert sorted(budgets) == ["paramedic-console", "paramedic-operator", "paramedic-webhook"]
    for name, budget in budgets.items():
        assert budget["spec"]["maxUnavailable"] == 1
        assert [d for d, labels in deployments.items() if selects(budget["spec"]["selector"], labels)] == [name]


def test_the_console_pod_has_its_token_for_its_sessions_and_a_secure_cookie_by_default():
    [dep] = [d for d in manifest("console.yaml") if d["kind"] == "Deployment"]
    spec = dep["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is True  # its session Secrets (rbac.yaml)
    [container] = spec["containers"]
    names = {e["name"] for e in container.get("env") or []}
    assert "PARAMEDIC_CONSOLE_INSECURE_HTTP" not in names
    chart = next(d for d in render() if d["kind"] == "Deployment" and d["metadata"]["name"] == "pm-paramedic-console")
    assert chart["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def test_the_console_sessions_namespace_is_its_own_and_runs_no_pod():
    # The console may read every Secret of it (RBAC cannot narrow get/list): a namespace apart from
    # Paramedic's, where no pod may run either (restricted, and nothing of Paramedic's is scheduled there).
    shipped = of_kind(manifest("namespace.yaml"), "Namespace")["paramedic-console-sessions"]
    chart = of_kind(render(), "Namespace")["ops-console-sessions"]
    for ns in (shipped, chart):
        assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert ns["metadata"]["labels"]["app.kubernetes.io/component"] == "console"
    assert console_env(render())["PARAMEDIC_CONSOLE_SESSION_NAMESPACE"] == "ops-console-sessions"
    assert not [d for d in render() if d["metadata"].get("namespace") == "ops-console-sessions"
                and d["kind"] not in ("Role", "RoleBinding")]


def test_chart_runs_every_component_highly_available():
    from tests.chart.test_chart_files import ha_problems

    docs = render()
    assert ha_problems(docs, "pm-paramedic-operator", "ops") == []
    assert not [d for d in docs if d["apiVersion"].startswith("kopf.dev/")]
    config = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "pm-paramedic-config")
    assert config["data"]["PARAMEDIC_NAMESPACE"] == "ops"  # where the Role lets the Leases be
    # The same rights in both modes: the Leases are in the release's namespace, whatever is watched.
    watched = render("allNamespaces=false", "watchNamespaces={shop}")
    assert ha_problems(watched, "pm-paramedic-operator", "ops") == []
    # One's own spread replaces the default one.
    own = render("operator.topologySpreadConstraints[0].maxSkew=2",
                 "operator.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
                 "operator.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule")
    [operator] = [d for d in own if d["kind"] == "Deployment" and d["metadata"]["name"] == "pm-paramedic-operator"]
    assert operator["spec"]["template"]["spec"]["topologySpreadConstraints"] == [
        {"maxSkew": 2, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"}]
    assert ha_problems(render("operator.replicas=1"), "pm-paramedic-operator", "ops") == [
        "pm-paramedic-operator: 1 replica(s)", "pm-paramedic-operator: no PodDisruptionBudget"]
