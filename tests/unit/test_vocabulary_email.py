"""The one e-mail pattern (paramedic.domain.vocabulary): what the CRDs accept, and what Paramedic mails to."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from paramedic.domain.vocabulary import EMAIL, EMAIL_MAX, is_deliverable_email, is_email

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value, accepted, deliverable", [
    ("alice@example.com", True, True),
    ("first.last+tag@sub.example.co", True, True),
    ("ops@localhost", True, True),
    ("alice", False, False),
    ("@example.com", False, False),
    ("alice@", False, False),
    ("a@b@c", False, False),
    ("al ice@example.com", False, False),
    ("alice@example.com\nBcc: x@y", False, False),
    ("Alice <alice@example.com>", False, False),     # a display name is not an address
    ("ünï@example.com", True, False),                 # the CRDs take it; SMTP envelopes need ASCII
    ("alice@-bad-.example", True, False),
    ("a" * (EMAIL_MAX - len("@x.io")) + "@x.io", True, True),
    ("a" * (EMAIL_MAX - len("@x.io") + 1) + "@x.io", False, False),
    (None, False, False),
    (42, False, False),
])
def test_accepted_and_deliverable(value, accepted, deliverable):
    assert is_email(value) is accepted
    assert is_deliverable_email(value) is deliverable
    assert not deliverable or accepted  # what is mailed to is always something the CRDs took


def _crd_strings(path: Path, key: str) -> list[str]:
    """Every value of `key` holding an "@" in the CRD at `path`, as YAML reads it."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "@" in str(node.get(key, "")):
                found.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for doc in yaml.safe_load_all(path.read_text()):
        walk(doc)
    return found


@pytest.mark.parametrize("folder", ["charts/paramedic/crds", "manifests/crds"])
def test_the_crds_carry_the_one_pattern(folder):
    patterns = [p for path in sorted((REPO / folder).glob("*.yaml")) for p in _crd_strings(path, "pattern")]
    assert len(patterns) >= 3 and set(patterns) == {EMAIL.pattern}
    # The OnCallSchedule's CEL rule for escalation targets says the same (a CEL string literal:
    # its backslashes doubled).
    rules = _crd_strings(REPO / folder / "oncallschedules.paramedic.dev.yaml", "rule")
    literals = [m for rule in rules for m in re.findall(r"self\.matches\('([^']*@[^']*)'\)", rule)]
    assert literals and {m.replace("\\\\", "\\") for m in literals} == {EMAIL.pattern}


def test_the_charts_values_schema_carries_the_one_pattern():
    text = (REPO / "charts/paramedic/values.schema.json").read_text()
    patterns = re.findall(r'"pattern": ("[^"]*@[^"]*")', text)
    plain = {json.loads(p) for p in patterns if "," not in json.loads(p)}
    assert plain == {EMAIL.pattern}
    # The comma-separated form is the same address with commas excluded, repeated.
    one = EMAIL.pattern[1:-1].replace("[^@\\s]", "[^@\\s,]")
    assert {json.loads(p) for p in patterns if "," in json.loads(p)} == {f"^({one}(,{one})*)?$"}
