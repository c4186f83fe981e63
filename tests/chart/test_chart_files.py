"""Packaging files checked as files: CRD copies, RBAC, pod security, config, dashboard.

The chart's rendered output gets the same RBAC and security checks in
tests/e2e/test_packaging.py (rendering needs helm).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from paramedic import metrics
from paramedic.settings import PREFIX, Settings

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
CHART = REPO / "charts" / "paramedic"


# --- checks shared with the e2e test (which feeds them the rendered chart) ---------

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_docs(text: str) -> list[dict]:
    return [d for d in yaml.load_all(text, Loader=_Loader) if d]


def rbac_problems(docs: Iterable[dict]) -> list[str]:
    """Wildcards or missing verbs in any (Cluster)Role rule, and bindings to cluster-admin."""
    problems = []
    for doc in docs:
        kind, name = doc.get("kind"), doc.get("metadata", {}).get("name")
        if kind in ("Role", "ClusterRole"):
            if doc.get("aggregationRule"):
                problems.append(f"{kind} {name}: aggregation (rules not explicit)")
            for i, rule in enumerate(doc.get("rules") or []):
                for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                    if any("*" in str(v) for v in rule.get(field) or []):
                        problems.append(f"{kind} {name} rule {i}: wildcard in {field}")
                if not rule.get("verbs"):
                    problems.append(f"{kind} {name} rule {i}: no verbs")
                if not rule.get("resources") and not rule.get("nonResourceURLs"):
                    problems.append(f"{kind} {name} rule {i}: no resources")
                if "escalate" in rule.get("verbs", []) or "bind" in rule.get("verbs", []) \
                        or "impersonate" in rule.get("verbs", []):
                    problems.append(f"{kind} {name} rule {i}: privilege-granting verb")
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            if doc.get("roleRef", {}).get("name") in ("cluster-admin", "admin", "edit"):
                problems.append(f"{kind} {name}: binds the built-in {doc['roleRef']['name']} role")
    return problems


def pod_security_problems(docs: Iterable[dict]) -> list[str]:
    """Every container of every Deployment: non-root, read-only root fs, no escalation, drop ALL."""
    problems = []
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if not deployments:
        return ["no Deployment found"]
    for dep in deployments:
        name = dep["metadata"]["name"]
        pod = dep["spec"]["template"]["spec"]
        pod_ctx = pod.get("securityContext") or {}
        for c in pod.get("initContainers", []) + pod["containers"]:
            ctx = c.get("securityContext") or {}
            where = f"Deployment {name} container {c['name']}"
            non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
            if non_root is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if ctx.get("runAsUser", pod_ctx.get("runAsUser")) == 0:
                problems.append(f"{where}: runs as uid 0")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if ctx.get("privileged"):
                problems.append(f"{where}: privileged")
            if "ALL" not in (ctx.get("capabilities") or {}).get("drop", []):
                problems.append(f"{where}: capabilities not dropped")
            if (ctx.get("capabilities") or {}).get("add"):
                problems.append(f"{where}: adds capabilities")
            seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
            if seccomp not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: no seccomp profile")
            mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
            if "/tmp" not in mounts:
                problems.append(f"{where}: no writable /tmp (read-only root filesystem)")
    return problems


def config_problems(data: dict[str, str]) -> list[str]:
    """ConfigMap data: only known PARAMEDIC_* settings, and values Settings accepts."""
    known = {PREFIX + f.upper() for f in Settings.model_fields}
    problems = [f"unknown setting {k}" for k in data if k not in known]
    try:
        Settings.from_env({k: str(v) for k, v in data.items()})
    except ValueError as exc:
        problems.append(f"settings refused: {exc}")
    return problems


# --- the plain manifests -------------------------------------------------------------

def manifest_docs() -> list[dict]:
    return json.loads(_manifest_docs_json())  # a fresh copy: some tests change it


@functools.cache
def _manifest_docs_json() -> str:
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    docs = []
    for res in kustomization["resources"]:
        docs += load_docs((MANIFESTS / res).read_text())
    return json.dumps(docs)


def test_chart_crds_equal_manifests_crds_byte_for_byte():
    source = sorted(p.name for p in (MANIFESTS / "crds").glob("*.yaml"))
    assert source, "manifests/crds is empty"
    copies = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))
    assert copies == source, "chart crds/ differ in files from manifests/crds: run `make crds`"
    for name in source:
        assert (CHART / "crds" / name).read_bytes() == (MANIFESTS / "crds" / name).read_bytes(), \
            f"charts/paramedic/crds/{name} is stale: run `make crds`"


def test_kustomization_installs_every_crd_and_no_sample():
    resources = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())["resources"]
    for crd in (MANIFESTS / "crds").glob("*.yaml"):
        assert f"crds/{crd.name}" in resources, f"{crd.name} missing from kustomization.yaml"
    assert all((MANIFESTS / r).is_file() for r in resources)
    assert not any(r.startswith("samples") or "secret" in r for r in resources)
    kinds = {d["kind"] for d in manifest_docs()}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap",
            "Deployment", "Service", "CustomResourceDefinition", "PodDisruptionBudget"} <= kinds
    # Kopf's peering is not used: the operator's replicas share the work through Leases.
    assert not any(d["apiVersion"].startswith("kopf.dev/") or d["metadata"]["name"].endswith(".kopf.dev")
                   for d in manifest_docs())


def test_manifest_rbac_has_no_wildcards_and_is_least_privilege():
    docs = manifest_docs()
    assert rbac_problems(docs) == []
    operator = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "paramedic-operator")
    granted = {(g, r, v) for rule in operator["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    assert ("paramedic.dev", "incidents/status", "patch") in granted
    assert ("paramedic.dev", "incidents", "delete") in granted  # retention
    assert ("apps", "deployments", "patch") in granted  # rollout restart
    assert not any(r == "secrets" for _, r, _ in granted)
    assert not any(v == "delete" and r != "incidents" for _, r, v in granted)
    assert not any(r == "pods" and v in ("create", "delete", "patch") for _, r, v in granted)


def test_manifest_webhook_may_read_a_pods_owner_and_nothing_more():
    webhook = next(d for d in manifest_docs() if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "paramedic-webhook")
    granted = {(g, r, v) for rule in webhook["rules"] for g in rule["apiGroups"]
               for r in rule["resources"] for v in rule["verbs"]}
    # Routing alerts that name only a pod: GET the pod and its ReplicaSet (no list, no write).
    assert {("", "pods", "get"), ("apps", "replicasets", "get")} <= granted
    assert {(g, r, v) for g, r, v in granted if r in ("pods", "replicasets")} == \
        {("", "pods", "get"), ("apps", "replicasets", "get")}
    assert not any(r in ("deployments", "statefulsets", "daemonsets", "secrets") for _, r, _ in granted)


def test_rbac_check_catches_a_wildcard():
    bad = [{"kind": "ClusterRole", "metadata": {"name": "x"},
            "rules": [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}]}]
    assert rbac_problems(bad) == ["ClusterRole x rule 0: wildcard in resources"]


def test_manifest_deployments_run_unprivileged():
    assert pod_security_problems(manifest_docs()) == []


def test_security_check_catches_a_writable_root():
    dep = next(d for d in manifest_docs() if d["kind"] == "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    assert any("root filesystem is writable" in p for p in pod_security_problems([dep]))


def test_manifest_commands_are_the_package_entry_points():
    scripts = _pyproject_scripts()
    for dep in (d for d in manifest_docs() if d["kind"] == "Deployment"):
        for c in dep["spec"]["template"]["spec"]["containers"]:
            assert c["args"][0] in scripts, f"{c['args'][0]} is not a console script"
    operator = next(d for d in manifest_docs() if d["kind"] == "Deployment" and "operator" in d["metadata"]["name"])
    assert "--all-namespaces" in operator["spec"]["template"]["spec"]["containers"][0]["args"]


def test_manifest_config_is_valid_settings():
    config = next(d for d in manifest_docs() if d["kind"] == "ConfigMap")
    assert config_problems(config["data"]) == []
    assert config_problems({"PARAMEDIC_SMTP_SECURITY": "ssl"})  # the check can fail
    assert config_problems({"PARAMEDIC_NO_SUCH_THING": "1"})


def test_webhook_token_is_a_mounted_file():
    webhook = next(d for d in manifest_docs() if d["kind"] == "Deployment" and "webhook" in d["metadata"]["name"])
    pod = webhook["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    path = env["PARAMEDIC_WEBHOOK_TOKEN_FILE"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    volume = next(v for v in pod["volumes"] if v["name"] == mounts[str(Path(path).parent)])
    assert volume["secret"]["secretName"] == "paramedic-webhook-token"
    assert "PARAMEDIC_WEBHOOK_TOKEN" not in env  # never as a plain variable
    port = pod["containers"][0]["ports"][0]["containerPort"]
    assert env["PARAMEDIC_WEBHOOK_BIND"]["value"] == f"0.0.0.0:{port}"


def ha_problems(docs: Iterable[dict], operator_sa: str, namespace: str) -> list[str]:
    """Two or more replicas of each Deployment, rolled without downtime, spread over nodes where
    they can be, each with a disruption budget; the operator's replicas named after their pods
    and allowed their Leases in Paramedic's namespace, without --standalone or any peering."""
    problems = []
    docs = list(docs)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        name, spec = dep["metadata"]["name"], dep["spec"]
        pod = spec["template"]["spec"]
        labels = spec["template"]["metadata"]["labels"]
        if spec.get("replicas", 1) < 2:
            problems.append(f"{name}: {spec.get('replicas', 1)} replica(s)")
        if spec.get("strategy", {}).get("type") != "RollingUpdate" or \
                spec["strategy"].get("rollingUpdate", {}).get("maxUnavailable") != 0:
            problems.append(f"{name}: not a rolling update keeping every replica up")
        spread = pod.get("topologySpreadConstraints") or []
        if not any(c["topologyKey"] == "kubernetes.io/hostname" and c["whenUnsatisfiable"] == "ScheduleAnyway"
                   and c["labelSelector"]["matchLabels"].items() <= labels.items() for c in spread):
            problems.append(f"{name}: replicas not spread over nodes (softly)")
        if not [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
                and b["spec"].get("maxUnavailable") == 1]:
            problems.append(f"{name}: no PodDisruptionBudget")
    [operator] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator")]
    [container] = operator["spec"]["template"]["spec"]["containers"]
    identity = next((e for e in container.get("env") or [] if e["name"] == "PARAMEDIC_IDENTITY"), {})
    if identity.get("valueFrom") != {"fieldRef": {"fieldPath": "metadata.name"}}:
        problems.append("operator: PARAMEDIC_IDENTITY is not the pod's name")
    if any(a == "--standalone" or a.startswith("--peering") for a in container["args"]):
        problems.append(f"operator: args {container['args']}")
    leases = [d for d in docs if d["kind"] == "Role" and d["metadata"].get("namespace") == namespace
              and any("leases" in r["resources"] for r in d["rules"])]
    bound = {b["roleRef"]["name"] for b in docs if b["kind"] == "RoleBinding"
             and b["metadata"].get("namespace") == namespace and b["roleRef"]["kind"] == "Role"
             and {"kind": "ServiceAccount", "name": operator_sa, "namespace": namespace} in b["subjects"]}
    if len(leases) != 1 or leases[0]["metadata"]["name"] not in bound:
        problems.append(f"operator: no Role for its Leases in {namespace} bound to {operator_sa}")
    return problems


def test_manifests_run_every_component_highly_available():
    assert ha_problems(manifest_docs(), "paramedic-operator", "paramedic") == []
    config = next(d for d in manifest_docs() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "paramedic-config")
    assert config["data"]["PARAMEDIC_NAMESPACE"] == "paramedic"  # where the Role lets the Leases be


def test_ha_check_catches_a_single_replica_and_a_missing_budget():
    docs = manifest_docs()
    next(d for d in docs if d["metadata"]["name"] == "paramedic-console" and d["kind"] == "Deployment"
         )["spec"]["replicas"] = 1
    docs = [d for d in docs if not (d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "paramedic-webhook")]
    assert ha_problems(docs, "paramedic-operator", "paramedic") == ["paramedic-webhook: no PodDisruptionBudget",
                                                                    "paramedic-console: 1 replica(s)"]


SAMPLES = MANIFESTS / "samples"
SAMPLE_OBJECTS = ("checkout-deployment.yaml", "oncallschedule.yaml", "monitoredservice.yaml")


def sample_docs() -> list[dict]:
    return [d for name in SAMPLE_OBJECTS for d in load_docs((SAMPLES / name).read_text())]


def test_samples_are_consistent():
    docs = sample_docs()
    assert all("namespace" not in d["metadata"] for d in docs)  # they go where the user applies them
    by_kind = {d["kind"]: d for d in docs}
    msvc, oncall, deploy = by_kind["MonitoredService"], by_kind["OnCallSchedule"], by_kind["Deployment"]
    assert msvc["spec"]["team"] == oncall["metadata"]["name"] == "payments"
    assert msvc["spec"]["target"] == {"kind": "Deployment", "name": deploy["metadata"]["name"]}
    assert len(oncall["spec"]["participants"]) == 3 and oncall["spec"]["overrides"]
    assert [s["notify"] for s in oncall["spec"]["escalation"]] == ["oncall", "next", "admins"]
    playbooks = [a["ansible"]["playbook"] for a in msvc["spec"]["remediation"]["actions"] if "ansible" in a]
    assert playbooks == ["restart-deployment.yml"]
    probe = msvc["spec"]["probe"]["service"]
    service = by_kind["Service"]
    assert probe["name"] == service["metadata"]["name"] and probe["port"] == service["spec"]["ports"][0]["port"]
    rule = load_docs((SAMPLES / "prometheusrule.yaml").read_text())[0]
    labels = rule["spec"]["groups"][0]["rules"][0]["labels"]
    assert labels["service"] == msvc["spec"]["alertSelector"]["matchLabels"]["service"]
    assert {"namespace", "severity"} <= set(labels)


def test_alertmanager_receiver_sends_resolved_with_a_bearer_token():
    config = yaml.safe_load((SAMPLES / "alertmanager-receiver.yaml").read_text())
    hook = config["receivers"][0]["webhook_configs"][0]
    assert hook["url"].endswith("/api/v1/alertmanager")
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert hook["max_alerts"] == Settings().webhook_max_alerts
    assert config["route"]["receiver"] == config["receivers"][0]["name"]


@pytest.mark.skipif(not shutil.which("amtool"), reason="amtool (Debian prometheus-alertmanager) not installed")
def test_alertmanager_accepts_the_receiver():
    out = subprocess.run(["amtool", "check-config", str(SAMPLES / "alertmanager-receiver.yaml")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian prometheus) not installed")
def test_prometheus_accepts_the_sample_rule(tmp_path):
    rule = load_docs((SAMPLES / "prometheusrule.yaml").read_text())[0]
    assert promtool_problems(rule["spec"], tmp_path) == ""


def promtool_problems(spec: dict, tmp_path: Path) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    return "" if out.returncode == 0 else out.stdout + out.stderr


# --- chart files that need no rendering ------------------------------------------------

def test_dashboard_queries_only_metrics_paramedic_exports():
    dashboard = json.loads((CHART / "files" / "paramedic-dashboard.json").read_text())
    exported = _exported_metric_names()
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\bparamedic_[a-z_]+", e)}
    unknown = {m for m in used if re.sub(r"_(bucket|sum|count)$", "", m) not in exported}
    assert unknown == set()
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("open incidents", "mtta", "mttr", "sla breaches", "remediations by result", "probe health"):
        assert topic in titles
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_chart_rule_expressions_use_exported_metrics():
    text = (CHART / "templates" / "prometheusrule.yaml").read_text()
    used = set(re.findall(r"\bparamedic_[a-z_]+", text))
    assert used and used <= _exported_metric_names()


def test_chart_defaults_match_the_settings_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defaults = Settings()
    pairs = {"workers": "workers", "timelineLimit": "timeline_limit", "retentionDays": "retention_days",
             "probeConcurrency": "probe_concurrency", "healthPort": "health_port", "metricsPort": "metrics_port",
             "ansibleTimeoutSeconds": "ansible_timeout_seconds", "rolloutTimeoutSeconds": "rollout_timeout_seconds",
             "remediationEnabled": "remediation_enabled"}
    for key, field in pairs.items():
        assert values["operator"][key] == getattr(defaults, field), key
    webhook = values["webhook"]
    assert webhook["maxBodyBytes"] == defaults.webhook_max_body_bytes
    assert webhook["maxAlerts"] == defaults.webhook_max_alerts
    assert (webhook["workers"], webhook["threads"]) == (defaults.webhook_workers, defaults.webhook_threads)
    assert f"0.0.0.0:{webhook['port']}" == defaults.webhook_bind
    assert values["config"]["correlationWindowSeconds"] == defaults.correlation_window_seconds


def test_values_schema_describes_every_top_level_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["additionalProperties"] is False
    assert set(values) <= set(schema["properties"])
    for key, sub in values.items():
        if isinstance(sub, dict) and schema["properties"][key].get("additionalProperties") is False:
            assert set(sub) <= set(schema["properties"][key]["properties"]), key


def test_chart_metadata():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == _pyproject_version()


def test_dockerfile_builds_a_venv_and_runs_unprivileged():
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert stages[0] == stages[-1] == "${PYTHON_IMAGE}" and "ARG PYTHON_IMAGE=python:3.11-slim" in text
    # The runtime gets the venv and Paramedic's files from build stages, no pip run of its own.
    runtime = text[text.rindex("\nFROM "):]
    assert "pip install" not in runtime and re.search(r"COPY --from=\S+ /opt/paramedic/venv/", runtime)
    assert re.search(r'^ARG ANSIBLE_COLLECTIONS="[^"]*kubernetes\.core', text, re.M)
    # A private CA reaches pip only as a build secret, never through COPY/ADD.
    pip_runs = [r for r in re.split(r"\n(?=[A-Z]+ )", text) if r.startswith("RUN") and "pip install" in r]
    assert pip_runs and all("--mount=type=secret,id=pipca" in r for r in pip_runs)
    assert not re.search(r"^(COPY|ADD)\s.*(\.crt|\.pem|certs)", text, re.M)
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] == "10001"
    assert re.search(r"COPY\s+playbooks/\s+/opt/paramedic/playbooks/?", text)
    env = dict(re.findall(r"\b(PARAMEDIC_PLAYBOOKS_DIR|ANSIBLE_HOME|ANSIBLE_LOCAL_TEMP)=(\S+)", text))
    assert env["PARAMEDIC_PLAYBOOKS_DIR"] == "/opt/paramedic/playbooks"
    assert env["ANSIBLE_HOME"].startswith("/tmp") and env["ANSIBLE_LOCAL_TEMP"].startswith("/tmp")
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".paramedic", "tests"} <= set(ignored)
    for needed in ("paramedic", "operator", "webhook", "playbooks", "pyproject.toml", "README.md"):
        assert needed not in ignored


# --- helpers ---------------------------------------------------------------------------

def _exported_metric_names() -> set[str]:
    from prometheus_client.metrics import MetricWrapperBase
    names = set()
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            names.add(family.name)
            names.add(family.name + "_total")
    return names


def _pyproject() -> dict:
    import tomllib
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _pyproject_scripts() -> set[str]:
    return set(_pyproject()["project"]["scripts"])


def _pyproject_version() -> str:
    return _pyproject()["project"]["version"]


def test_operator_secrets_are_mounted_files_and_the_catalog_a_mounted_configmap():
    operator = next(d for d in manifest_docs() if d["kind"] == "Deployment" and "operator" in d["metadata"]["name"])
    pod = operator["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # No secret as an environment variable: only the pod's own name comes from elsewhere.
    assert [e["valueFrom"] for e in container["env"] if "valueFrom" in e] == [{"fieldRef": {"fieldPath": "metadata.name"}}]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for name, key in [("SMTP_USERNAME", "smtp-username"), ("SMTP_PASSWORD", "smtp-password"),
                      ("SLACK_WEBHOOK_URL", "slack-webhook-url"), ("NOTIFY_WEBHOOK_URL", "notify-webhook-url")]:
        path = Path(env[f"PARAMEDIC_{name}_FILE"])
        assert path.name == key and f"PARAMEDIC_{name}" not in env
        assert volumes[mounts[str(path.parent)]]["secret"]["secretName"] == "paramedic-notify"
    catalog = Path(env["PARAMEDIC_PLAYBOOK_CATALOG"])
    cm = volumes[mounts[str(catalog.parent)]]["configMap"]["name"]
    assert any(d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm and catalog.name in d["data"]
               for d in manifest_docs())
    assert config_problems({k: v for k, v in env.items()}) == []


def test_console_credentials_reach_only_its_session_secrets():
    # People act with their own tokens (console/apiserver.py sends no credentials of the console's
    # with them: tests/unit/test_console.py). The pod's own token is bound to one Role only: the
    # Secrets of its sessions, in a namespace of their own (never Paramedic's, whose Secrets it
    # could then all read: RBAC cannot narrow get/list).
    docs = manifest_docs()
    console = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "paramedic-console")
    pod = console["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    account = next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False  # no other pod gets its token by default
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
                and pod["serviceAccountName"] in [s.get("name") for s in d.get("subjects") or []]]
    assert [(b["kind"], b["metadata"]["namespace"], b["roleRef"]["kind"]) for b in bindings] == [
        ("RoleBinding", "paramedic-console-sessions", "Role")]
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == bindings[0]["roleRef"]["name"]
                and d["metadata"]["namespace"] == "paramedic-console-sessions")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "create", "delete"]}]
    namespaces = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Namespace"}
    assert sorted(namespaces) == ["paramedic", "paramedic-console-sessions"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["PARAMEDIC_CONSOLE_SESSION_NAMESPACE"] == "paramedic-console-sessions"
    # Nothing else is kept there: no other manifest puts an object in it.
    assert {d["kind"] for d in docs if d["metadata"].get("namespace") == "paramedic-console-sessions"} == {
        "Role", "RoleBinding"}
    assert env["PARAMEDIC_CONSOLE_BIND"] == f"0.0.0.0:{pod['containers'][0]['ports'][0]['containerPort']}"
