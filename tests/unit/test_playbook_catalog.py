"""The playbook catalog (issue #16): which playbooks a namespace may run, with which variables.

Pure checks (paramedic.domain.playbook_catalog), the operator's loading of the admin's file
(paramedic.remediation_io), and the copies of the catalog and the reserved-name lists that the
image, the chart, the manifests and the admission policy carry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from paramedic.domain.playbook_catalog import (
    OPERATOR_VARS,
    RESERVED_NAMES,
    CatalogError,
    PlaybookRefused,
    check_request,
    parse_catalog,
    reserved_reason,
)
from paramedic.remediation_io import (
    RUN_MARKER,
    RUNNER_ENV,
    RemediationError,
    ansible_environment,
    checked_playbook_vars,
    load_catalog,
    runner_environment,
)
from paramedic.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
FIXTURES = REPO / "tests" / "fixtures" / "playbooks"

CATALOG = parse_catalog({"playbooks": {
    "scale.yml": {"description": "scale", "vars": {
        "replicas": {"type": "integer", "minimum": 0, "maximum": 20},
        "mode": {"enum": ["fast", "safe"]},
        "label": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 10},
        "ports": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
        "opts": {"type": "object", "properties": {"x": {"type": "boolean"}}, "additionalProperties": False},
        "anything": {},
    }, "required": ["replicas"]},
    "team-a-only.yml": {"namespaces": ["team-a"], "vars": {"wait": {"type": "boolean"}}},
    "novars.yaml": {},
}})


# --- allowed ------------------------------------------------------------------------------

@pytest.mark.parametrize("playbook, extra, namespace", [
    ("scale.yml", {"replicas": 0}, "any"),
    ("scale.yml", {"replicas": 20, "mode": "safe", "label": "abc", "ports": [1, 2], "opts": {"x": True},
                   "anything": {"nested": ["$(id)", None]}}, "ns"),
    ("team-a-only.yml", {}, "team-a"),
    ("team-a-only.yml", {"wait": False}, "team-a"),
    ("novars.yaml", {}, "x"),
    ("novars.yaml", None, "x"),
])
def test_allowed(playbook, extra, namespace):
    assert check_request(CATALOG, playbook, extra, namespace).playbook == playbook
    assert CATALOG.check(playbook, extra, namespace).playbook == playbook


# --- refused ------------------------------------------------------------------------------

@pytest.mark.parametrize("playbook, extra, namespace, message", [
    ("restart-local-service.yml", {}, "ns", "playbook restart-local-service.yml is not in the playbook catalog "
                                            "(allowed: novars.yaml, scale.yml, team-a-only.yml)"),
    ("../scale.yml", {}, "ns", "not in the playbook catalog"),
    ("Scale.yml", {"replicas": 1}, "ns", "not in the playbook catalog"),
    ("team-a-only.yml", {}, "team-b", "playbook team-a-only.yml is not allowed in namespace team-b by the "
                                      "playbook catalog"),
    ("scale.yml", ["replicas"], "ns", "extraVars must be a mapping"),
    ("scale.yml", {}, "ns", "extraVars: 'replicas' is a required property"),
    ("scale.yml", {"replicas": "3"}, "ns", "extraVars.replicas must be of type integer"),
    ("scale.yml", {"replicas": True}, "ns", "extraVars.replicas must be of type integer"),
    ("scale.yml", {"replicas": 21}, "ns", "extraVars.replicas violates maximum 20"),
    ("scale.yml", {"replicas": -1}, "ns", "extraVars.replicas violates minimum 0"),
    ("scale.yml", {"replicas": 1, "mode": "fast; sh -c id"}, "ns", "extraVars.mode must be one of ['fast', 'safe']"),
    ("scale.yml", {"replicas": 1, "label": "a b"}, "ns", "extraVars.label must match the pattern '^[a-z]+$'"),
    ("scale.yml", {"replicas": 1, "label": "abcdefghijk"}, "ns", "extraVars.label violates maxLength 10"),
    ("scale.yml", {"replicas": 1, "ports": [1, "x"]}, "ns", "extraVars.ports[1] must be of type integer"),
    ("scale.yml", {"replicas": 1, "ports": [1, 2, 3]}, "ns", "extraVars.ports violates maxItems 2"),
    ("scale.yml", {"replicas": 1, "opts": {"y": 1}}, "ns", "extraVars.opts does not match the catalog's schema "
                                                           "(additionalProperties)"),
    ("scale.yml", {"replicas": 1, "cmd": "id", "zz": 1}, "ns", "extraVars cmd, zz not declared in the playbook "
                                                               "catalog (allowed: anything, label, mode, opts, ports, "
                                                               "replicas)"),
    ("novars.yaml", {"x": 1}, "ns", "extraVars x not declared in the playbook catalog (allowed: none)"),
    ("scale.yml", {"replicas": 1, "become": True}, "ns", "extraVars may not set 'become': reserved by Ansible"),
    ("scale.yml", {"replicas": 1, "ansible_python_interpreter": "/bin/sh"}, "ns", "reserved by Ansible"),
    ("scale.yml", {"replicas": 1, "namespace": "kube-system"}, "ns",
     "extraVars may not set 'namespace': set by the operator"),
    ("scale.yml", {"replicas": 1, "_name": "x"}, "ns", "extraVars may not set '_name': reserved by Ansible"),
    ("scale.yml", {"replicas": 1, "bad name": 1}, "ns", "extraVars may not set 'bad name': not a variable name"),
    ("scale.yml", {"replicas": 1, 3: 1}, "ns", "extraVars may not set '3': not a variable name"),
])
def test_refused(playbook, extra, namespace, message):
    with pytest.raises(PlaybookRefused) as err:
        check_request(CATALOG, playbook, extra, namespace)
    assert message in str(err.value)


def test_reserved_names_are_refused_even_if_the_schema_would_take_them():
    # Checked before the catalog's own schema, so no catalog can let them through.
    for name in sorted(RESERVED_NAMES) + ["ansible_connection", "ansible_become_password", "Ansible_Host",
                                          "ANSIBLE_SSH_EXECUTABLE", "ansible_facts", "__ansible_unsafe"]:
        with pytest.raises(PlaybookRefused, match="reserved by Ansible"):
            check_request(CATALOG, "scale.yml", {"replicas": 1, name: "x"}, "ns")
    for name in OPERATOR_VARS:
        with pytest.raises(PlaybookRefused, match="set by the operator"):
            check_request(CATALOG, "scale.yml", {"replicas": 1, name: "x"}, "ns")


def test_reserved_list_covers_connection_privilege_and_magic_variables():
    for name in ("become", "become_user", "become_method", "become_flags", "become_exe", "become_pass",
                 "connection", "remote_user", "port", "environment", "delegate_to", "hostvars", "groups",
                 "inventory_hostname", "omit", "playbook_dir", "item", "vars", "lookup"):
        assert reserved_reason(name), name
    for name in ("replicas", "wait", "wait_timeout", "to_revision", "dump_to", "mode"):
        assert reserved_reason(name) is None, name
    assert reserved_reason("x" * 65)  # too long
    assert reserved_reason("9lives") and reserved_reason("a-b") and reserved_reason("")


def test_refusal_never_echoes_a_long_tenant_value():
    long = "A" * 5000
    for extra in ({"replicas": 1, "mode": long}, {"replicas": 1, long: 1}, {"replicas": long}):
        with pytest.raises(PlaybookRefused) as err:
            check_request(CATALOG, "scale.yml", extra, "ns")
        assert len(str(err.value)) < 400
    with pytest.raises(PlaybookRefused) as err:
        check_request(CATALOG, long + ".yml", {}, "ns")
    assert len(str(err.value)) < 400


# --- the catalog document -------------------------------------------------------------------

@pytest.mark.parametrize("doc, message", [
    ([], "catalog: [] is not of type 'object'"),
    ({}, "'playbooks' is a required property"),
    ({"playbooks": {}, "extra": 1}, "Additional properties are not allowed"),
    ({"playbooks": {"a.yml": {"namespace": ["x"]}}}, "catalog.playbooks.a.yml: Additional properties"),
    ({"playbooks": {"a.yml": {"namespaces": "x"}}}, "catalog.playbooks.a.yml.namespaces"),
    ({"playbooks": {"a.yml": {"vars": {"x": "string"}}}}, "catalog.playbooks.a.yml.vars.x"),
    ({"playbooks": {"../a.yml": {}}}, "'../a.yml' is not a relative .yml/.yaml path"),
    ({"playbooks": {"/etc/a.yml": {}}}, "is not a relative .yml/.yaml path"),
    ({"playbooks": {"a.sh": {}}}, "is not a relative .yml/.yaml path"),
    ({"playbooks": {"a.yml": {"vars": {"become": {}}}}}, "variable 'become' may not be declared: reserved"),
    ({"playbooks": {"a.yml": {"vars": {"ansible_port": {}}}}}, "variable 'ansible_port' may not be declared"),
    ({"playbooks": {"a.yml": {"vars": {"target_name": {}}}}}, "variable 'target_name' may not be declared: set by"),
    ({"playbooks": {"a.yml": {"vars": {"x": {"type": "nope"}}}}}, "the schema of 'x' is not valid JSON Schema"),
    ({"playbooks": {"a.yml": {"vars": {"x": {}}, "required": ["y"]}}}, "required variables ['y'] are not declared"),
])
def test_bad_catalogs_are_refused(doc, message):
    with pytest.raises(CatalogError) as err:
        parse_catalog(doc)
    assert message in str(err.value)


def test_empty_catalogs_allow_nothing():
    for doc in (None, {"playbooks": None}, {"playbooks": {}}):
        with pytest.raises(PlaybookRefused, match=r"not in the playbook catalog \(allowed: none\)"):
            check_request(parse_catalog(doc), "restart-deployment.yml", {}, "ns")
    entry = parse_catalog({"playbooks": {"a.yml": {"namespaces": []}}}).entries["a.yml"]
    assert not entry.allows_namespace("anything")  # an empty list: no namespace


# --- the operator reading the admin's file ---------------------------------------------------

def test_load_catalog_from_the_setting_or_the_playbooks_directory(tmp_path):
    assert sorted(load_catalog(Settings(playbooks_dir=str(PLAYBOOKS))).entries) == [
        "restart-deployment.yml", "rollback-deployment.yml", "scale-deployment.yml"]
    own = tmp_path / "catalog.yaml"
    own.write_text("playbooks:\n  mine.yml: {vars: {level: {enum: [1, 2]}}}\n")
    settings = Settings(playbooks_dir=str(PLAYBOOKS), playbook_catalog=str(own))
    assert sorted(load_catalog(settings).entries) == ["mine.yml"]
    assert checked_playbook_vars(settings, {"playbook": "mine.yml", "extraVars": {"level": 2}}, "ns") == {"level": 2}
    assert checked_playbook_vars(settings, {"playbook": "mine.yml"}, "ns") == {}
    with pytest.raises(RemediationError, match=r"refused: playbook mine.yml: extraVars.level must be one of \[1, 2\]"):
        checked_playbook_vars(settings, {"playbook": "mine.yml", "extraVars": {"level": 3}}, "ns")
    # Edits apply at the next run (a mounted ConfigMap changes in place).
    own.write_text("playbooks: {}\n")
    with pytest.raises(RemediationError, match="not in the playbook catalog"):
        checked_playbook_vars(settings, {"playbook": "mine.yml"}, "ns")


@pytest.mark.parametrize("content, message", [
    (None, "no playbook runs without the playbook catalog: cannot read"),
    ("playbooks: [unclosed", "is not valid YAML"),
    ("playbooks: {a.yml: {vars: {become: {}}}}", "variable 'become' may not be declared"),
])
def test_a_missing_or_broken_catalog_allows_nothing(tmp_path, content, message):
    path = tmp_path / "catalog.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RemediationError, match=re.escape(message)):
        load_catalog(Settings(playbooks_dir=str(tmp_path), playbook_catalog=str(path)))


# --- the playbook's environment ----------------------------------------------------------------

OPERATOR_ENV = {
    "PATH": "/usr/bin:/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
    "KUBERNETES_SERVICE_PORT": "443", "KUBECONFIG": "/kube/config",
    "PARAMEDIC_SMTP_PASSWORD": "s3cret", "PARAMEDIC_SLACK_WEBHOOK_URL": "https://hooks/s3cret",
    "PARAMEDIC_WEBHOOK_TOKEN": "s3cret", "AWS_SECRET_ACCESS_KEY": "s3cret", "PYTHONPATH": "/evil",
    "LD_PRELOAD": "/evil.so", "ANSIBLE_CONFIG": "/evil.cfg", "K8S_AUTH_API_KEY": "s3cret",
}


def test_ansible_environment_is_an_allowlist():
    env = ansible_environment(temp_dir="/run/x", inherited=OPERATOR_ENV)
    assert not any("s3cret" in v or "evil" in v for v in env.values()), env
    assert not {"PARAMEDIC_SMTP_PASSWORD", "PYTHONPATH", "LD_PRELOAD", "ANSIBLE_CONFIG", "K8S_AUTH_API_KEY",
                "AWS_SECRET_ACCESS_KEY"} & set(env)
    for name in ("HOME", "LANG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBECONFIG"):
        assert env[name] == OPERATOR_ENV[name]
    assert env["PATH"].endswith(":/usr/bin:/bin")
    assert env["TMPDIR"] == "/run/x/tmp" and env["ANSIBLE_HOME"] == "/run/x/home"
    # No locale inherited: a UTF-8 one (ansible-core refuses others).
    assert ansible_environment(inherited={})["LANG"] == "C.UTF-8"


def test_runner_environment_keeps_only_ours_and_what_ansible_runner_set():
    ours = ansible_environment(inherited=OPERATOR_ENV)
    prepared = {**OPERATOR_ENV, **ours, "ANSIBLE_STDOUT_CALLBACK": "awx_display", "AWX_ISOLATED_DATA_DIR": "/a",
                "ANSIBLE_CALLBACK_PLUGINS": "/cb", RUN_MARKER: "x"}
    env = runner_environment(prepared, {**ours, RUN_MARKER: "x"})
    assert set(env) == set(ours) | {"ANSIBLE_STDOUT_CALLBACK", "AWX_ISOLATED_DATA_DIR", "ANSIBLE_CALLBACK_PLUGINS",
                                    RUN_MARKER}
    assert not any("s3cret" in v for v in env.values())
    assert set(RUNNER_ENV) >= {"ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS"}


# --- the copies: image, chart, manifests, admission policy, test fixtures ---------------------

def _default_catalog() -> dict:
    return yaml.safe_load((PLAYBOOKS / "catalog.yaml").read_text())


def test_the_image_ships_only_the_cataloged_cluster_playbooks():
    doc = _default_catalog()
    assert sorted(doc["playbooks"]) == ["restart-deployment.yml", "rollback-deployment.yml", "scale-deployment.yml"]
    shipped = sorted(p.name for p in PLAYBOOKS.glob("*.y*ml") if p.name != "catalog.yaml")
    assert shipped == sorted(doc["playbooks"])
    assert not (PLAYBOOKS / "restart-local-service.yml").exists() and not (PLAYBOOKS / "files").exists()


def test_chart_values_and_manifests_carry_the_default_catalog():
    values = yaml.safe_load((REPO / "charts" / "paramedic" / "values.yaml").read_text())
    assert values["playbookCatalog"] == _default_catalog()
    cm = yaml.safe_load((REPO / "manifests" / "playbook-catalog.yaml").read_text())
    assert yaml.safe_load(cm["data"]["catalog.yaml"]) == _default_catalog()
    assert "playbook-catalog.yaml" in (REPO / "manifests" / "kustomization.yaml").read_text()


def test_test_catalog_names_existing_test_playbooks():
    catalog = load_catalog(Settings(playbooks_dir=str(FIXTURES)))
    for name in catalog.entries:
        assert (FIXTURES / name).is_file(), name
    assert "restart-local-service.yml" in catalog.entries


def _cel_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"- name: {variable}\n\s+expression: \"\[(.*?)\]\"", text)
    assert match, variable
    return re.findall(r"'([^']*)'", match.group(1))


@pytest.mark.parametrize("path", ["manifests/playbook-vars-policy.yaml",
                                  "charts/paramedic/templates/playbook-vars-policy.yaml"])
def test_admission_policy_lists_match_the_domain(path):
    text = (REPO / path).read_text()
    assert _cel_list(text, "ansibleReserved") == sorted(RESERVED_NAMES)
    assert _cel_list(text, "operatorVars") == list(OPERATOR_VARS)
    assert "startsWith('ansible_')" in text and "^[A-Za-z][A-Za-z0-9_]{0,63}$" in text
    assert "playbook-vars-policy.yaml" in (REPO / "manifests" / "kustomization.yaml").read_text()


@pytest.mark.parametrize("path", ["manifests/samples/monitoredservice.yaml", "hack/demo/cluster.yaml"])
def test_shipped_examples_pass_the_default_catalog(path):
    catalog = load_catalog(Settings(playbooks_dir=str(PLAYBOOKS)))
    text = re.sub(r"@@\w+@@", '"x"', (REPO / path).read_text())  # the demo's placeholders
    actions = [a["ansible"] for doc in yaml.safe_load_all(text)
               if doc and doc.get("kind") == "MonitoredService"
               for a in doc["spec"].get("remediation", {}).get("actions", []) if "ansible" in a]
    assert actions, path
    for action in actions:
        catalog.check(action["playbook"], action.get("extraVars"), "shop")


def test_a_refusal_quotes_at_most_quoted_characters_of_what_it_names():
    # It used to quote one character more than its bound (the text's first 80, then "…").
    from paramedic.domain.playbook_catalog import QUOTED

    long_name = "x" * 200 + ".yml"
    with pytest.raises(PlaybookRefused) as refused:
        check_request(CATALOG, long_name, {}, "ns")
    quoted = str(refused.value).split()[1]
    assert len(quoted) == QUOTED and quoted == "x" * (QUOTED - 1) + "…"
