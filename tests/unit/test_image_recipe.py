"""The image carries only the Ansible collections the Dockerfile names: every collection a playbook
uses must be among them (tests/e2e/test_image.py checks the built image itself)."""

import re
from pathlib import Path

import pytest

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


def _build_helper():
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_helper", REPO / "hack" / "image" / "build_helper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_runtime_lock_pins_every_package_the_image_needs_with_hashes():
    import tomllib

    helper = _build_helper()
    entries = helper.lock_entries(str(REPO / "requirements.lock"))
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    image_in = [line for line in (REPO / "requirements-image.in").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    wanted = {helper._name(r) for r in project["dependencies"] + project["optional-dependencies"]["ansible"]
              + image_in + ["setuptools", "wheel"]}
    assert wanted <= entries.keys(), f"run `make lock`: {sorted(wanted - entries.keys())} missing"
    for name, text in entries.items():
        assert "==" in text.splitlines()[0] and "--hash=sha256:" in text, name
    # the same versions as the development lock (one resolution, two subsets)
    dev = helper.lock_entries(str(REPO / "requirements-dev.lock"))
    for name, text in entries.items():
        assert dev[name].splitlines()[0] == text.splitlines()[0], name


def test_build_helper_splits_the_lock(tmp_path):
    helper = _build_helper()
    lock = tmp_path / "requirements.lock"
    lock.write_text("# header\nansible==12.3.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via x\n"
                    "Flask==3.1.3 \\\n    --hash=sha256:cc\n    # via paramedic\nwheel==0.48.0 \\\n    --hash=sha256:dd\n")
    assert helper.pick(str(lock), ["ansible>=10"], keep=True) == \
        "ansible==12.3.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
    assert helper.pick(str(lock), ["ansible", "wheel"], keep=False) == "Flask==3.1.3 \\\n    --hash=sha256:cc\n"
    with pytest.raises(SystemExit, match="make lock"):
        helper.pick(str(lock), ["nope"], keep=True)


def test_image_installs_python_packages_only_from_the_lock():
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    commands = re.findall(r"pip (?:install|download)[^;]*", text)
    assert commands
    for cmd in commands:
        # hashes checked, or nothing fetched (--no-index), or Paramedic itself without its dependencies
        itself = cmd.rstrip().endswith("--no-deps --no-build-isolation .")
        assert "--require-hashes" in cmd or "--no-index" in cmd or itself, cmd
