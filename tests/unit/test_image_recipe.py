"""The image carries only the Ansible collections the Dockerfile names: every collection a playbook
uses must be among them (tests/e2e/test_image.py checks the built image itself)."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A task's module key, `- kubernetes.core.k8s_info:`, or a lookup('ns.name.plugin', ...).
FQCN = re.compile(r"^\s*(?:-\s+)?([a-z0-9_]+)\.([a-z0-9_]+)\.[a-z0-9_]+:\s*$|lookup\(\s*['\"]([a-z0-9_]+)\.([a-z0-9_]+)\.",
                  re.M)


def image_collections() -> set[str]:
    match = re.search(r'^ARG ANSIBLE_COLLECTIONS="([^"]*)"', (REPO / "Dockerfile").read_text(), re.M)
    assert match, "Dockerfile: ARG ANSIBLE_COLLECTIONS=\"...\" not found"
    return set(match.group(1).split())


def playbook_collections() -> set[str]:
    used = set()
    for path in sorted((REPO / "playbooks").glob("*.y*ml")):
        for m in FQCN.finditer(path.read_text()):
            ns, name = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            used.add(f"{ns}.{name}")
    return used - {"ansible.builtin", "ansible.legacy"}


def test_playbooks_use_only_collections_the_image_carries():
    used = playbook_collections()
    assert "kubernetes.core" in used
    assert used <= image_collections(), f"add {sorted(used - image_collections())} to ANSIBLE_COLLECTIONS"


def test_build_helper_is_in_the_build_context():
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert "!hack/image/build_helper.py" in ignore[ignore.index("hack"):]
