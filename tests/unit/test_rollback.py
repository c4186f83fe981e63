"""Rollback as `kubectl rollout undo` picks it: the previous revision's template, one JSON patch."""

from __future__ import annotations

import pytest

from paramedic.domain import remediation, rollout
from paramedic.domain.rollout import ROLLED_BACK_BY, rollback_patch, rollback_plan


def tmpl(image: str, hash_: str | None = None) -> dict:
    labels = {"app": "api"} | ({"pod-template-hash": hash_} if hash_ else {})
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": image}]}}


def rs(revision: int, image: str, uid: str = "dep") -> dict:
    return {"metadata": {"name": f"api-{revision}", "annotations": {rollout.REVISION: str(revision)},
                         "ownerReferences": [{"uid": uid}]},
            "spec": {"template": tmpl(image, f"h{revision}")}}


def deployment(revision: int, image: str, **annotations: str) -> dict:
    return {"metadata": {"name": "api", "uid": "dep", "resourceVersion": "42",
                         "annotations": {rollout.REVISION: str(revision), **annotations}},
            "spec": {"template": tmpl(image)}}


def test_rolls_back_to_the_highest_earlier_revision_without_the_hash_label():
    plan = rollback_plan(deployment(3, "api:3"), [rs(1, "api:1"), rs(2, "api:2"), rs(3, "api:3")])
    assert (plan.from_revision, plan.to_revision) == (3, 2)
    assert plan.template == tmpl("api:2")


def test_replicasets_of_other_owners_and_unnumbered_ones_are_ignored():
    plan = rollback_plan(deployment(3, "api:3"), [rs(2, "x", uid="other"), rs(1, "api:1"), rs(3, "api:3"),
                                                  {**rs(0, "zero")}])
    assert plan.to_revision == 1


def test_nothing_to_roll_back_to():
    with pytest.raises(ValueError, match="no revision before 1"):
        rollback_plan(deployment(1, "api:1"), [rs(1, "api:1")])


def test_the_current_template_already_matches():
    with pytest.raises(ValueError, match="already matches revision 1"):
        rollback_plan(deployment(2, "api:1"), [rs(1, "api:1"), rs(2, "api:1")])


def test_the_deployment_without_a_revision_uses_its_newest_replicaset():
    dep = deployment(0, "api:2")
    del dep["metadata"]["annotations"][rollout.REVISION]
    assert rollback_plan(dep, [rs(1, "api:1"), rs(2, "api:2")]).to_revision == 1


def test_patch_replaces_the_template_names_the_attempt_and_is_guarded():
    dep = deployment(3, "api:3", keep="me")
    plan = rollback_plan(dep, [rs(2, "api:2"), rs(3, "api:3")])
    ops = rollback_patch(dep, plan, "inc-a0")
    assert ops[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    assert ops[1] == {"op": "replace", "path": "/spec/template", "value": tmpl("api:2")}
    assert ops[2]["value"] == {rollout.REVISION: "3", "keep": "me", ROLLED_BACK_BY: "inc-a0"}
    assert rollout.rolled_back_by({"metadata": {"annotations": ops[2]["value"]}}) == "inc-a0"
    assert rollout.rolled_back_by(dep) is None


def test_rollback_is_an_action_type_with_a_description():
    assert remediation.action_type({"rollback": {}}) == "rollback"
    assert remediation.action_type({"rollback": {}, "restart": {}}) == "unknown"
    assert remediation.describe_action({"rollback": {}}, {"kind": "Deployment", "name": "api"}) == \
        "rollout undo Deployment/api (to its previous revision)"


def test_a_rollback_lost_in_a_restart_is_resumed_not_marked_interrupted():
    from paramedic.domain.incident_plan import Effects, plan
    from paramedic.domain.vocabulary import AttemptResult
    from tests.unit.test_incident_plan import NOW, SETTINGS, attempt, incident, service

    svc = service(actions=[{"rollback": {}}], in_flight="checkout-abc")
    p = plan(incident(attempts=[attempt(AttemptResult.RUNNING, action="rollback")]), svc, None, Effects(),
             SETTINGS, NOW)
    assert p.start_attempt is not None and p.start_attempt["action"] == "rollback"
    assert "remediation-resumed" in [e["type"] for e in p.patch["timeline"]]
