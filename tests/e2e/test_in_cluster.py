"""Paramedic as its users run it: installed with Helm (and with `kubectl apply -k`), its
pods running from its own image on the real node, healing a real Deployment.

The path: the chart's operator and receiver pods become Ready through their real probes
under the chart's securityContext; the operator logs in with its ServiceAccount; the
README's samples (checkout, team payments, checkout's MonitoredService) are applied; a pod
posts an alert to the receiver's Service; the incident opens; the operator restarts the
Deployment; new containers (new IDs) become Ready; the incident is mitigated, and the
resolved alert, posted the same way, resolves it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import uuid
from datetime import UTC, datetime

import pytest
import yaml

from devtools import node as devnode
from devtools.cluster import IMAGE, REPO, image_archive, tools_bin
from paramedic import kube
from tests.e2e.test_webhook import am_alert, am_payload, resolved
from tests.helpers import uninstall_release, wait_for, wait_object

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "paramedic"
REPO_NAME, TAG = IMAGE.rsplit(":", 1)
STARTS = datetime.now(UTC)


@pytest.fixture(scope="module")
def image(real_node) -> str:
    """Paramedic's image, built when its inputs changed and loaded into the node's runtime."""
    real_node.import_images([image_archive("paramedic")])
    return IMAGE


@pytest.fixture
def app_namespace(kube_client):
    name = f"app-{uuid.uuid4().hex[:6]}"
    kube_client.create(kube.NAMESPACES, {"metadata": {"name": name}})
    yield name
    kube_client.delete(kube.NAMESPACES, name)


def run(*cmd: str, env: dict | None = None, input: str | None = None, timeout: float = 300) -> str:
    out = subprocess.run(list(cmd), capture_output=True, text=True, env=env, input=input, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd[:3])} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out.stdout


SAMPLES = REPO / "manifests" / "samples"


def samples(namespace: str) -> list[dict]:
    """The README's samples, as a user applies them: checkout (Deployment and Service), team
    payments' OnCallSchedule and checkout's MonitoredService. Only what this machine needs
    changes: the image (Paramedic's, which has Python), the node, and shorter intervals."""
    docs = [d for f in ("checkout-deployment.yaml", "oncallschedule.yaml", "monitoredservice.yaml")
            for d in yaml.safe_load_all((SAMPLES / f).read_text()) if d]
    for d in docs:
        d["metadata"]["namespace"] = namespace
        if d["kind"] == "Deployment":
            pod = d["spec"]["template"]["spec"]
            pod.update(devnode.PLACEMENT, terminationGracePeriodSeconds=1)
            for c in pod["containers"]:
                c.update(image=IMAGE, imagePullPolicy="Never")
        if d["kind"] == "MonitoredService":
            d["spec"]["probe"].update(intervalSeconds=2, timeoutSeconds=2)
            d["spec"]["remediation"].update(cooldownSeconds=1, verifySeconds=10)
    return docs


def poster(name: str, url: str, token: str, payload: dict) -> dict:
    """A pod that posts an Alertmanager payload to the receiver's Service, as Alertmanager in the cluster would."""
    script = ("import json,os,sys,urllib.request as u\n"
              "r=u.Request(os.environ['URL'],data=os.environ['BODY'].encode(),method='POST',"
              "headers={'Authorization':'Bearer '+os.environ['TOKEN'],'Content-Type':'application/json'})\n"
              "print(u.urlopen(r,timeout=20).status)\n")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        **devnode.PLACEMENT, "restartPolicy": "Never", "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [{"name": "post", "image": IMAGE, "imagePullPolicy": "Never",
                        "command": ["python", "-c", script],
                        "env": [{"name": "URL", "value": url}, {"name": "TOKEN", "value": token},
                                {"name": "BODY", "value": json.dumps(payload)}]}]}}


def alert_payload(namespace: str, status: str) -> dict:
    """The sample rule's alert (manifests/samples/prometheusrule.yaml: CheckoutDown), as Alertmanager sends it."""
    alert = am_alert("CheckoutDown", starts=STARTS, namespace=namespace, service="checkout", severity="high")
    return am_payload(resolved(alert) if status == "resolved" else alert)


def container_ids(client: kube.KubeClient, namespace: str, app: str) -> set[str]:
    pods = client.list(kube.PODS, namespace, labels={"app": app})
    return {cs["containerID"] for p in pods if not p["metadata"].get("deletionTimestamp")
            for cs in (p.get("status") or {}).get("containerStatuses") or [] if cs.get("ready") and cs.get("containerID")}


def heal_through_the_receiver(client: kube.KubeClient, run_kubectl, app_ns: str, webhook_url: str, token: str) -> None:
    """The shared story: an in-cluster alert → incident → restart → new containers → mitigated → resolved."""
    out = run_kubectl("apply", "-f", "-", input=yaml.safe_dump_all(samples(app_ns)), check=False)
    assert out.returncode == 0, out.stderr
    before = wait_for(lambda: (lambda ids: ids if len(ids) == 2 else None)(container_ids(client, app_ns, "checkout")),
                      120, "checkout's two real containers Ready")
    wait_object(client, kube.MONITORED_SERVICES, "checkout", app_ns, lambda s: s["status"]["health"] == "Healthy", 120,
                "the in-cluster operator probing checkout by its Service name (Healthy)")

    client.create(kube.PODS, poster("fire", webhook_url, token, alert_payload(app_ns, "firing")), app_ns)
    wait_object(client, kube.PODS, "fire", app_ns, lambda p: p["status"]["phase"] == "Succeeded", 120,
                "the in-cluster alert post to succeed")
    assert run_kubectl("logs", "-n", app_ns, "fire").stdout.strip() == "200"
    # Exactly one incident records the alert. The probe may open another when it finds checkout
    # slow or failing on this loaded machine (CI once listed two incidents here); had the probe's
    # come first, the alert would have joined it.
    holding = wait_for(lambda: [i for i in client.list(kube.INCIDENTS, app_ns)
                                if (i.get("status") or {}).get("alerts")], 60, "the incident recording the alert")
    assert len(holding) == 1, [(i["metadata"]["name"], i["spec"].get("source"))
                               for i in client.list(kube.INCIDENTS, app_ns)]
    [inc] = holding
    name = inc["metadata"]["name"]
    assert inc["spec"]["managed"] is True and inc["status"]["alerts"][0]["alertname"] == "CheckoutDown"

    wait_object(client, kube.DEPLOYMENTS, "checkout", app_ns,
                lambda d: d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"], 120,
                "the rollout restart")
    after = wait_for(lambda: (lambda ids: ids if len(ids) == 2 and not ids & before else None)(
        container_ids(client, app_ns, "checkout")), 120, "two new containers Ready after the restart")
    assert after.isdisjoint(before)
    wait_object(client, kube.INCIDENTS, name, app_ns, lambda i: i["spec"]["state"] == "mitigated", 120,
                "the incident mitigated")

    client.create(kube.PODS, poster("resolve", webhook_url, token, alert_payload(app_ns, "resolved")), app_ns)
    wait_object(client, kube.INCIDENTS, name, app_ns, lambda i: i["spec"]["state"] == "resolved", 120,
                "the incident resolved by the in-cluster resolved alert")


def assert_pods_ready_and_locked_down(client: kube.KubeClient, namespace: str) -> None:
    pods = [p for p in client.list(kube.PODS, namespace) if not p["metadata"].get("deletionTimestamp")]
    assert {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods} >= {"operator", "webhook",
                                                                                       "console"}
    for pod in pods:
        assert pod["spec"]["nodeName"] == devnode.NODE_NAME, pod["metadata"]["name"]
        [cs] = pod["status"]["containerStatuses"]
        assert cs["ready"] and "running" in cs["state"], (pod["metadata"]["name"], cs)
        [c] = pod["spec"]["containers"]
        sc = {**(pod["spec"].get("securityContext") or {}), **(c.get("securityContext") or {})}
        assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
        assert c.get("readinessProbe") or c.get("livenessProbe")


def test_helm_install_runs_on_the_real_node_and_heals_a_real_deployment(image, kubeconfig, kube_client,
                                                                       app_namespace, run_kubectl, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    release, release_ns = f"pm{suffix}", f"pm-{suffix}"  # a release of its own: its cluster-scoped names too
    token = secrets.token_hex(16)
    env = {**os.environ, "HELM_CACHE_HOME": str(tmp_path / "c"), "HELM_CONFIG_HOME": str(tmp_path / "g"),
           "HELM_DATA_HOME": str(tmp_path / "d")}
    placement = json.dumps(devnode.PLACEMENT["tolerations"])
    selector = json.dumps(devnode.PLACEMENT["nodeSelector"])
    helm = [str(tools_bin() / "helm"), "--kubeconfig", str(kubeconfig)]
    run(*helm, "install", release, str(CHART), "--namespace", release_ns, "--create-namespace",
        "--set", f"image.repository={REPO_NAME}", "--set", f"image.tag={TAG}", "--set", "image.pullPolicy=Never",
        "--set", "allNamespaces=false", "--set", f"watchNamespaces={{{app_namespace}}}",
        "--set", f"webhook.token={token}", "--set", "webhook.replicas=1",
        "--set", f"webhook.tokenNamespaces={{{app_namespace}}}",  # the token may write the app's namespace
        # The chart refuses private addresses to probes: the admin allows the Service CIDR, where
        # checkout's ClusterIP lives (the README's in-cluster probing step).
        "--set", f"operator.probeAllowCIDRs={{{devnode.SERVICE_CIDR}}}",
        "--set", "webhook.tokenRemediate=true",  # ...and its alerts may trigger remediation (off by default)
        "--set-json", f"operator.tolerations={placement}", "--set-json", f"operator.nodeSelector={selector}",
        "--set-json", f"webhook.tolerations={placement}", "--set-json", f"webhook.nodeSelector={selector}",
        "--set-json", f"console.tolerations={placement}", "--set-json", f"console.nodeSelector={selector}",
        "--wait", "--timeout", "4m", env=env)
    try:
        assert_pods_ready_and_locked_down(kube_client, release_ns)
        # Its only credentials are its ServiceAccount's: no kubeconfig in the pod. Every status the
        # story below waits for is written with them.
        ops = kube_client.list(kube.PODS, release_ns, labels={"app.kubernetes.io/component": "operator"})
        assert len(ops) == 2  # the chart's default: two replicas sharing the work
        for op in ops:
            assert op["spec"]["serviceAccountName"] == f"{release}-paramedic-operator"
            names = {e["name"] for c in op["spec"]["containers"] for e in c.get("env") or []}
            assert not names & {"KUBECONFIG", "PARAMEDIC_KUBECONFIG"}, names
        heal_through_the_receiver(kube_client, run_kubectl, app_namespace,
                                  f"http://{release}-paramedic-webhook.{release_ns}.svc:8080/api/v1/alertmanager", token)
    finally:
        out = uninstall_release(helm, env, kubeconfig, release, release_ns)
        assert out.returncode == 0, out.stderr
        kube_client.delete(kube.NAMESPACES, release_ns)


def test_kubectl_apply_k_runs_on_the_real_node_and_heals_a_real_deployment(image, kubeconfig, kube_client,
                                                                           app_namespace, run_kubectl, tmp_path):
    """manifests/ as a user installs it: an overlay sets the image and the node, nothing else but
    the watched namespace (so this operator leaves the other tests' namespaces alone) and the
    probes' allowlist (the Service CIDR, as the README tells admins)."""
    token = secrets.token_hex(16)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    patch = [{"op": "add", "path": "/spec/template/spec/tolerations", "value": devnode.PLACEMENT["tolerations"]},
             {"op": "add", "path": "/spec/template/spec/nodeSelector", "value": devnode.PLACEMENT["nodeSelector"]}]
    # The token may write the app's namespace (by default, only paramedic's own).
    scope = [{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
              "value": {"name": "PARAMEDIC_WEBHOOK_TOKEN_NAMESPACES", "value": app_namespace}},
             # ...and its alerts may trigger remediation (config.yaml says "false" by default).
             {"op": "add", "path": "/spec/template/spec/containers/0/env/-",
              "value": {"name": "PARAMEDIC_WEBHOOK_TOKEN_REMEDIATE", "value": "true"}}]
    args = [{"op": "replace", "path": "/spec/template/spec/containers/0/args",
             "value": ["paramedic-operator", f"--namespace={app_namespace}"]}]
    # manifests/ refuses private addresses to probes: the admin allows the Service CIDR (checkout's ClusterIP).
    probes = [{"op": "add", "path": "/spec/template/spec/containers/0/env/-",
               "value": {"name": "PARAMEDIC_PROBE_ALLOW_CIDRS", "value": devnode.SERVICE_CIDR}}]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(REPO / "manifests", overlay)],
        "images": [{"name": "paramedic", "newName": REPO_NAME, "newTag": TAG}],
        "patches": [{"target": {"kind": "Deployment", "name": "paramedic-operator"},
                     "patch": json.dumps(patch + args + probes)},
                    {"target": {"kind": "Deployment", "name": "paramedic-webhook"},
                     "patch": json.dumps(patch + scope)},
                    {"target": {"kind": "Deployment", "name": "paramedic-console"}, "patch": json.dumps(patch)}]}))
    kubectl = [str(tools_bin() / "kubectl"), "--kubeconfig", str(kubeconfig)]
    run(*kubectl, "apply", "-f", str(REPO / "manifests" / "namespace.yaml"))
    run(*kubectl, "-n", "paramedic", "create", "secret", "generic", "paramedic-webhook-token",
        f"--from-literal=token={token}")
    run(*kubectl, "-n", "paramedic", "create", "secret", "generic", "paramedic-console",
        f"--from-literal=session-key={secrets.token_hex(32)}")
    try:
        run(*kubectl, "apply", "--server-side", "--force-conflicts", "-k", str(overlay))
        # Deployments roll out with pullPolicy IfNotPresent from the node's runtime: no registry.
        for dep in ("paramedic-operator", "paramedic-webhook", "paramedic-console"):
            run(*kubectl, "-n", "paramedic", "rollout", "status", f"deploy/{dep}", "--timeout=240s")
        assert_pods_ready_and_locked_down(kube_client, "paramedic")
        heal_through_the_receiver(kube_client, run_kubectl, app_namespace,
                                  "http://paramedic-webhook.paramedic.svc:8080/api/v1/alertmanager", token)
    finally:
        for kind in ("deployment/paramedic-operator", "deployment/paramedic-webhook", "deployment/paramedic-console"):
            subprocess.run([*kubectl, "-n", "paramedic", "delete", kind, "--wait=true", "--timeout=60s"],
                           capture_output=True)
        # The admission policies are cluster-wide: later tests of the session must not meet them.
        for policies in ("admission-policy.yaml", "playbook-vars-policy.yaml"):
            subprocess.run([*kubectl, "delete", "--ignore-not-found", "-f", str(REPO / "manifests" / policies)],
                           capture_output=True)
        for ns in ("paramedic", "paramedic-console-sessions"):  # both of manifests/namespace.yaml
            kube_client.delete(kube.NAMESPACES, ns)
        for ns in ("paramedic", "paramedic-console-sessions"):
            wait_for(lambda ns=ns: kube_client.get_or_none(kube.NAMESPACES, ns) is None, 120, f"namespace {ns} gone")
