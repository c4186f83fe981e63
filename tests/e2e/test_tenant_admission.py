"""Authority at admission (issue #16): a tenant can make Paramedic act only as far as it could itself.

The admission policy of manifests/admission-policy.yaml runs in the real API server and
asks its authorizer about the request's own user. Every attack is made with a tenant's
own token (tests/tenancy.py); rights are added with `tenant.grant`, so RBAC decides.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from devtools.cluster import REPO
from devtools.wait import wait_for
from paramedic import kube
from tests.tenancy import ROLE_BINDINGS, ROLES, Tenant, make_tenant

pytestmark = pytest.mark.e2e

POLICY = REPO / "manifests" / "admission-policy.yaml"
RBAC = REPO / "manifests" / "rbac.yaml"
POLICIES = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                         "ValidatingAdmissionPolicy", namespaced=False)
BINDINGS = kube.Resource("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
                         "ValidatingAdmissionPolicyBinding", namespaced=False)
CLUSTER_ROLES = kube.Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
SERVICE_ACCOUNTS = kube.Resource("", "v1", "serviceaccounts", "ServiceAccount")

ACTIONS: dict[str, dict[str, Any]] = {
    "restart": {"restart": {}},
    "rollback": {"rollback": {}},
    "ansible": {"ansible": {"playbook": "restart-deployment.yml"}},
    "scale": {"scale": {"replicas": 3}},
}
PATCH_DEPLOYMENTS = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]}]
SCALE_DEPLOYMENTS = [{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["update"]}]
REMEDIATE = [{"apiGroups": ["paramedic.dev"], "resources": ["monitoredservices"], "verbs": ["remediate"]}]


def docs(path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def service(name: str, actions: list[dict], target: dict | None = None) -> dict:
    return {"metadata": {"name": name},
            "spec": {"target": target or {"name": "api"}, "remediation": {"actions": actions}}}


def incident(name: str, service_name: str = "api", **spec: Any) -> dict:
    return {"metadata": {"name": name}, "spec": {"service": service_name, "title": "checkout is down", **spec}}


def dry_run_create(client: kube.KubeClient, res: kube.Resource, body: dict, namespace: str) -> dict:
    body = {"apiVersion": res.api_version, "kind": res.kind, **body}
    return client.request("POST", res.path(namespace), body, params={"dryRun": "All"})


def refusal(call: Callable[[], Any]) -> kube.ApiError:
    with pytest.raises(kube.ApiError) as err:
        call()
    return err.value


def eventually_accepted(call: Callable[[], Any], what: str) -> Any:
    """RBAC changes reach the authorizer through a watch: retry until the request passes."""
    def attempt() -> Any:
        try:
            return call() or True
        except kube.ApiError as exc:
            if exc.status != 403:
                raise
            return None
    return wait_for(attempt, 30, what)


def refused_by_policy(probe: Tenant) -> bool:
    client = probe.client()
    try:
        dry_run_create(client, kube.MONITORED_SERVICES, service("probe", [ACTIONS["restart"]]), probe.namespace)
    except kube.ApiError as exc:
        return exc.status == 403 and "which the restart action needs" in exc.message
    finally:
        client.close()
    return False


@pytest.fixture(scope="module")
def admission_policy(kube_client, kubeconfig, run_kubectl_module):
    """The shipped policy, installed from manifests/ and active (a known-refused request is refused)."""
    run_kubectl_module("apply", "--server-side", "--force-conflicts", "-f", str(POLICY))
    remediate_role = next(d for d in docs(RBAC) if d["metadata"]["name"] == "paramedic-remediate")
    run_kubectl_module("apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(remediate_role))
    probe = make_tenant(kube_client, kubeconfig, "probe")
    try:
        wait_for(lambda: refused_by_policy(probe), 60, "the admission policy to become active")
        yield
    finally:
        run_kubectl_module("delete", "--ignore-not-found", "-f", str(POLICY))
        # Other suites must not meet it: wait until the same request passes again.
        wait_for(lambda: not refused_by_policy(probe), 60, "the admission policy to be gone")
        kube_client.delete(kube.NAMESPACES, probe.namespace)


@pytest.fixture(scope="module")
def run_kubectl_module(kubeconfig):
    from tests.conftest import kubectl

    def run(*args: str, check: bool = True, input: str | None = None):
        return kubectl(kubeconfig, *args, check=check, input=input)
    return run


@pytest.fixture
def tenant_a(tenants, admission_policy):
    a, _ = tenants
    client = a.client()
    yield a, client
    client.close()


def message(user: str, verb: str, what: str, namespace: str, action: str, name: str = "api") -> str:
    return f'user {user} may not {verb} {what} "{name}" in {namespace}, which the {action} action needs'


# --- MonitoredService: the author's rights on the target --------------------------------

@pytest.mark.parametrize("action", ["restart", "rollback", "ansible", "scale"])
def test_action_is_refused_without_the_right_and_names_it(tenant_a, kube_client, action):
    a, client = tenant_a
    err = refusal(lambda: client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS[action]]), a.namespace))
    assert err.status == 403
    if action == "scale":
        assert message(a.username, "update", "deployments.apps/scale", a.namespace, "scale") in err.message
    else:
        assert message(a.username, "patch", "deployments.apps", a.namespace, action) in err.message
    assert kube_client.list(kube.MONITORED_SERVICES, a.namespace) == []

    # The very right the message names makes it pass.
    a.grant(kube_client, "workload-writer", SCALE_DEPLOYMENTS if action == "scale" else PATCH_DEPLOYMENTS)
    eventually_accepted(lambda: client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS[action]]),
                                              a.namespace), f"{action} accepted once granted")
    assert kube_client.get(kube.MONITORED_SERVICES, "api", a.namespace)["spec"]["remediation"]["actions"] == \
        [ACTIONS[action]]


def test_each_action_needs_its_own_right_and_the_targets_kind(tenant_a, kube_client):
    a, client = tenant_a
    a.grant(kube_client, "patcher", PATCH_DEPLOYMENTS)
    eventually_accepted(lambda: dry_run_create(client, kube.MONITORED_SERVICES, service("probe", [ACTIONS["restart"]]),
                                               a.namespace), "patch on deployments granted")
    # patch does not give scale: the first action lacking a right is named.
    err = refusal(lambda: client.create(kube.MONITORED_SERVICES,
                                        service("api", [ACTIONS["restart"], ACTIONS["scale"]]), a.namespace))
    assert message(a.username, "update", "deployments.apps/scale", a.namespace, "scale") in err.message
    # Rights on Deployments say nothing about a StatefulSet or a DaemonSet of the same name.
    for kind, plural in (("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")):
        body = service("api", [ACTIONS["restart"]], target={"kind": kind, "name": "api"})
        err = refusal(lambda b=body: client.create(kube.MONITORED_SERVICES, b, a.namespace))
        assert message(a.username, "patch", f"{plural}.apps", a.namespace, "restart") in err.message
    # A right limited to one workload by name covers that one only.
    kube_client.delete(ROLE_BINDINGS, "patcher", a.namespace)
    a.grant(kube_client, "one-workload", [{"apiGroups": ["apps"], "resources": ["deployments"],
                                           "resourceNames": ["api"], "verbs": ["patch"]}])
    wait_for(lambda: refusal_or_none(lambda: dry_run_create(client, kube.MONITORED_SERVICES,
             service("other", [ACTIONS["restart"]], target={"name": "other"}), a.namespace)), 30,
             "the broad grant to be withdrawn")
    eventually_accepted(lambda: client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS["restart"]]),
                                              a.namespace), "restart of the named workload")
    err = refusal(lambda: client.create(kube.MONITORED_SERVICES, service("other", [ACTIONS["restart"]],
                                        target={"name": "other"}), a.namespace))
    assert message(a.username, "patch", "deployments.apps", a.namespace, "restart", name="other") in err.message


def refusal_or_none(call: Callable[[], Any]) -> kube.ApiError | None:
    try:
        call()
    except kube.ApiError as exc:
        return exc if exc.status == 403 else None
    return None


def test_a_service_without_actions_needs_no_workload_right(tenant_a, kube_client):
    a, client = tenant_a
    client.create(kube.MONITORED_SERVICES, {"metadata": {"name": "watch-only"}, "spec": {"target": {"name": "api"}}},
                  a.namespace)
    client.create(kube.MONITORED_SERVICES, service("empty", []), a.namespace)
    assert {s["metadata"]["name"] for s in kube_client.list(kube.MONITORED_SERVICES, a.namespace)} == \
        {"watch-only", "empty"}


def test_changing_the_spec_is_checked_like_a_creation(tenant_a, kube_client):
    a, client = tenant_a
    client.create(kube.MONITORED_SERVICES, service("api", []), a.namespace)
    err = refusal(lambda: client.patch(kube.MONITORED_SERVICES, "api",
                                       {"spec": {"remediation": {"actions": [ACTIONS["restart"]]}}}, a.namespace))
    assert err.status == 403 and "which the restart action needs" in err.message
    # Without actions, the target may change freely: nothing would be done to it.
    client.patch(kube.MONITORED_SERVICES, "api", {"spec": {"target": {"name": "db"}}}, a.namespace)
    assert kube_client.get(kube.MONITORED_SERVICES, "api", a.namespace)["spec"]["remediation"]["actions"] == []


def test_tenant_cannot_aim_at_another_namespace(tenants, admission_policy, kube_client):
    a, b = tenants
    client = a.client()
    try:
        # Not in B's namespace: RBAC refuses before any policy runs.
        err = refusal(lambda: client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS["restart"]]), b.namespace))
        assert err.status == 403 and "cannot create resource" in err.message
        # A right to patch B's workloads does not let A's service act there: the target has
        # no namespace (the CRD prunes one), so it is always the service's own namespace.
        kube_client.create(ROLES, {"metadata": {"name": "a-patches-b"}, "rules": PATCH_DEPLOYMENTS}, namespace=b.namespace)
        kube_client.create(ROLE_BINDINGS, {"metadata": {"name": "a-patches-b"}, "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "a-patches-b"},
            "subjects": [{"kind": "ServiceAccount", "name": a.service_account, "namespace": a.namespace}]},
            namespace=b.namespace)
        wait_for(lambda: client.request("POST", kube.SELF_SUBJECT_ACCESS_REVIEWS.path(None), {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": {
                "group": "apps", "resource": "deployments", "verb": "patch", "namespace": b.namespace,
                "name": "api"}}})["status"].get("allowed"), 30, "A may patch B's deployments")
        aimed = service("api", [ACTIONS["restart"]], target={"name": "api", "namespace": b.namespace})
        err = refusal(lambda: client.create(kube.MONITORED_SERVICES, aimed, a.namespace))
        assert message(a.username, "patch", "deployments.apps", a.namespace, "restart") in err.message
        a.grant(kube_client, "patcher", PATCH_DEPLOYMENTS)
        eventually_accepted(lambda: client.create(kube.MONITORED_SERVICES, aimed, a.namespace), "restart in A")
        stored = kube_client.get(kube.MONITORED_SERVICES, "api", a.namespace)
        assert stored["spec"]["target"] == {"kind": "Deployment", "name": "api"}
        assert kube_client.list(kube.MONITORED_SERVICES, b.namespace) == []
    finally:
        client.close()


def test_metadata_writes_are_never_checked_and_status_is_paramedics_alone(tenant_a, kube_client):
    """People and tools write labels and annotations; only Paramedic writes status (issue 24)."""
    a, client = tenant_a
    # Created by an admin, who may restart the workload.
    kube_client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS["restart"], ACTIONS["scale"]]), a.namespace)
    # A has no right on the workload, yet may pause the service (an annotation) and label it.
    client.patch(kube.MONITORED_SERVICES, "api", {"metadata": {"annotations": {"paramedic.dev/paused": "true"},
                                                               "labels": {"tier": "web"}}}, a.namespace)
    a.grant(kube_client, "status-writer", [{"apiGroups": ["paramedic.dev"], "verbs": ["patch"],
                                             "resources": ["monitoredservices/status", "incidents/status"]}])
    # RBAC lets A write status now; the policy does not.
    err = eventually_refused_by_policy(lambda: client.patch(kube.MONITORED_SERVICES, "api", {"status": {
        "health": "Down"}}, a.namespace, subresource="status"))
    assert STATUS_REFUSED.format(kind="monitoredservices", user=a.username) in err.message
    # ... and changing what the service does is A's own act, and A may not.
    err = refusal(lambda: client.patch(kube.MONITORED_SERVICES, "api", {"spec": {"team": "web"}}, a.namespace))
    assert "which the restart action needs" in err.message
    stored = kube_client.get(kube.MONITORED_SERVICES, "api", a.namespace)
    assert "health" not in (stored.get("status") or {}) and stored["metadata"]["labels"] == {"tier": "web"}
    assert "team" not in stored["spec"]


# --- Status: Paramedic's record, written by Paramedic alone (issue 24) ----------------------

BREAK_GLASS = "paramedic:break-glass"
STATUS_REFUSED = ("the status of {kind}.paramedic.dev is written by Paramedic alone: user {user} may not write it "
                  "(a repair by hand: act in the group paramedic:break-glass)")
PARAMEDIC_NS = "paramedic"


def eventually_refused_by_policy(call: Callable[[], Any]) -> kube.ApiError:
    """RBAC grants reach the authorizer through a watch: until then RBAC refuses; then the policy does."""
    def attempt() -> kube.ApiError | None:
        try:
            call()
        except kube.ApiError as exc:
            return exc if exc.status == 403 and "ValidatingAdmissionPolicy" in exc.message else None
        raise AssertionError("the write passed")
    return wait_for(attempt, 30, "a refusal by the admission policy")


def acting_as(admin: kube.KubeClient, user: str, *groups: str) -> kube.KubeClient:
    """The admin's connection, impersonating `user` in `groups` (and system:masters, for RBAC)."""
    client = kube.KubeClient(admin.conn)
    client._http.headers = httpx.Headers([("Impersonate-User", user)]
                                         + [("Impersonate-Group", g) for g in ("system:masters", *groups)])
    return client


def test_a_tenant_with_every_paramedic_right_cannot_write_any_status(tenant_a, kube_client):
    """`resources: ["*"]` in paramedic.dev includes every status subresource: RBAC allows, the policy refuses."""
    a, client = tenant_a
    a.grant(kube_client, "everything", [{"apiGroups": ["paramedic.dev"], "resources": ["*"], "verbs": ["*"]}])
    kube_client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS["restart"]]), a.namespace)
    kube_client.create(kube.ONCALL_SCHEDULES, {"metadata": {"name": "shop"}, "spec": {
        "participants": [{"name": "Ana", "email": "ana@example.com"}],
        "rotation": {"start": "2026-01-01T00:00:00Z", "lengthHours": 24}}}, a.namespace)
    client.create(kube.INCIDENTS, incident("inc-1", managed=False), a.namespace)
    forged_attempt = {"remediation": {"attempts": [{"id": "inc-1-a1", "index": 1, "action": "scale",
                                                     "result": "Running"}]}}
    for res, name, body in ((kube.INCIDENTS, "inc-1", forged_attempt),
                            (kube.MONITORED_SERVICES, "api", {"health": "Down"}),
                            (kube.ONCALL_SCHEDULES, "shop", {"onCall": "mallory@example.com"})):
        err = eventually_refused_by_policy(lambda r=res, n=name, b=body: client.patch(
            r, n, {"status": b}, a.namespace, subresource="status"))
        assert err.status == 403 and STATUS_REFUSED.format(kind=res.plural, user=a.username) in err.message
        # Not with a JSON patch or a whole replacement either.
        err = refusal(lambda r=res, n=name: client.patch(r, n, [{"op": "add", "path": "/status", "value": {}}],
                                                         a.namespace, subresource="status",
                                                         content_type=kube.JSON_PATCH))
        assert "written by Paramedic alone" in err.message
    assert not (kube_client.get(kube.INCIDENTS, "inc-1", a.namespace).get("status") or {}).get("remediation")
    # A cluster admin is no exception (RBAC does not hold system:masters back; admission does)...
    err = refusal(lambda: kube_client.patch(kube.INCIDENTS, "inc-1", {"status": forged_attempt}, a.namespace,
                                            subresource="status"))
    assert STATUS_REFUSED.format(kind="incidents", user="admin") in err.message
    # ... until they act in the break-glass group, to repair a record by hand.
    glass = acting_as(kube_client, "admin", BREAK_GLASS)
    try:
        glass.patch(kube.INCIDENTS, "inc-1", {"status": {"team": "repaired"}}, a.namespace, subresource="status")
    finally:
        glass.close()
    assert kube_client.get(kube.INCIDENTS, "inc-1", a.namespace)["status"]["team"] == "repaired"


def test_paramedics_own_service_accounts_write_status_and_name_themselves(tenants, admission_policy, kube_client):
    """The exemptions name Paramedic's ServiceAccounts in Paramedic's namespace (paramedic, as the
    manifests install it): its operator writes status and moves an incident in its own name."""
    a, _ = tenants
    made_namespace = kube_client.get_or_none(kube.NAMESPACES, PARAMEDIC_NS) is None
    if made_namespace:
        kube_client.create(kube.NAMESPACES, {"metadata": {"name": PARAMEDIC_NS}})
    binding = f"paramedic-operator-{uuid.uuid4().hex[:6]}"
    try:
        if kube_client.get_or_none(SERVICE_ACCOUNTS, "paramedic-operator", PARAMEDIC_NS) is None:
            kube_client.create(SERVICE_ACCOUNTS, {"metadata": {"name": "paramedic-operator"}}, PARAMEDIC_NS)
        kube_client.create(ROLES, {"metadata": {"name": binding}, "rules": [
            {"apiGroups": ["paramedic.dev"], "resources": ["incidents", "incidents/status"],
             "verbs": ["get", "patch"]}]}, namespace=a.namespace)
        kube_client.create(ROLE_BINDINGS, {"metadata": {"name": binding}, "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": binding},
            "subjects": [{"kind": "ServiceAccount", "name": "paramedic-operator", "namespace": PARAMEDIC_NS}]},
            namespace=a.namespace)
        kube_client.create(kube.INCIDENTS, incident("inc-1", managed=False), a.namespace)
        operator = Tenant(a.namespace, "paramedic-operator", _token(kube_client, PARAMEDIC_NS, "paramedic-operator"),
                          a.host, a.verify).client()
        try:
            eventually_accepted(lambda: operator.patch(kube.INCIDENTS, "inc-1", {"status": {"team": "shop"}},
                                                       a.namespace, subresource="status"), "the operator's status")
            operator.patch(kube.INCIDENTS, "inc-1", {"metadata": {"annotations": {
                "paramedic.dev/actor": "paramedic/remediation"}}, "spec": {"state": "mitigated"}}, a.namespace)
        finally:
            operator.close()
        stored = kube_client.get(kube.INCIDENTS, "inc-1", a.namespace)
        assert stored["status"]["team"] == "shop" and stored["spec"]["state"] == "mitigated"
        assert stored["metadata"]["annotations"]["paramedic.dev/actor"] == "paramedic/remediation"
    finally:
        if made_namespace:
            kube_client.delete(kube.NAMESPACES, PARAMEDIC_NS)


# --- The timeline's truth: who, and when (issue 24) ---------------------------------------

def test_a_tenant_cannot_name_someone_else_as_the_actor(tenant_a, kube_client):
    a, client = tenant_a
    kube_client.create(kube.INCIDENTS, incident("who", managed=False), a.namespace)
    for actor in ("alice@example.com", "paramedic/remediation", "admin"):
        err = refusal(lambda who=actor: client.patch(kube.INCIDENTS, "who", {
            "metadata": {"annotations": {"paramedic.dev/actor": who}}, "spec": {"state": "acknowledged"}},
            a.namespace))
        assert err.status == 403
        assert (f"annotation paramedic.dev/actor says who made this change: it must be your own user name "
                f"({a.username}) or be left out, not {actor}") in err.message
    # Setting it alone, without a move, is no way round either.
    err = refusal(lambda: client.patch(kube.INCIDENTS, "who", {"metadata": {"annotations": {
        "paramedic.dev/actor": "alice@example.com"}}}, a.namespace))
    assert "must be your own user name" in err.message
    # Their own name passes: the way `kubectl paramedic` and the console write it.
    client.patch(kube.INCIDENTS, "who", {"metadata": {"annotations": {"paramedic.dev/actor": a.username}},
                                         "spec": {"state": "acknowledged"}}, a.namespace)
    # Alice moves it on (impersonated: her own name is hers to write).
    alice = acting_as(kube_client, "alice@example.com")
    try:
        alice.patch(kube.INCIDENTS, "who", {"metadata": {"annotations": {"paramedic.dev/actor": "alice@example.com"}},
                                            "spec": {"state": "investigating"}}, a.namespace)
    finally:
        alice.close()
    # A move by plain kubectl that leaves her name there would read as hers: refused, saying how.
    err = refusal(lambda: client.patch(kube.INCIDENTS, "who", {"spec": {"assignee": "bob@example.com"}}, a.namespace))
    assert "not alice@example.com (left from an earlier change: set it or remove it)" in err.message
    client.patch(kube.INCIDENTS, "who", {"metadata": {"annotations": {"paramedic.dev/actor": None}},
                                         "spec": {"assignee": "bob@example.com"}}, a.namespace)
    # Writes the timeline does not attribute (a label) leave an earlier actor alone.
    client.patch(kube.INCIDENTS, "who", {"metadata": {"labels": {"team": "web"}}}, a.namespace)
    stored = kube_client.get(kube.INCIDENTS, "who", a.namespace)
    assert stored["spec"]["assignee"] == "bob@example.com"
    assert "paramedic.dev/actor" not in (stored["metadata"].get("annotations") or {})
    # Created in someone else's name: refused as well.
    err = refusal(lambda: client.create(kube.INCIDENTS, {**incident("forged", managed=False), "metadata": {
        "name": "forged", "annotations": {"paramedic.dev/actor": "alice@example.com"}}}, a.namespace))
    assert "must be your own user name" in err.message


def test_the_time_a_state_was_set_cannot_be_moved_back(tenant_a, kube_client):
    """The operator takes it from metadata.managedFields, which a client may send: a request
    that would lower the time of the entry owning spec.state is refused."""
    a, client = tenant_a
    client.create(kube.INCIDENTS, incident("when", managed=False), a.namespace)
    time.sleep(2)  # managedFields keep whole seconds: acknowledged in a later one than the creation
    acked = client.request("PATCH", kube.INCIDENTS.path(a.namespace, "when"), {"spec": {"state": "acknowledged"}},
                           kube.MERGE, params={"fieldManager": "acker"})
    owner = next(e for e in acked["metadata"]["managedFields"] if e["manager"] == "acker")
    assert "f:state" in owner["fieldsV1"]["f:spec"]
    backdated = [{**e, "time": acked["metadata"]["creationTimestamp"]} if e["manager"] == "acker" else e
                 for e in acked["metadata"]["managedFields"]]
    moved = [e if e["manager"] != "acker" else {**e, "fieldsV1": {"f:spec": {}}} for e in backdated]
    moved.append({**owner, "manager": "someone-earlier", "time": acked["metadata"]["creationTimestamp"]})
    for forged in (backdated, moved, [{}]):  # lowered, handed to an older entry, cleared
        err = refusal(lambda f=forged: client.patch(kube.INCIDENTS, "when", {"metadata": {"managedFields": f}},
                                                    a.namespace))
        assert err.status == 403 and "may not move back the time the state was set" in err.message
    after = kube_client.get(kube.INCIDENTS, "when", a.namespace)
    assert next(e for e in after["metadata"]["managedFields"] if e["manager"] == "acker")["time"] == owner["time"]
    # The writer's own word on it is only an annotation now: allowed, and read by no one.
    client.patch(kube.INCIDENTS, "when", {"metadata": {"annotations": {
        "paramedic.dev/state-changed-at": f"acknowledged {acked['metadata']['creationTimestamp']}"}}}, a.namespace)


# --- Incidents: asking for remediation ---------------------------------------------------

def test_managed_incident_needs_remediate_on_its_service(tenant_a, kube_client):
    a, client = tenant_a
    kube_client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS["restart"]]), a.namespace)
    err = refusal(lambda: client.create(kube.INCIDENTS, incident("inc-1"), a.namespace))  # managed by default
    assert err.status == 403
    assert (f'user {a.username} may not remediate monitoredservices.paramedic.dev "api" in {a.namespace}, '
            "which a managed incident needs") in err.message
    # Recorded without remediation: allowed, and it cannot be switched to managed later.
    client.create(kube.INCIDENTS, incident("inc-1", managed=False), a.namespace)
    err = refusal(lambda: client.patch(kube.INCIDENTS, "inc-1", {"spec": {"managed": True}}, a.namespace))
    assert "may not remediate" in err.message
    # Ordinary incident work stays possible on a managed incident someone else opened.
    kube_client.create(kube.INCIDENTS, incident("inc-2"), a.namespace)
    client.patch(kube.INCIDENTS, "inc-2", {"spec": {"state": "acknowledged", "assignee": "dev@example.com"}},
                 a.namespace)
    assert {i["metadata"]["name"]: i["spec"]["managed"] for i in kube_client.list(kube.INCIDENTS, a.namespace)} == \
        {"inc-1": False, "inc-2": True}
    # The right the message names, limited to one service, makes it pass.
    a.grant(kube_client, "remediator", [{**REMEDIATE[0], "resourceNames": ["api"]}])
    eventually_accepted(lambda: client.create(kube.INCIDENTS, incident("inc-3"), a.namespace), "remediate granted")
    err = refusal(lambda: client.create(kube.INCIDENTS, incident("inc-4", "db"), a.namespace))
    assert 'remediate monitoredservices.paramedic.dev "db"' in err.message


def test_namespace_editors_keep_working(tenant_a, kube_client):
    """Single-team set-ups: whoever holds the built-in `edit` role may already patch and scale."""
    a, client = tenant_a
    kube_client.create(ROLE_BINDINGS, {"metadata": {"name": "editor"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": a.service_account, "namespace": a.namespace}]},
        namespace=a.namespace)
    eventually_accepted(lambda: client.create(kube.MONITORED_SERVICES, service(
        "api", [ACTIONS[k] for k in ("restart", "rollback", "ansible", "scale")]), a.namespace), "edit: every action")
    # paramedic-remediate is aggregated into `edit` by the cluster's aggregation controller.
    eventually_accepted(lambda: client.create(kube.INCIDENTS, incident("inc-1"), a.namespace),
                        "edit: a managed incident")


def test_paramedics_own_service_accounts_pass(tenants, admission_policy, kube_client):
    """The receiver opens managed incidents and the operator probe incidents, under their shipped roles."""
    a, _ = tenants
    kube_client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS["restart"]]), a.namespace)
    roles = {d["metadata"]["name"]: d for d in docs(RBAC) if d["kind"] == "ClusterRole"}
    suffix = uuid.uuid4().hex[:6]
    created = []
    try:
        for component in ("webhook", "operator"):
            role = {**roles[f"paramedic-{component}"], "metadata": {"name": f"paramedic-{component}-{suffix}"}}
            kube_client.create(CLUSTER_ROLES, role)
            created.append(role["metadata"]["name"])
            kube_client.create(SERVICE_ACCOUNTS, {"metadata": {"name": component}}, a.namespace)
            kube_client.create(ROLE_BINDINGS, {"metadata": {"name": component}, "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role["metadata"]["name"]},
                "subjects": [{"kind": "ServiceAccount", "name": component, "namespace": a.namespace}]},
                namespace=a.namespace)
            identity = Tenant(a.namespace, component, _token(kube_client, a.namespace, component), a.host, a.verify)
            client = identity.client()
            try:
                eventually_accepted(lambda c=client, n=component: c.create(kube.INCIDENTS, incident(f"by-{n}"),
                                                                            a.namespace), f"{component} incident")
            finally:
                client.close()
        assert all(i["spec"]["managed"] for i in kube_client.list(kube.INCIDENTS, a.namespace))
    finally:
        for name in created:
            kube_client.delete(CLUSTER_ROLES, name)


def _token(admin: kube.KubeClient, namespace: str, service_account: str) -> str:
    out = admin.request("POST", SERVICE_ACCOUNTS.path(namespace, service_account, "token"), {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 600}})
    return out["status"]["token"]


def test_cluster_admins_are_not_limited(tenant_a, kube_client):
    a, _ = tenant_a
    kube_client.create(kube.MONITORED_SERVICES, service("api", [ACTIONS[k] for k in ACTIONS]), a.namespace)
    kube_client.create(kube.INCIDENTS, incident("inc-1"), a.namespace)
    assert kube_client.get(kube.INCIDENTS, "inc-1", a.namespace)["spec"]["managed"] is True


# --- Evidence logs and people's entries ----------------------------------------------------

def test_evidence_logs_need_the_authors_right_to_read_logs(tenant_a, kube_client):
    a, client = tenant_a
    body = {"metadata": {"name": "logs"},
            "spec": {"target": {"name": "api"}, "evidence": {"logs": {"enabled": True, "tailLines": 20}}}}
    err = refusal(lambda: client.create(kube.MONITORED_SERVICES, body, a.namespace))
    assert err.status == 403
    assert f"user {a.username} may not get pods/log in {a.namespace}, which spec.evidence.logs needs" in err.message
    off = {"metadata": {"name": "nologs"}, "spec": {"target": {"name": "api"}, "evidence": {"logs": {"enabled": False}}}}
    client.create(kube.MONITORED_SERVICES, off, a.namespace)  # off needs nothing
    a.grant(kube_client, "log-reader", [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}])
    eventually_accepted(lambda: client.create(kube.MONITORED_SERVICES, body, a.namespace), "pods/log granted")


def test_comments_and_steps_are_appended_in_their_authors_name(tenant_a, kube_client):
    a, client = tenant_a
    kube_client.create(kube.INCIDENTS, incident("talk", managed=False), a.namespace)

    def append(field: str, entry: dict) -> dict:
        current = client.get(kube.INCIDENTS, "talk", a.namespace)["spec"].get(field)
        op = ([{"op": "add", "path": f"/spec/{field}/-", "value": entry}] if current is not None
              else [{"op": "add", "path": f"/spec/{field}", "value": [entry]}])
        return client.patch(kube.INCIDENTS, "talk", op, a.namespace, content_type=kube.JSON_PATCH)

    append("comments", {"author": a.username, "text": "looking at the pool"})
    err = refusal(lambda: append("comments", {"author": "alice@example.com", "text": "it was bob"}))
    assert err.status == 403
    assert f"must name its author as the user who adds it ({a.username})" in err.message
    err = refusal(lambda: append("comments", {"text": "no author"}))
    assert err.status == 403
    # Another person's words are never rewritten or removed, whoever asks.
    for patch in ([{"op": "replace", "path": "/spec/comments/0/text", "value": "nothing to see"}],
                  [{"op": "remove", "path": "/spec/comments/0"}]):
        err = refusal(lambda p=patch: client.patch(kube.INCIDENTS, "talk", p, a.namespace, content_type=kube.JSON_PATCH))
        assert "appended only, never changed or removed" in err.message
    append("runbookSteps", {"step": 1, "author": a.username, "note": "pool resized"})
    err = refusal(lambda: append("runbookSteps", {"step": 2, "author": "system:admin"}))
    assert "must name its author" in err.message
    spec = kube_client.get(kube.INCIDENTS, "talk", a.namespace)["spec"]
    assert [c["text"] for c in spec["comments"]] == ["looking at the pool"]
    assert [s["step"] for s in spec["runbookSteps"]] == [1]
    # Someone else's words, appended again as a copy, would be theirs twice in the timeline.
    alice = acting_as(kube_client, "alice@example.com")
    said = {"author": "alice@example.com", "text": "it was the pool", "time": "2026-03-01T12:00:00.000Z"}
    try:
        current = alice.get(kube.INCIDENTS, "talk", a.namespace)["spec"]["comments"]
        alice.patch(kube.INCIDENTS, "talk", [{"op": "add", "path": "/spec/comments/-", "value": said}], a.namespace,
                    content_type=kube.JSON_PATCH)
    finally:
        alice.close()
    err = refusal(lambda: append("comments", said))
    assert err.status == 403 and "may not repeat an entry already there" in err.message
    # Nor one's own, nor moved about: the list only grows at its end.
    err = refusal(lambda: append("comments", current[0]))
    assert "may not repeat an entry already there" in err.message
    err = refusal(lambda: client.patch(kube.INCIDENTS, "talk", [{"op": "move", "from": "/spec/comments/0",
                                                                 "path": "/spec/comments/-"}], a.namespace,
                                       content_type=kube.JSON_PATCH))
    assert "appended only, never changed or removed (nor reordered)" in err.message
    err = refusal(lambda: client.patch(kube.INCIDENTS, "talk", [{"op": "add", "path": "/spec/comments/0", "value": {
        "author": a.username, "text": "first!"}}], a.namespace, content_type=kube.JSON_PATCH))
    assert "appended only" in err.message
    append("comments", {"author": a.username, "text": "rolled back"})
    spec = kube_client.get(kube.INCIDENTS, "talk", a.namespace)["spec"]
    assert [c["text"] for c in spec["comments"]] == ["looking at the pool", "it was the pool", "rolled back"]
    # State changes and other spec writes are not this policy's business.
    client.patch(kube.INCIDENTS, "talk", {"spec": {"state": "acknowledged"}}, a.namespace)
