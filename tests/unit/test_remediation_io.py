"""What a playbook is told about its incident and target (remediation_io.playbook_vars)."""

from paramedic.remediation_io import playbook_vars

INC = {"metadata": {"name": "checkout-down-1", "namespace": "shop"},
       "spec": {"service": "checkout", "severity": "critical"}}
SVC = {"metadata": {"name": "checkout", "namespace": "shop"},
       "spec": {"target": {"kind": "StatefulSet", "name": "checkout-db"}}}


def test_the_incident_and_its_target():
    assert playbook_vars(INC, SVC, {"restartedAt": "2026-03-01T12:00:00Z"}, "/k/config") == {
        "incident_name": "checkout-down-1", "incident_namespace": "shop", "service": "checkout",
        "severity": "critical", "namespace": "shop", "target_kind": "StatefulSet", "target_name": "checkout-db",
        "deployment": "checkout-db", "restarted_at": "2026-03-01T12:00:00Z", "kubeconfig": "/k/config"}


def test_missing_fields_read_as_the_crds_defaults():
    out = playbook_vars({"metadata": {"name": "i", "namespace": "shop"}, "spec": {}}, {"spec": {"target": None}}, {}, "")
    assert out["severity"] == "high" and out["service"] == ""
    assert out["target_kind"] == "Deployment" and out["target_name"] == "" and out["deployment"] == ""
    assert out["restarted_at"] == "" and "kubeconfig" not in out
