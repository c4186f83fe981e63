"""The API server itself enforces the schemas and the Incident lifecycle (CEL)."""

from __future__ import annotations

import pytest

from paramedic import kube

pytestmark = pytest.mark.e2e


def incident(name: str, **spec) -> dict:
    return {"metadata": {"name": name},
            "spec": {"service": "checkout", "severity": "high", "title": "checkout is down", **spec}}


def set_state(client, ns, name, state, **extra):
    return client.patch(kube.INCIDENTS, name, {"spec": {"state": state, **extra}}, ns)


def test_defaults_are_applied(kube_client, namespace):
    created = kube_client.create(kube.INCIDENTS, incident("a"), namespace)
    assert created["spec"]["state"] == "open"
    assert created["spec"]["source"] == "manual"
    assert created["spec"]["managed"] is True


def test_state_moves_forward_and_skips(kube_client, namespace):
    kube_client.create(kube.INCIDENTS, incident("fwd"), namespace)
    set_state(kube_client, namespace, "fwd", "acknowledged")
    assert set_state(kube_client, namespace, "fwd", "resolved")["spec"]["state"] == "resolved"


def test_state_cannot_go_back(kube_client, namespace):
    kube_client.create(kube.INCIDENTS, incident("back"), namespace)
    set_state(kube_client, namespace, "back", "resolved")
    with pytest.raises(kube.Invalid) as err:
        set_state(kube_client, namespace, "back", "open")
    assert "cannot move back from resolved to open" in err.value.message


def test_close_needs_resolved_and_root_cause(kube_client, namespace):
    kube_client.create(kube.INCIDENTS, incident("close"), namespace)
    with pytest.raises(kube.Invalid) as err:
        set_state(kube_client, namespace, "close", "closed", rca={"rootCause": "bad deploy"})
    assert "closed only once it is resolved" in err.value.message
    set_state(kube_client, namespace, "close", "resolved")
    with pytest.raises(kube.Invalid) as err:
        set_state(kube_client, namespace, "close", "closed")
    assert "closing needs a root cause" in err.value.message
    with pytest.raises(kube.Invalid):
        set_state(kube_client, namespace, "close", "closed", rca={"rootCause": "   "})
    done = set_state(kube_client, namespace, "close", "closed", rca={"rootCause": "bad deploy"})
    assert done["spec"]["state"] == "closed"


def test_service_is_immutable_and_enums_checked(kube_client, namespace):
    kube_client.create(kube.INCIDENTS, incident("imm"), namespace)
    with pytest.raises(kube.Invalid) as err:
        kube_client.patch(kube.INCIDENTS, "imm", {"spec": {"service": "other"}}, namespace)
    assert "immutable" in err.value.message
    with pytest.raises(kube.Invalid) as err:
        kube_client.create(kube.INCIDENTS, incident("sev", severity="urgent"), namespace)
    assert "severity" in err.value.message


def test_incident_field_selectors(kube_client, namespace):
    kube_client.create(kube.INCIDENTS, incident("s1"), namespace)
    kube_client.create(kube.INCIDENTS, incident("s2", severity="low"), namespace)
    found = kube_client.list(kube.INCIDENTS, namespace, field_selector="spec.service=checkout,spec.severity=low")
    assert [i["metadata"]["name"] for i in found] == ["s2"]


def msvc(name: str, **spec) -> dict:
    return {"metadata": {"name": name}, "spec": {"target": {"name": name}, **spec}}


@pytest.mark.parametrize("probe, message", [
    ({"url": "ftp://x/health"}, "probe.url must start with http:// or https://"),
    ({"url": "http://"}, "absolute URL with a host"),
    ({}, "exactly one of url or service"),
    ({"url": "http://x/", "failureThreshold": 0}, "failureThreshold"),
    ({"url": "http://x/", "intervalSeconds": 5, "timeoutSeconds": 10}, "must not exceed"),
])
def test_bad_probe_specs_are_refused(kube_client, namespace, probe, message):
    with pytest.raises(kube.Invalid) as err:
        kube_client.create(kube.MONITORED_SERVICES, msvc("bad", probe=probe), namespace)
    assert message in err.value.message


def test_bad_remediation_specs_are_refused(kube_client, namespace):
    with pytest.raises(kube.Invalid) as err:
        kube_client.create(kube.MONITORED_SERVICES, msvc("two", remediation={"actions": [
            {"restart": {}, "ansible": {"playbook": "x.yml"}}]}), namespace)
    assert "exactly one of restart, rollback, ansible or scale" in err.value.message
    with pytest.raises(kube.Invalid) as err:
        kube_client.create(kube.MONITORED_SERVICES, msvc("esc", remediation={"actions": [
            {"ansible": {"playbook": "../../etc/passwd"}}]}), namespace)
    assert "inside the playbooks directory" in err.value.message


def test_monitoredservice_defaults(kube_client, namespace):
    created = kube_client.create(kube.MONITORED_SERVICES, msvc("ok", probe={"url": "http://x:8080/healthz"},
                                                             remediation={"actions": [{"restart": {}}]}), namespace)
    spec = created["spec"]
    assert spec["probe"]["failureThreshold"] == 3 and spec["probe"]["intervalSeconds"] == 30
    assert spec["remediation"]["maxPerHour"] == 6 and spec["autoResolve"] is True
    assert spec["target"]["kind"] == "Deployment"


def test_oncall_schedule_validation(kube_client, namespace):
    base = {"participants": [{"name": "A", "email": "a@example.com"}],
            "rotation": {"start": "2026-01-05T09:00:00Z"}}
    with pytest.raises(kube.Invalid) as err:
        kube_client.create(kube.ONCALL_SCHEDULES, {"metadata": {"name": "x"}, "spec": {
            **base, "overrides": [{"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z",
                                   "email": "b@example.com"}]}}, namespace)
    assert "override end must be after its start" in err.value.message
    with pytest.raises(kube.Invalid) as err:
        kube_client.create(kube.ONCALL_SCHEDULES, {"metadata": {"name": "y"}, "spec": {
            **base, "escalation": [{"afterMinutes": 5, "notify": "everyone"}]}}, namespace)
    assert "notify must be oncall, next, admins or an e-mail address" in err.value.message
    with pytest.raises(kube.Invalid):
        kube_client.create(kube.ONCALL_SCHEDULES, {"metadata": {"name": "z"}, "spec": {"participants": [],
                                                    "rotation": base["rotation"]}}, namespace)
