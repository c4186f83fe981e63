"""The shipped RBAC grants exactly what the code uses: every call is allowed, nothing more.

The Kubernetes calls are read from the source (every `client.<verb>(kube.X, ...)`), plus
what the code does through other hands: Kopf's watches, scanning and events, the
playbooks' kubernetes.core modules, and the `remediate` verb the admission policy asks
for. The grants are read from manifests/rbac.yaml and from the rendered chart, in both
of its modes (all namespaces, and a list of watched namespaces).
"""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest
import yaml

from paramedic import kube
from tests.chart.helm import render

REPO = Path(__file__).resolve().parents[2]

# Which code runs under which ServiceAccount. cli.py runs as its user; kube.py is the client.
OPERATOR_CODE = ["operator/*.py", "paramedic/remediation_io.py", "paramedic/evidence_io.py", "paramedic/seal_io.py"]
WEBHOOK_CODE = ["webhook/*.py", "paramedic/ingest.py", "paramedic/owners.py", "paramedic/informer.py"]
# The CLI and the console act with people's own credentials, not a ServiceAccount of Paramedic's
# (entries_io: the comments and runbook step marks both of them append); the console's own
# ServiceAccount only keeps its sessions (console/sessions.py), in a namespace of their own.
NOT_A_COMPONENT = {"paramedic/cli.py", "paramedic/kube.py", "paramedic/entries_io.py"}
PEOPLES_OWN_RIGHTS = "paramedic/console/"
CONSOLE_CODE = ["paramedic/console/sessions.py"]
# Calls any authenticated identity may make (self reviews).
UNRESTRICTED = {("authorization.k8s.io", "selfsubjectaccessreviews"), ("authentication.k8s.io", "selfsubjectreviews")}

VERBS = {"get": "get", "get_or_none": "get", "list": "list", "watch": "watch", "create": "create",
         "patch": "patch", "replace": "update", "delete": "delete"}

WORKLOADS = ("deployments", "statefulsets", "daemonsets")

# Calls on a resource held in a variable: (file, method, first argument) → what they reach.
DYNAMIC = {
    ("paramedic/remediation_io.py", "get_or_none", "_resource(kind)"): [("apps", r, "get") for r in WORKLOADS],
    ("paramedic/remediation_io.py", "get_or_none", "res"): [("apps", r, "get") for r in WORKLOADS],
    ("paramedic/remediation_io.py", "patch", "res"): [("apps", r, "patch") for r in WORKLOADS],
    ("paramedic/remediation_io.py", "patch", "_resource(kind)"): [("apps", r, "patch") for r in WORKLOADS],
    ("paramedic/evidence_io.py", "get_or_none", "res"): [("apps", r, "get") for r in WORKLOADS],
    ("operator/services.py", "get_or_none", "res"): [("apps", r, "get") for r in WORKLOADS],
    # Directory(client, kube.MONITORED_SERVICES) in webhook/app.py.
    ("paramedic/informer.py", "watch", "self.res"): [("paramedic.dev", "monitoredservices", "watch")],
    ("paramedic/informer.py", "list", "self.res"): [("paramedic.dev", "monitoredservices", "list")],
}

# What the code does through other hands.
OPERATOR_ELSEWHERE = {
    # Kopf watches Paramedic's kinds (list + watch), and posts events about handler errors.
    *[("paramedic.dev", r, v) for r in ("monitoredservices", "incidents", "oncallschedules") for v in ("list", "watch")],
    ("", "events", "create"),
    # Kopf's scanning of namespaces and CRDs.
    ("", "namespaces", "list"), ("", "namespaces", "watch"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    # Playbooks: the scale one writes the scale subresource (kubernetes.core.k8s_scale); the
    # rollback one lists a Deployment's ReplicaSets to find its previous revision.
    ("apps", "deployments/scale", "patch"), ("apps", "statefulsets/scale", "patch"),
    ("apps", "replicasets", "get"), ("apps", "replicasets", "list"),
    # Probe incidents are managed: the admission policy asks for remediate on their service.
    ("paramedic.dev", "monitoredservices", "remediate"),
    # Incident evidence: a container's last log lines, read as text (`get_text`), only for
    # services whose author may read them (the admission policy checks spec.evidence.logs).
    ("", "pods/log", "get"),
}
WEBHOOK_ELSEWHERE = {
    ("paramedic.dev", "monitoredservices", "remediate"),  # managed incidents from alerts
}
# Granted though no call needs it today, and why.
OPERATOR_KEPT = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "get"): "read-only; Kopf's resource discovery",
}
# In Paramedic's own namespace only (a Role): the Secret holding the key that seals
# remediation attempts, read by its name and created when missing.
OPERATOR_SEAL = {("", "secrets", "get"), ("", "secrets", "create")}
SEAL_SECRET = "paramedic-remediation-seal"
# In Paramedic's own namespace only (a Role): the Leases the replicas share the shards through.
LEASES = ("coordination.k8s.io", "leases")


def lease_needs() -> set[tuple[str, str, str]]:
    """What the operator's code does with Leases (operator/shards.py)."""
    return {n for n in needed(OPERATOR_CODE, set()) if n[:2] == LEASES}
WEBHOOK_KEPT = {
    ("paramedic.dev", "monitoredservices", "get"): "read-only, on the kind it already lists and watches",
}


def _files(patterns: list[str]) -> list[Path]:
    return sorted(p for pattern in patterns for p in REPO.glob(pattern))


def _is_client(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "client") or \
        (isinstance(node, ast.Attribute) and node.attr == "client")


def calls(path: Path) -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """(group, resource, verb) of the literal calls, and (file, method, argument) of the others."""
    literal, dynamic = set(), set()
    rel = str(path.relative_to(REPO))
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in VERBS and _is_client(node.func.value) and node.args):
            continue
        arg = node.args[0]
        sub = next((k.value for k in node.keywords if k.arg == "subresource"), None)
        # A subresource in a variable is the object itself or its status.
        subs = [sub.value] if isinstance(sub, ast.Constant) else [None] if sub is None else [None, "status"]
        if isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "kube":
            res = getattr(kube, arg.attr)
            literal |= {(res.group, res.plural + (f"/{s}" if s else ""), VERBS[node.func.attr]) for s in subs}
        else:
            dynamic.add((rel, node.func.attr, ast.unparse(arg)))
    return literal, dynamic


def needed(patterns: list[str], elsewhere: set) -> set[tuple[str, str, str]]:
    out = set(elsewhere)
    for path in _files(patterns):
        literal, dynamic = calls(path)
        out |= literal
        for site in dynamic:
            assert site in DYNAMIC, f"{site}: a call on a resource in a variable; say what it reaches in DYNAMIC"
            out |= set(DYNAMIC[site])
    return {n for n in out if n[:2] not in UNRESTRICTED}


def grants(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def role(docs: list[dict], name: str) -> list[dict]:
    return next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == name)["rules"]


MANIFEST_DOCS = [d for d in yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text()) if d]


def test_every_module_that_calls_the_api_belongs_to_a_component():
    covered = {str(p.relative_to(REPO)) for p in _files(OPERATOR_CODE + WEBHOOK_CODE)}
    for path in _files(["paramedic/**/*.py", "operator/*.py", "webhook/*.py"]):
        rel = str(path.relative_to(REPO))
        literal, dynamic = calls(path)
        if (literal or dynamic) and rel not in NOT_A_COMPONENT and not rel.startswith(PEOPLES_OWN_RIGHTS):
            assert rel in covered, f"{rel} calls the API: add it to OPERATOR_CODE or WEBHOOK_CODE"


def test_the_scan_sees_calls():
    literal, _ = calls(REPO / "operator" / "incidents.py")
    assert ("paramedic.dev", "incidents", "delete") in literal
    assert ("paramedic.dev", "monitoredservices/status", "patch") in literal


def test_manifest_operator_role_is_exactly_what_the_operator_uses():
    granted = grants(role(MANIFEST_DOCS, "paramedic-operator"))
    need = needed(OPERATOR_CODE, OPERATOR_ELSEWHERE)
    assert OPERATOR_SEAL <= need, "the seal key's calls are not seen"
    assert lease_needs(), "the shards' Lease calls are not seen"
    need -= OPERATOR_SEAL | lease_needs()  # granted in Paramedic's namespace only (below)
    assert need - granted == set(), "used but not granted"
    assert granted - need == set(OPERATOR_KEPT), "granted but never used"


def test_the_lease_rights_are_what_the_shards_use_what_the_preflight_checks_and_only_in_paramedics_namespace():
    from paramedic.operator import preflight

    need = lease_needs()
    # The preflight waits for exactly these: a right it did not check would fail only later, in
    # the shards' own retries; one it checked but nothing used would be a grant to no purpose.
    assert need == {(*LEASES, v) for v in preflight.LEASE_VERBS}
    assert rights_of(MANIFEST_DOCS, "paramedic-operator", "paramedic")["paramedic"] >= need
    [leases_role] = [d for d in MANIFEST_DOCS if d["kind"] == "Role" and any(
        "leases" in r["resources"] for r in d["rules"])]
    assert (leases_role["metadata"]["name"], leases_role["metadata"]["namespace"]) == (
        "paramedic-operator-leases", "paramedic")
    assert grants(leases_role["rules"]) == need
    bindings = [d for d in MANIFEST_DOCS if d["kind"] == "RoleBinding"
                and d["roleRef"]["name"] == "paramedic-operator-leases"]
    assert [(b["metadata"]["namespace"], b["roleRef"]["kind"], b["subjects"]) for b in bindings] == [
        ("paramedic", "Role", [{"kind": "ServiceAccount", "name": "paramedic-operator", "namespace": "paramedic"}])]
    # Nowhere else, for nobody else.
    for doc in MANIFEST_DOCS:
        if doc["kind"] in ("Role", "ClusterRole") and doc is not leases_role:
            assert not any(r == "leases" for _, r, _ in grants(doc.get("rules") or [])), doc["metadata"]["name"]


def seal_rules_are_the_least(rules: list[dict]) -> None:
    """get on the seal key's Secret by name, create (which cannot be limited to a name); nothing else."""
    assert grants(rules) == OPERATOR_SEAL
    for rule in rules:
        assert rule["resources"] == ["secrets"] and rule["apiGroups"] == [""]
        if rule["verbs"] != ["create"]:
            assert rule["verbs"] == ["get"] and rule["resourceNames"] == [SEAL_SECRET]


def test_manifest_seal_role_lets_only_the_operator_read_its_key_in_paramedics_namespace():
    [seal_role] = [d for d in MANIFEST_DOCS if d["kind"] == "Role" and d["metadata"]["name"] == "paramedic-operator-seal"]
    assert seal_role["metadata"]["namespace"] == "paramedic"
    seal_rules_are_the_least(seal_role["rules"])
    bindings = [d for d in MANIFEST_DOCS if d["kind"] == "RoleBinding" and d["roleRef"]["name"] == "paramedic-operator-seal"]
    assert [(b["metadata"]["namespace"], b["roleRef"]["kind"], b["subjects"]) for b in bindings] == [
        ("paramedic", "Role", [{"kind": "ServiceAccount", "name": "paramedic-operator", "namespace": "paramedic"}])]
    # No other role of the operator's or the receiver's touches Secrets.
    for name in ("paramedic-operator", "paramedic-webhook"):
        assert not any(r == "secrets" for _, r, _ in grants(role(MANIFEST_DOCS, name)))


def test_manifest_webhook_role_is_exactly_what_the_receiver_uses():
    granted = grants(role(MANIFEST_DOCS, "paramedic-webhook"))
    need = needed(WEBHOOK_CODE, WEBHOOK_ELSEWHERE)
    assert need - granted == set(), "used but not granted"
    assert granted - need == set(WEBHOOK_KEPT), "granted but never used"


def namespaced_role(docs: list[dict], name: str) -> dict:
    return next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == name)


def console_bindings(docs: list[dict], account: str) -> list[dict]:
    return [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
            and any(s["name"] == account for s in d.get("subjects") or [])]


def rights_of(docs: list[dict], account: str, namespace: str) -> dict[str | None, set[tuple[str, str, str]]]:
    """What ServiceAccount `namespace`/`account` may do, cluster-wide (None) and per namespace:
    through every binding naming it, its namespace's ServiceAccounts, all of them or everyone."""
    groups = {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"}
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d.get("rules") or []
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out: dict[str | None, set] = {}
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any((s["kind"] == "ServiceAccount" and s["name"] == account and s.get("namespace") == namespace)
                   or (s["kind"] == "Group" and s["name"] in groups) for s in b.get("subjects") or []):
            continue
        where = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
        ref = b["roleRef"]
        rules = roles[(ref["kind"], where if ref["kind"] == "Role" else None, ref["name"])]
        out.setdefault(where, set()).update(grants(rules))
    return out


SESSION_RIGHTS = {("", "secrets", v) for v in ("get", "list", "create", "delete")}


def test_manifest_console_role_is_exactly_what_its_sessions_use_in_their_own_namespace():
    need = needed(CONSOLE_CODE, set())
    assert need == SESSION_RIGHTS
    # Only in the sessions' namespace: nothing in Paramedic's (its Secrets: tokens, the seal key).
    assert rights_of(MANIFEST_DOCS, "paramedic-console", "paramedic") == {"paramedic-console-sessions": need}
    role_doc = namespaced_role(MANIFEST_DOCS, "paramedic-console-sessions")
    assert role_doc["metadata"]["namespace"] == "paramedic-console-sessions" and grants(role_doc["rules"]) == need
    [binding] = console_bindings(MANIFEST_DOCS, "paramedic-console")
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "paramedic-console-sessions"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "paramedic-console-sessions"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "paramedic-console", "namespace": "paramedic"}]
    # Every other call of the console is made with the person's own token.
    for path in _files(["paramedic/console/*.py"]):
        if str(path.relative_to(REPO)) not in CONSOLE_CODE:
            assert ("", "secrets") not in {n[:2] for n in calls(path)[0]}, path


def console_env(docs: list[dict]) -> dict[str, str]:
    [dep] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "pm-paramedic-console"]
    return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_chart_console_has_no_secret_rights_in_the_release_namespace():
    docs = render()
    # Its sessions' Secrets in a namespace of their own, made by the chart; nothing anywhere else.
    assert rights_of(docs, "pm-paramedic-console", "ops") == {"ops-console-sessions": SESSION_RIGHTS}
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["ops-console-sessions"]
    role_doc = namespaced_role(docs, "pm-paramedic-console-sessions")
    assert role_doc["metadata"]["namespace"] == "ops-console-sessions"
    assert role_doc["rules"] == namespaced_role(MANIFEST_DOCS, "paramedic-console-sessions")["rules"]
    [binding] = console_bindings(docs, "pm-paramedic-console")
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "ops-console-sessions"
    assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == "pm-paramedic-console-sessions"
    assert console_env(docs)["PARAMEDIC_CONSOLE_SESSION_NAMESPACE"] == "ops-console-sessions"
    # Nothing else of the release's may be read by it: no Role in ops names Secrets for anyone but
    # the operator's seal key (by name).
    for d in docs:
        if d["kind"] == "Role" and d["metadata"]["namespace"] == "ops":
            assert d["metadata"]["name"] == "pm-paramedic-operator-seal" or \
                not any(r == "secrets" for _, r, _ in grants(d["rules"])), d["metadata"]["name"]
    assert not console_bindings(render("rbac.create=false"), "pm-paramedic-console")


def test_chart_sessions_namespace_is_chosen_or_made_never_the_releases():
    docs = render("console.sessionNamespace=pm-sessions")
    assert rights_of(docs, "pm-paramedic-console", "ops") == {"pm-sessions": SESSION_RIGHTS}
    assert console_env(docs)["PARAMEDIC_CONSOLE_SESSION_NAMESPACE"] == "pm-sessions"
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["pm-sessions"]
    # An existing namespace: the chart makes none, its Role still goes there.
    docs = render("console.sessionNamespace=pm-sessions", "console.createSessionNamespace=false")
    assert not [d for d in docs if d["kind"] == "Namespace"]
    assert rights_of(docs, "pm-paramedic-console", "ops") == {"pm-sessions": SESSION_RIGHTS}
    with pytest.raises(subprocess.CalledProcessError) as err:
        render("console.sessionNamespace=ops")
    assert "console.sessionNamespace must not be the release's namespace" in err.value.stderr
    with pytest.raises(subprocess.CalledProcessError) as err:
        render(namespace="n" * 50)
    assert "longer than 63" in err.value.stderr
    assert not [d for d in render("console.enabled=false") if d["kind"] == "Namespace"]


def test_nothing_dangerous_is_granted():
    operator = grants(role(MANIFEST_DOCS, "paramedic-operator"))
    webhook = grants(role(MANIFEST_DOCS, "paramedic-webhook"))
    for granted in (operator, webhook):
        assert not {r for _, r, _ in granted} & {"secrets", "configmaps", "pods/exec", "serviceaccounts/token"}
        assert not {v for _, _, v in granted} & {"update", "deletecollection", "escalate", "bind", "impersonate"}
        assert not {("paramedic.dev", r, v) for r in ("monitoredservices", "oncallschedules")
                    for v in ("create", "patch")} & granted  # only their status is written
    assert [(g, r) for g, r, v in operator if v == "delete"] == [("paramedic.dev", "incidents")]  # retention
    assert not any(v == "delete" for _, _, v in webhook)
    assert {v for _, r, v in operator if r == "pods"} == {"list"}  # evidence: the target's pods
    assert [r for _, r, _ in webhook if r == "pods/log"] == []
    assert {v for _, r, v in webhook if r == "pods"} == {"get"}


def test_remediate_role_is_aggregated_into_edit_and_admin_and_grants_only_remediate():
    doc = next(d for d in MANIFEST_DOCS if d["metadata"]["name"] == "paramedic-remediate")
    labels = doc["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert grants(doc["rules"]) == {("paramedic.dev", "monitoredservices", "remediate")}


# --- the chart, rendered ------------------------------------------------------------------

def effective(docs: list[dict], subject: str) -> dict[str | None, set[tuple[str, str, str]]]:
    """What `subject` (a ServiceAccount name) may do: cluster-wide (None) and per namespace."""
    roles = {("ClusterRole", d["metadata"]["name"]): d.get("rules") or [] for d in docs if d["kind"] == "ClusterRole"}
    roles |= {("Role", d["metadata"]["namespace"], d["metadata"]["name"]): d.get("rules") or []
              for d in docs if d["kind"] == "Role"}
    out: dict[str | None, set] = {}
    for b in docs:
        if b["kind"] in ("ClusterRoleBinding", "RoleBinding") and \
                any(s["name"] == subject for s in b["subjects"]):
            where = b["metadata"].get("namespace") if b["kind"] == "RoleBinding" else None
            ref = b["roleRef"]
            rules = roles[("Role", where, ref["name"]) if ref["kind"] == "Role" else ("ClusterRole", ref["name"])]
            out.setdefault(where, set()).update(grants(rules))
    return out


def test_chart_grants_what_the_manifests_grant_cluster_wide():
    docs = render()
    operator = effective(docs, "pm-paramedic-operator")
    webhook = effective(docs, "pm-paramedic-webhook")
    # The seal key's Secret and the shards' Leases, in the release's namespace only.
    assert set(operator) == {None, "ops"} and operator["ops"] == OPERATOR_SEAL | lease_needs()
    assert set(webhook) == {None}
    [seal_role] = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "pm-paramedic-operator-seal"]
    seal_rules_are_the_least(seal_role["rules"])
    assert operator[None] == grants(role(MANIFEST_DOCS, "paramedic-operator"))
    assert webhook[None] == grants(role(MANIFEST_DOCS, "paramedic-webhook"))
    remediate = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "pm-paramedic-remediate")
    assert grants(remediate["rules"]) == {("paramedic.dev", "monitoredservices", "remediate")}


def test_chart_with_watched_namespaces_writes_only_there():
    docs = render("allNamespaces=false", "watchNamespaces={shop,payments}")
    operator = effective(docs, "pm-paramedic-operator")
    webhook = effective(docs, "pm-paramedic-webhook")
    assert set(operator) == {None, "shop", "payments", "ops"} and set(webhook) == {None, "shop", "payments", "ops"}
    assert operator.pop("ops") == OPERATOR_SEAL | lease_needs()
    # Cluster-wide: reading namespaces and CRDs, nothing else, never a write.
    assert operator[None] == {("", "namespaces", v) for v in ("get", "list", "watch")} | \
        {("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("get", "list", "watch")} | \
        {("", "nodes", "get")}  # evidence: the conditions of the nodes a target runs on
    assert webhook[None] == {("", "namespaces", "get")}
    need_operator = needed(OPERATOR_CODE, OPERATOR_ELSEWHERE) - OPERATOR_SEAL - lease_needs()
    for ns in ("shop", "payments"):
        assert need_operator - operator[ns] - operator[None] == set(), ns
        assert operator[ns] - need_operator == set(), ns
        assert needed(WEBHOOK_CODE, WEBHOOK_ELSEWHERE) - webhook[ns] - webhook[None] == set(), ns


def test_chart_grants_only_the_chosen_workload_kinds():
    operator = effective(render("rbac.workloads={deployments}"), "pm-paramedic-operator")[None]
    assert {(r, v) for g, r, v in operator if g == "apps"} == {
        ("deployments", "get"), ("deployments", "patch"), ("deployments/scale", "patch"),
        ("replicasets", "get"), ("replicasets", "list"), ("controllerrevisions", "list")}
    operator = effective(render("rbac.workloads={daemonsets}"), "pm-paramedic-operator")[None]
    assert not any(r.endswith("/scale") for _, r, _ in operator)  # a DaemonSet has no scale
    with pytest.raises(subprocess.CalledProcessError) as err:
        render("rbac.workloads={pods}")
    assert "/rbac/workloads/0" in err.value.stderr
