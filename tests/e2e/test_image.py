"""The container images, built the way `make image` builds them (hack/build-image.sh: Docker,
else podman, else buildah; cached by their inputs, so cheap when warm), then run with that builder.

Checks what the real node and a cluster rely on: the archive `ctr images import` takes, the two
commands, the non-root user, ansible-core with only the collections the playbooks use, no trace of
the build's private CA bundle, and the sandbox (pause) image.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "hack" / "build-image.sh"
IMAGE = "localhost/paramedic:dev"
PAUSE = "localhost/pause:3.10"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _builder() -> str | None:
    forced = os.environ.get("PARAMEDIC_BUILDER")
    if forced:
        return forced
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        return "docker"
    return next((b for b in ("podman", "buildah") if shutil.which(b)), None)


BUILDER = _builder()
if BUILDER is None:
    pytestmark.append(pytest.mark.skip(reason="no image builder on this machine: Docker (with `docker info` "
                                              "working), podman or buildah (hack/apt-deps.sh installs buildah)"))


def build(*args: str) -> Path:
    out = subprocess.run([str(BUILD), *args], capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, f"hack/build-image.sh {' '.join(args)} failed:\n{out.stderr[-4000:]}"
    tar = Path(out.stdout.strip().splitlines()[-1])
    assert tar.is_file() and tar.suffix == ".tar", out.stdout
    return tar


def run(image: str, *cmd: str, entrypoint: str | None = None) -> subprocess.CompletedProcess:
    """Runs cmd in a new container of image (as the image's user), removed afterwards."""
    if BUILDER in ("docker", "podman"):
        extra = ULIMITS if BUILDER == "podman" else []
        ep = ["--entrypoint", entrypoint] if entrypoint else []
        return subprocess.run([BUILDER, "run", "--rm", *extra, *ep, image, *cmd],
                              capture_output=True, text=True, timeout=300)
    name = f"pm-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["buildah", "from", "--pull=never", "--quiet", "--isolation", "chroot", *ULIMITS,
                    "--name", name, image], check=True, capture_output=True, text=True)
    try:
        argv = [entrypoint, *cmd] if entrypoint else list(cmd)
        return subprocess.run(["buildah", "run", "--isolation", "chroot", name, "--", *argv],
                              capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["buildah", "rm", name], capture_output=True)


def archive_manifest(tar: Path) -> tuple[dict, dict, list[list[str]]]:
    """(manifest entry, image config, file names of each layer) of a docker-archive."""
    with tarfile.open(tar) as archive:
        entry = json.load(archive.extractfile("manifest.json"))[0]
        config = json.load(archive.extractfile(entry["Config"]))
        layers = []
        for layer in entry["Layers"]:
            with tarfile.open(fileobj=archive.extractfile(layer), mode="r:*") as inner:
                layers.append(inner.getnames())
    return entry, config, layers


def build_ca() -> str | None:
    """The CA bundle hack/build-image.sh hands the build as a secret, by the same rules."""
    if "PARAMEDIC_BUILD_CA" in os.environ:
        return os.environ["PARAMEDIC_BUILD_CA"] or None
    if os.environ.get("PIP_CERT"):
        return os.environ["PIP_CERT"]
    out = subprocess.run(["python3", "-m", "pip", "config", "list"], capture_output=True, text=True)
    found = re.findall(r"^global\.cert='(.*)'$", out.stdout, re.M)
    return found[-1] if found else None


@pytest.fixture(scope="module")
def image_tar() -> Path:
    return build()


def test_archive_is_a_docker_archive_named_for_the_node(image_tar):
    entry, config, _ = archive_manifest(image_tar)
    assert entry["RepoTags"] == [IMAGE]
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["Entrypoint"] == ["/usr/bin/tini", "--"]
    assert config["config"]["Cmd"] == ["paramedic-operator", "--all-namespaces"]
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    assert env["HOME"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PARAMEDIC_PLAYBOOKS_DIR"] == "/opt/paramedic/playbooks"


def test_warm_build_is_the_cached_archive(image_tar):
    assert build() == image_tar


def test_both_commands_run(image_tar):
    out = run(IMAGE, "paramedic-operator", "--help")
    assert out.returncode == 0, out.stderr
    assert "--all-namespaces" in out.stdout
    out = run(IMAGE, "paramedic-webhook", "--help")
    assert out.returncode == 0, out.stderr
    assert "--bind" in out.stdout


def test_runs_as_the_unprivileged_user(image_tar):
    out = run(IMAGE, "sh", "-c", 'id -u; id -g; echo "$HOME"')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10001", "10001", "/tmp"]


def test_ansible_core_with_only_the_collections_the_playbooks_use(image_tar):
    out = run(IMAGE, "ansible-playbook", "--version")
    assert out.returncode == 0, out.stderr
    assert re.search(r"core 2\.\d+", out.stdout), out.stdout
    # jsonpatch and kubernetes: what the kubernetes.core modules the playbooks use import.
    script = ("import os, jsonpatch, kubernetes, ansible_collections.kubernetes.core, ansible_collections as ac\n"
              "print(sorted({d for p in ac.__path__ for d in os.listdir(p)}))\n"
              "print(sorted({d for p in ac.__path__ for d in os.listdir(os.path.join(p, 'kubernetes'))}))\n")
    out = run(IMAGE, "python", "-c", script)
    assert out.returncode == 0, out.stderr
    namespaces, kubernetes_collections = out.stdout.splitlines()[-2:]
    # Not the whole `ansible` bundle (amazon, community, ...): the kubernetes namespace only.
    assert namespaces == "['kubernetes']"
    assert kubernetes_collections == "['core']"
    out = run(IMAGE, "ansible-doc", "-t", "module", "kubernetes.core.k8s_json_patch")
    assert out.returncode == 0 and "jsonpatch" in out.stdout, out.stderr


def test_a_kubernetes_core_module_runs_as_the_user(image_tar):
    # Nothing listens on port 1: the module got as far as its Kubernetes client, so the
    # collection, its Python dependencies and Ansible's temp dirs under HOME=/tmp all work.
    out = run(IMAGE, "ansible", "localhost", "-c", "local", "-m", "kubernetes.core.k8s_info",
              "-a", "kind=Pod host=https://127.0.0.1:1 api_key=x validate_certs=false")
    assert out.returncode != 0
    assert "Connection refused" in out.stdout or "Failed to establish" in out.stdout, out.stdout + out.stderr
    assert "Failed to import" not in out.stdout


def test_no_trace_of_the_build_ca_bundle(image_tar):
    ca = build_ca()
    if not ca:
        pytest.skip("no CA bundle given to the build (PARAMEDIC_BUILD_CA, PIP_CERT or pip's global.cert)")
    out = subprocess.run(["python3", str(REPO / "hack" / "image" / "check_no_secret.py"), str(image_tar), ca],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr


def test_pause_image_is_one_static_binary():
    tar = build("pause")
    entry, config, layers = archive_manifest(tar)
    assert entry["RepoTags"] == [PAUSE]
    assert config["config"]["Entrypoint"] == ["/pause"]
    files = [n for names in layers for n in names if not n.endswith("/")]
    assert [f.lstrip("./") for f in files] == ["pause"]
    out = run(PAUSE, "-v", entrypoint="/pause")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pause ")
