"""`make cluster-deploy`: Paramedic's chart on the local cluster's real node, as a user installs it.

    python -m devtools.deploy [--release paramedic] [--namespace paramedic]

With `make cluster-up` running (and its real node), it builds the image when its inputs
changed (`make image`'s script and cache), loads it into the node's containerd, and runs
`helm upgrade --install` with the node's placement and two operator replicas sharing the
work through their Leases. Pods roll only when the image did: each carries the image
archive's name (keyed by its inputs) as an annotation, since the tag stays `dev`.

`chart_values` is what the chart needs on this machine's node; tests/e2e/test_chart_ha.py
installs with it too.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from . import node as devnode
from .cluster import IMAGE, REPO, DevCluster, image_archive, tools_bin

CHART = REPO / "charts" / "paramedic"
IMAGE_ANNOTATION = "paramedic.dev/image-archive"


class DeployError(RuntimeError):
    pass


def chart_values(image: str = IMAGE, archive: str = "", operator_replicas: int = 2) -> dict[str, Any]:
    """Values for the real node: its image (loaded, never pulled), its placement, and the probes'
    allowlist of the Service range (probes of in-cluster Services reach their ClusterIP)."""
    repository, tag = image.rsplit(":", 1)
    pods: dict[str, Any] = {"nodeSelector": devnode.PLACEMENT["nodeSelector"],
                            "tolerations": devnode.PLACEMENT["tolerations"]}
    if archive:
        pods["podAnnotations"] = {IMAGE_ANNOTATION: archive}
    return {"image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
            "operator": {**pods, "replicas": operator_replicas, "probeAllowCIDRs": [devnode.SERVICE_CIDR]},
            "webhook": dict(pods),
            "console": dict(pods)}


def deploy(release: str, namespace: str, log=print) -> None:
    cluster = DevCluster()
    if not cluster.running():
        raise DeployError("the local cluster is not running: `make cluster-up` first")
    node = cluster.node()
    if node is None:
        raise DeployError("the local cluster has no real node (it needs root; PARAMEDIC_REAL_NODE=1 make cluster-up "
                          "says why not): Paramedic's pods would have nowhere to run")
    log("image: building if its inputs changed (hack/build-image.sh, as `make image`)")
    archive = image_archive("paramedic")
    log(f"image: loading {archive.name} into {devnode.NODE_NAME}'s containerd")
    node.import_images([archive])
    with tempfile.TemporaryDirectory() as tmp:
        values = Path(tmp) / "values.yaml"
        values.write_text(yaml.safe_dump(chart_values(archive=archive.stem)))
        cmd = [str(tools_bin() / "helm"), "--kubeconfig", str(cluster.kubeconfig), "upgrade", "--install", release,
               str(CHART), "--namespace", namespace, "--create-namespace", "-f", str(values),
               "--wait", "--timeout", "5m"]
        log(f"helm upgrade --install {release} charts/paramedic --namespace {namespace} (two operator replicas)")
        out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise DeployError(f"helm failed:\n{out.stdout}{out.stderr}")
    kubeconfig = cluster.kubeconfig.relative_to(REPO) if cluster.kubeconfig.is_relative_to(REPO) else cluster.kubeconfig
    steps = [(f"export KUBECONFIG={kubeconfig} PATH=$PWD/.paramedic/bin:$PATH", ""),
             (f"kubectl -n {namespace} get pods -o wide", "two operators, two receivers, two consoles"),
             (f"kubectl -n {namespace} get leases -l paramedic.dev/sharding", "which operator holds which shard"),
             ("kubectl get msvc -A", "HANDLED-BY: the replica handling each service"),
             (f"kubectl -n {namespace} delete pod <an operator pod>", "its shards move to the other replica"),
             (f"helm -n {namespace} status {release}", "the receiver's URL and token"),
             ("make cluster-down", "when done")]
    width = max(len(step) for step, why in steps if why) + 2
    log(f"\nParamedic runs on {devnode.NODE_NAME}. Next:")
    for step, why in steps:
        log(f"  {step:<{width}}# {why}" if why else f"  {step}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devtools.deploy", description=__doc__.split("\n\n")[0])
    p.add_argument("--release", default="paramedic")
    p.add_argument("--namespace", default="paramedic")
    args = p.parse_args(argv)
    try:
        deploy(args.release, args.namespace)
    except (DeployError, subprocess.CalledProcessError, devnode.NodeError) as exc:
        print(f"cluster-deploy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
