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


def test_a_refused_playbook_fails_the_attempt_and_is_counted_once_by_the_planner_not_here(tmp_path):
    # The planner counts the attempt when it records the result; counting the refusal here too
    # made one attempt two in paramedic_remediations_total.
    import asyncio

    from paramedic import metrics
    from paramedic.remediation_io import run_attempt
    from paramedic.settings import Settings

    svc = {"metadata": {"name": "checkout", "namespace": "shop"},
           "spec": {"target": {"kind": "Deployment", "name": "checkout"},
                    "remediation": {"actions": [{"ansible": {"playbook": "nope.yml"}}]}}}

    def total() -> float:
        return sum(s.value for m in metrics.REMEDIATIONS.collect() for s in m.samples if s.name.endswith("_total"))

    before = total()
    out = asyncio.run(run_attempt(None, Settings(playbook_catalog=str(tmp_path / "missing.yaml")),
                                  INC, svc, {"index": 0, "restartedAt": "2026-03-01T12:00:00Z"}))
    assert out["result"] == "Failed" and "playbook catalog" in out["message"]
    assert total() == before
