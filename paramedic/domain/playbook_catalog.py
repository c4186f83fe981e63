"""The playbook catalog: which playbooks namespaces may run, and with which variables.

The catalog is the admin's (a file mounted from a ConfigMap in Paramedic's namespace);
everything in a MonitoredService is the tenant's, so a tenant's `ansible` action is checked
against it before anything runs:

- the playbook must be listed, and listed for the service's namespace;
- every `extraVars` key must be declared by the entry, and its value must match the entry's
  JSON Schema for it (unknown keys are refused);
- reserved names are refused whatever the catalog says: Ansible's own variables
  (`ansible_*`, connection, privilege and magic variables, which would change how or where
  the playbook runs) and the variables the operator sets itself (`namespace`, `target_name`...,
  which pin the playbook to the service's own target).

Catalog document (YAML or JSON)::

    playbooks:
      scale-deployment.yml:
        description: Scale the service's target.
        namespaces: [team-a]        # optional; omitted: every namespace
        vars:                       # name -> JSON Schema of its value
          replicas: {type: integer, minimum: 0, maximum: 20}
        required: [replicas]        # optional
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from .text import cut

# What a refusal quotes of a name or a schema's message, "…" included: enough to recognise it.
QUOTED = 80

# Variables the operator passes to every playbook (see playbooks/README.md). A tenant may not
# set them: they are what keeps a playbook on the service's own target in its own namespace.
OPERATOR_VARS: tuple[str, ...] = (
    "incident_name", "incident_namespace", "service", "severity", "namespace",
    "target_kind", "target_name", "deployment", "restarted_at", "kubeconfig",
)

# Any name starting with one of these (compared in lower case) is Ansible's: connection,
# become, interpreter and magic variables (`ansible_connection`, `ansible_become_password`,
# `ansible_python_interpreter`, `ansible_facts`...), and its internal `__ansible_*` markers.
RESERVED_PREFIXES: tuple[str, ...] = ("ansible_", "_")

# Ansible's variables and keywords without the `ansible_` prefix that change how, where or as
# whom a play runs, or that templates resolve to Ansible's own objects. Extra vars have the
# highest precedence in Ansible, so a tenant's value would win over the playbook's own.
RESERVED_NAMES: frozenset[str] = frozenset({
    # privilege escalation
    "become", "become_user", "become_method", "become_flags", "become_exe", "become_pass",
    "become_password",
    # connection
    "connection", "remote_user", "port", "timeout", "delegate_to", "delegate_facts", "local_action",
    # execution environment and behaviour
    "environment", "check_mode", "diff", "no_log", "run_once", "module_defaults", "collections",
    "throttle", "any_errors_fatal", "ignore_errors", "ignore_unreachable", "strategy", "serial",
    "gather_facts", "hosts", "vars", "vars_files", "tags",
    # magic variables
    "hostvars", "groups", "group_names", "inventory_hostname", "inventory_hostname_short",
    "inventory_dir", "inventory_file", "omit", "play_hosts", "playbook_dir", "role_name",
    "role_names", "role_path", "item", "loop", "loop_control",
    # template globals a variable would shadow
    "lookup", "query", "q", "now", "undef", "range", "dict", "lipsum", "cycler", "joiner",
})

VAR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MAX_VAR_NAME = 64
MAX_MESSAGE = 300
PLAYBOOK_NAME = re.compile(r"^(?!/)(?!.*(^|/)\.\.(/|$))[A-Za-z0-9._/-]+\.ya?ml$")

# The shape of the catalog document itself (the admin's typos are refused, not ignored).
_CATALOG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["playbooks"],
    "properties": {
        "playbooks": {
            "type": ["object", "null"],
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "description": {"type": "string"},
                    "namespaces": {"type": "array", "items": {"type": "string", "minLength": 1}},
                    "vars": {"type": ["object", "null"], "additionalProperties": {"type": ["object", "boolean"]}},
                    "required": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}


class CatalogError(ValueError):
    """The catalog document cannot be used (the admin's mistake)."""


class PlaybookRefused(ValueError):
    """A tenant's `ansible` action is not allowed by the catalog or names a reserved variable."""


def reserved_reason(name: str) -> str | None:
    """Why variable `name` may not be set by a tenant, or None when it may (subject to the catalog)."""
    if name in OPERATOR_VARS:
        return "set by the operator (it pins the playbook to the service's own target and incident)"
    low = name.lower()
    if name in RESERVED_NAMES or low in RESERVED_NAMES or low.startswith(RESERVED_PREFIXES):
        return "reserved by Ansible (connection, privilege or magic variable)"
    if not VAR_NAME.match(name) or len(name) > MAX_VAR_NAME:
        return f"not a variable name (a letter, then letters, digits and '_', at most {MAX_VAR_NAME} characters)"
    return None


@dataclass(frozen=True)
class Entry:
    playbook: str
    description: str
    vars: Mapping[str, Any]              # var name -> JSON Schema of its value
    required: tuple[str, ...]
    namespaces: tuple[str, ...] | None   # None: every namespace

    def allows_namespace(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def validator(self) -> Draft202012Validator:
        return Draft202012Validator({"type": "object", "properties": dict(self.vars),
                                     "required": list(self.required), "additionalProperties": False})


@dataclass(frozen=True)
class Catalog:
    entries: Mapping[str, Entry]

    def check(self, playbook: str, extra_vars: Any, namespace: str) -> Entry:
        """The catalog entry allowing this action, or PlaybookRefused saying why not."""
        return check_request(self, playbook, extra_vars, namespace)


EMPTY = Catalog({})


def parse_catalog(doc: Any) -> Catalog:
    """The catalog from its parsed document; CatalogError names what is wrong."""
    if doc is None:
        return EMPTY
    errors = sorted(Draft202012Validator(_CATALOG_SCHEMA).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        raise CatalogError(f"playbook catalog: {_where(errors[0], 'catalog')}: {cut(errors[0].message, QUOTED)}")
    entries: dict[str, Entry] = {}
    for name, raw in sorted((doc.get("playbooks") or {}).items()):
        if not PLAYBOOK_NAME.match(name):
            raise CatalogError(f"playbook catalog: {name!r} is not a relative .yml/.yaml path inside "
                               "the playbooks directory")
        vars_ = dict(raw.get("vars") or {})
        for var, schema in vars_.items():
            why = reserved_reason(var)
            if why:
                raise CatalogError(f"playbook catalog: {name}: variable {cut(var, QUOTED)!r} may not be declared: {why}")
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise CatalogError(f"playbook catalog: {name}: the schema of {var!r} is not valid "
                                   f"JSON Schema: {cut(exc.message, QUOTED)}") from None
        required = tuple(raw.get("required") or ())
        missing = [r for r in required if r not in vars_]
        if missing:
            raise CatalogError(f"playbook catalog: {name}: required variables {missing} are not declared in vars")
        namespaces = raw.get("namespaces")
        entries[name] = Entry(name, str(raw.get("description") or ""), vars_, required,
                              None if namespaces is None else tuple(namespaces))
    return Catalog(entries)


def check_request(catalog: Catalog, playbook: str, extra_vars: Any, namespace: str) -> Entry:
    """Refuse (PlaybookRefused) a playbook the catalog does not allow in `namespace`, reserved
    variable names, undeclared variables and values outside their schema."""
    entry = catalog.entries.get(playbook)
    if entry is None:
        listed = ", ".join(sorted(catalog.entries)) or "none"
        raise PlaybookRefused(f"playbook {cut(playbook, QUOTED)} is not in the playbook catalog (allowed: {listed})")
    if not entry.allows_namespace(namespace):
        raise PlaybookRefused(f"playbook {playbook} is not allowed in namespace {namespace} by the playbook catalog")
    if extra_vars is None:
        extra_vars = {}
    if not isinstance(extra_vars, Mapping):
        raise PlaybookRefused("extraVars must be a mapping of variable names to values")
    for key in extra_vars:
        why = reserved_reason(key) if isinstance(key, str) else "not a variable name"
        if why:
            raise PlaybookRefused(f"playbook {playbook}: extraVars may not set {cut(str(key), QUOTED)!r}: {why}")
    unknown = sorted(k for k in extra_vars if k not in entry.vars)
    if unknown:
        allowed = ", ".join(sorted(entry.vars)) or "none"
        raise PlaybookRefused(f"playbook {playbook}: extraVars {cut(', '.join(unknown), QUOTED)} not declared "
                              f"in the playbook catalog (allowed: {allowed})")
    errors = sorted(entry.validator().iter_errors(dict(extra_vars)), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise PlaybookRefused(f"playbook {playbook}: {_where(first, 'extraVars')}{_explain(first)}")
    return entry


def _where(error: ValidationError, root: str) -> str:
    return "".join([root] + [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path])


# What a refusal says per JSON Schema rule: what was expected, without echoing the tenant's
# value at length (it lands in status).
_RULE_SAYS: dict[str, str] = {
    "enum": " must be one of {want}",
    "const": " must be {want!r}",
    "type": " must be of type {want}",
    "pattern": " must match the pattern {want!r}",
    **dict.fromkeys(("maxLength", "minLength", "maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum",
                     "maxItems", "minItems", "multipleOf", "maxProperties", "minProperties"), " violates {rule} {want}"),
}


def _explain(error: ValidationError) -> str:
    rule, want = str(error.validator), error.validator_value
    if rule in _RULE_SAYS:
        return _RULE_SAYS[rule].format(rule=rule, want=want)
    if rule == "required":
        return ": " + cut(error.message, QUOTED)
    return f" does not match the catalog's schema ({rule}): {cut(error.message, QUOTED)}"

