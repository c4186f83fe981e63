"""kubectl's rollout status / restart rules."""

from __future__ import annotations

import pytest

from paramedic.domain.rollout import (
    RESTARTED_AT,
    RolloutStatus,
    already_restarted,
    is_paused,
    restart_patch,
    rollout_status,
    template_restarted_at,
)


def deployment(generation=2, observed=2, replicas=3, status=None, conditions=None, name="checkout"):
    st = {"observedGeneration": observed, **(status or {})}
    if conditions is not None:
        st["conditions"] = conditions
    spec = {"template": {"metadata": {}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"metadata": {"name": name, "generation": generation}, "spec": spec, "status": st}


class TestDeployment:
    def test_spec_update_not_observed(self):
        s = rollout_status("Deployment", deployment(generation=3, observed=2))
        assert s == RolloutStatus(False, False, "Waiting for deployment spec update to be observed...")
        assert not s.finished

    def test_no_status_at_all_waits(self):
        s = rollout_status("Deployment", {"metadata": {"name": "x", "generation": 1}, "spec": {"replicas": 1}})
        assert not s.done and not s.failed

    def test_progress_deadline_exceeded_fails(self):
        conds = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                 {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
        s = rollout_status("Deployment", deployment(conditions=conds, status={"updatedReplicas": 1}))
        assert s.failed and not s.done and s.finished
        assert s.message == 'deployment "checkout" exceeded its progress deadline'

    def test_progressing_other_reason_is_not_failure(self):
        conds = [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]
        s = rollout_status("Deployment", deployment(conditions=conds, status={
            "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}))
        assert s.done

    def test_deadline_only_checked_once_observed(self):
        conds = [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]
        s = rollout_status("Deployment", deployment(generation=5, observed=4, conditions=conds))
        assert not s.failed

    def test_updated_replicas_behind(self):
        s = rollout_status("Deployment", deployment(status={"updatedReplicas": 1, "replicas": 4, "availableReplicas": 3}))
        assert s.message == ('Waiting for deployment "checkout" rollout to finish: '
                             "1 out of 3 new replicas have been updated...")
        assert not s.finished

    def test_old_replicas_pending_termination(self):
        s = rollout_status("Deployment", deployment(status={"updatedReplicas": 3, "replicas": 4, "availableReplicas": 3}))
        assert s.message == ('Waiting for deployment "checkout" rollout to finish: '
                             "1 old replicas are pending termination...")
        assert not s.finished

    def test_updated_not_available(self):
        s = rollout_status("Deployment", deployment(status={"updatedReplicas": 3, "replicas": 3, "availableReplicas": 2}))
        assert s.message == ('Waiting for deployment "checkout" rollout to finish: '
                             "2 of 3 updated replicas are available...")

    def test_missing_available_counts_as_zero(self):
        s = rollout_status("Deployment", deployment(status={"updatedReplicas": 3, "replicas": 3}))
        assert "0 of 3 updated replicas are available" in s.message

    def test_done(self):
        s = rollout_status("Deployment", deployment(status={"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3}))
        assert s == RolloutStatus(True, False, 'deployment "checkout" successfully rolled out')
        assert s.finished and not s.timed_out

    def test_scaled_to_zero_is_done(self):
        s = rollout_status("Deployment", deployment(replicas=0, status={}))
        assert s.done

    def test_nil_spec_replicas_skips_that_check(self):
        s = rollout_status("Deployment", deployment(replicas=None, status={"updatedReplicas": 0, "replicas": 0}))
        assert s.done


def statefulset(generation=2, observed=2, replicas=3, status=None, strategy=None):
    spec = {"replicas": replicas, "updateStrategy": strategy if strategy is not None else {"type": "RollingUpdate"}}
    return {"metadata": {"name": "db", "generation": generation}, "spec": spec,
            "status": {"observedGeneration": observed, **(status or {})}}


class TestStatefulSet:
    def test_on_delete_is_refused(self):
        s = rollout_status("StatefulSet", statefulset(strategy={"type": "OnDelete"}))
        assert s.failed and "RollingUpdate" in s.message

    def test_not_observed(self):
        assert rollout_status("StatefulSet", statefulset(observed=0)).message == \
            "Waiting for statefulset spec update to be observed..."
        assert not rollout_status("StatefulSet", statefulset(generation=3, observed=2)).finished

    def test_waiting_for_ready(self):
        s = rollout_status("StatefulSet", statefulset(status={"readyReplicas": 1}))
        assert s.message == "Waiting for 2 pods to be ready..." and not s.finished

    def test_partition_waiting(self):
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
        s = rollout_status("StatefulSet", statefulset(strategy=strategy, status={"readyReplicas": 3, "updatedReplicas": 1}))
        assert s.message == "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
        assert not s.finished

    def test_partition_complete(self):
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
        s = rollout_status("StatefulSet", statefulset(strategy=strategy, status={"readyReplicas": 3, "updatedReplicas": 3}))
        assert s.done and s.message == "partitioned roll out complete: 3 new pods have been updated..."

    def test_revisions_differ(self):
        s = rollout_status("StatefulSet", statefulset(status={
            "readyReplicas": 3, "updatedReplicas": 2, "updateRevision": "db-2", "currentRevision": "db-1"}))
        assert s.message == "waiting for statefulset rolling update to complete 2 pods at revision db-2..."
        assert not s.finished

    def test_revisions_equal(self):
        s = rollout_status("StatefulSet", statefulset(status={
            "readyReplicas": 3, "currentReplicas": 3, "updateRevision": "db-2", "currentRevision": "db-2"}))
        assert s.done and s.message == "statefulset rolling update complete 3 pods at revision db-2..."


def daemonset(generation=1, observed=1, status=None, strategy=None):
    spec = {"updateStrategy": strategy if strategy is not None else {"type": "RollingUpdate"}}
    return {"metadata": {"name": "agent", "generation": generation}, "spec": spec,
            "status": {"observedGeneration": observed, **(status or {})}}


class TestDaemonSet:
    def test_on_delete_is_refused(self):
        assert rollout_status("DaemonSet", daemonset(strategy={"type": "OnDelete"})).failed

    def test_not_observed(self):
        assert rollout_status("DaemonSet", daemonset(generation=2)).message == \
            "Waiting for daemon set spec update to be observed..."

    def test_updating(self):
        s = rollout_status("DaemonSet", daemonset(status={"desiredNumberScheduled": 4, "updatedNumberScheduled": 2}))
        assert s.message == 'Waiting for daemon set "agent" rollout to finish: 2 out of 4 new pods have been updated...'

    def test_unavailable(self):
        s = rollout_status("DaemonSet", daemonset(status={
            "desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberAvailable": 3}))
        assert s.message == 'Waiting for daemon set "agent" rollout to finish: 3 of 4 updated pods are available...'

    def test_done(self):
        s = rollout_status("DaemonSet", daemonset(status={
            "desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberAvailable": 4}))
        assert s.done and s.message == 'daemon set "agent" successfully rolled out'


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="CronJob"):
        rollout_status("CronJob", {})


class TestRestart:
    def test_patch_is_what_kubectl_sends(self):
        assert restart_patch("Deployment", "2026-01-05T09:00:00Z") == {
            "spec": {"template": {"metadata": {"annotations": {
                "kubectl.kubernetes.io/restartedAt": "2026-01-05T09:00:00Z"}}}}}

    @pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
    def test_other_workloads(self, kind):
        assert restart_patch(kind, "t")["spec"]["template"]["metadata"]["annotations"][RESTARTED_AT] == "t"

    def test_bad_input(self):
        with pytest.raises(ValueError):
            restart_patch("Pod", "t")
        with pytest.raises(ValueError):
            restart_patch("Deployment", "")

    def test_already_restarted(self):
        obj = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-01-05T09:00:00Z"}}}}}
        assert already_restarted(obj, "2026-01-05T09:00:00Z")
        assert not already_restarted(obj, "2026-01-05T09:00:01Z")
        assert not already_restarted({"spec": {"template": {}}}, "2026-01-05T09:00:00Z")
        assert not already_restarted({}, "x")
        assert template_restarted_at(obj) == "2026-01-05T09:00:00Z"
        assert template_restarted_at({"spec": {"template": {"metadata": {"annotations": None}}}}) is None

    def test_paused(self):
        assert is_paused({"spec": {"paused": True}})
        assert not is_paused({"spec": {"paused": False}})
        assert not is_paused({"spec": {}})
        assert not is_paused({})
