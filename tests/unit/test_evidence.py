"""Evidence: pod template diffs, item extraction, and the size bounds of `status.evidence`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from paramedic.domain import evidence
from paramedic.domain.evidence import Revision, build, template_changes
from paramedic.domain.timeutil import iso

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def template(image: str = "shop/api:1.4", command: list[str] | None = None, env: dict[str, str] | None = None,
             limits: dict[str, str] | None = None, name: str = "app", extra: list[dict] | None = None) -> dict:
    c: dict = {"name": name, "image": image}
    if command is not None:
        c["command"] = command
    if env is not None:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if limits is not None:
        c["resources"] = {"limits": limits}
    return {"metadata": {"labels": {"app": "api"}}, "spec": {"containers": [c] + (extra or [])}}


def rs(revision: int, tmpl: dict, minutes_ago: float, hash_: str, uid: str = "dep-uid") -> dict:
    return {"metadata": {"name": f"api-{hash_}", "uid": f"rs-{hash_}",
                         "creationTimestamp": iso(NOW - timedelta(minutes=minutes_ago)),
                         "annotations": {evidence.REVISION_ANNOTATION: str(revision)},
                         "labels": {"app": "api", "pod-template-hash": hash_},
                         "ownerReferences": [{"uid": uid, "kind": "Deployment"}]},
            "spec": {"template": tmpl}}


def pod(name: str, hash_: str, *, ready: bool = True, restarts: int = 0, state: dict | None = None,
        last: dict | None = None, node: str = "node-a", memory: str | None = None) -> dict:
    spec_c: dict = {"name": "app", "image": "x"}
    if memory:
        spec_c["resources"] = {"limits": {"memory": memory}}
    status_c: dict = {"name": "app", "ready": ready, "restartCount": restarts,
                      "state": state or {"running": {"startedAt": iso(NOW - timedelta(minutes=30))}}}
    if last:
        status_c["lastState"] = {"terminated": last}
    return {"metadata": {"name": name, "labels": {"app": "api", "pod-template-hash": hash_},
                         "creationTimestamp": iso(NOW - timedelta(hours=1)),
                         "ownerReferences": [{"uid": f"rs-{hash_}"}]},
            "spec": {"nodeName": node, "containers": [spec_c]}, "status": {"containerStatuses": [status_c]}}


def event(name: str, obj: str, reason: str, message: str, count: int = 1, minutes_ago: float = 1,
          type_: str = "Warning", kind: str = "Pod") -> dict:
    return {"metadata": {"name": name, "creationTimestamp": iso(NOW - timedelta(hours=2))}, "type": type_,
            "regarding": {"kind": kind, "name": obj}, "reason": reason, "note": message,
            "series": {"count": count, "lastObservedTime": iso(NOW - timedelta(minutes=minutes_ago))}}


def node(name: str, ready: str = "True", pressure: tuple[str, ...] = ()) -> dict:
    conds = [{"type": "Ready", "status": ready, "reason": "KubeletReady" if ready == "True" else "NodeStatusUnknown",
              "lastTransitionTime": iso(NOW - timedelta(days=1))}]
    conds += [{"type": t, "status": "True"} for t in pressure]
    return {"metadata": {"name": name}, "status": {"conditions": conds}}


DEPLOYMENT = {"metadata": {"name": "api", "uid": "dep-uid"}}


# --- diffs -------------------------------------------------------------------------------------------


def test_identical_templates_have_no_changes():
    assert template_changes(template(), template()) == []


def test_image_change_reads_old_to_new():
    assert template_changes(template("shop/api:1.4"), template("shop/api:1.5")) == ["image app: shop/api:1.4 → shop/api:1.5"]


def test_command_change_is_counted_never_shown():
    # A command is argv like args: `sh -c "mysql -pSECRET"` holds secrets as often as env does.
    assert template_changes(template(command=["serve"]), template(command=["python", "-c", "exit(1)"])) == [
        "command app: 3 words changed (1 → 3)"]
    assert template_changes(template(), template(command=["run"])) == ["command app: 1 word changed (0 → 1)"]


def with_args(args: list[str]) -> dict:
    t = template()
    t["spec"]["containers"][0]["args"] = args
    return t


def test_args_name_their_flags_never_their_values():
    changes = template_changes(with_args(["--db-password=old", "--port=80", "--gone=1", "serve", "-psecret"]),
                               with_args(["--db-password=NEW", "--port=80", "--debug=yes", "serve", "-pswordfish"]))
    assert changes == ["args app: --debug added, --gone removed, --db-password (value changed), 1 other word changed"]
    for value in ("old", "NEW", "yes", "secret", "swordfish", "=1"):
        assert value not in str(changes)


def test_args_two_word_flags_and_positionals_are_only_counted():
    changes = template_changes(with_args(["--password", "hunter2", "run"]),
                               with_args(["--password", "swordfish", "run", "extra"]))
    assert changes == ["args app: 2 words changed (3 → 4)"]
    assert template_changes(with_args(["--a=1", "--b=2"]), with_args(["--b=2", "--a=1"])) == ["args app: order changed"]


def test_env_names_only_never_values():
    changes = template_changes(template(env={"A": "1", "SECRET": "hunter2", "KEEP": "x"}),
                               template(env={"B": "2", "SECRET": "swordfish", "KEEP": "x"}))
    assert changes == ["env app: +B -A ~SECRET"]
    assert "hunter2" not in str(changes) and "swordfish" not in str(changes)


def test_resource_changes_each_on_a_line():
    assert template_changes(template(limits={"memory": "256Mi", "cpu": "1"}), template(limits={"memory": "128Mi"})) == [
        "resources app: limits.cpu 1 → (none)", "resources app: limits.memory 256Mi → 128Mi"]


def test_containers_added_and_removed():
    changes = template_changes(template(extra=[{"name": "side", "image": "s:1"}]), template(name="app"))
    assert changes == ["container side removed"]
    assert template_changes(template(), template(extra=[{"name": "log", "image": "l:2"}])) == [
        "container log added (image l:2)"]


def test_only_the_hash_label_differs_is_no_change_but_other_metadata_is():
    a, b = template(), template()
    a["metadata"]["labels"]["pod-template-hash"] = "aaa"
    b["metadata"]["labels"]["pod-template-hash"] = "bbb"
    assert template_changes(a, b) == []
    b["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "now"}
    assert template_changes(a, b) == ["pod template changed (annotations, labels or other fields)"]


def test_many_changes_are_capped():
    old = template(env={f"V{i}": "1" for i in range(3)},
                   extra=[{"name": f"c{i}", "image": f"i:{i}"} for i in range(20)])
    new = template(image="other", extra=[{"name": f"c{i}", "image": f"j:{i}"} for i in range(20)])
    changes = template_changes(old, new)
    assert len(changes) == evidence.MAX_CHANGES
    assert changes[-1].startswith("… and ") and changes[-1].endswith(" more")


# --- rollouts -----------------------------------------------------------------------------------------


def test_rollouts_newest_first_with_their_change_and_current_mark():
    revs = [evidence.replicaset_revision(rs(n, template(f"shop/api:1.{n}"), 60 - n, f"h{n}")) for n in (1, 2, 3, 4)]
    out = evidence.rollouts(revs)
    assert [r["revision"] for r in out] == [4, 3, 2]
    assert out[0]["current"] is True and not out[1]["current"]
    assert out[0]["changes"] == ["image app: shop/api:1.3 → shop/api:1.4"]
    assert out[0]["previousRevision"] == 3 and out[0]["ref"] == "rollout/4"
    assert out[0]["images"] == ["shop/api:1.4"]


def test_first_revision_has_no_change_and_unnumbered_revisions_are_ignored():
    out = evidence.rollouts([Revision(1, "a", iso(NOW), template()), Revision(0, "b", iso(NOW), template("z"))])
    assert len(out) == 1 and out[0]["changes"] == [] and "previousRevision" not in out[0]


def test_controller_revisions_are_read_too():
    cr = {"metadata": {"name": "web-7d9f", "creationTimestamp": iso(NOW), "labels": {}}, "revision": 2,
          "data": {"spec": {"template": template("web:2")}}}
    rev = evidence.controller_revision(cr)
    assert (rev.number, rev.hash, rev.template["spec"]["containers"][0]["image"]) == (2, "7d9f", "web:2")


# --- containers, events, nodes ---------------------------------------------------------------------------


def test_crash_looping_container_is_recorded_with_reason_exit_code_limit_and_revision():
    p = pod("api-h2-x", "h2", ready=False, restarts=7, memory="64Mi",
            state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            last={"reason": "Error", "exitCode": 1, "finishedAt": iso(NOW - timedelta(minutes=1))})
    [item] = evidence.pod_items(p, {"h2": 2})
    assert item == {"ref": "pod/api-h2-x/app", "pod": "api-h2-x", "container": "app", "node": "node-a",
                    "ready": False, "restarts": 7, "state": "Waiting", "reason": "CrashLoopBackOff",
                    "message": "back-off 5m0s", "lastReason": "Error", "lastExitCode": 1,
                    "lastFinishedAt": iso(NOW - timedelta(minutes=1)), "memoryLimit": "64Mi", "revision": 2,
                    "time": iso(NOW - timedelta(minutes=1))}


def test_terminated_container_and_oom():
    p = pod("p", "h1", ready=False, restarts=1,
            state={"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": iso(NOW)}})
    [item] = evidence.pod_items(p, {})
    assert (item["state"], item["reason"], item["exitCode"], item["time"]) == ("Terminated", "OOMKilled", 137, iso(NOW))
    assert "revision" not in item and "memoryLimit" not in item


def test_pod_without_container_statuses_gets_one_item_from_its_conditions():
    p = {"metadata": {"name": "p", "creationTimestamp": iso(NOW)}, "spec": {},
         "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                                         "reason": "Unschedulable", "message": "0/3 nodes"}]}}
    [item] = evidence.pod_items(p, {})
    assert (item["reason"], item["message"], item["ready"], item["ref"]) == ("Unschedulable", "0/3 nodes", False, "pod/p/")


def test_event_item_reads_both_event_apis():
    new = evidence.event_item(event("e1", "p", "BackOff", "Back-off restarting", count=40))
    assert new == {"ref": "event/e1", "time": iso(NOW - timedelta(minutes=1)), "object": "Pod/p",
                   "reason": "BackOff", "message": "Back-off restarting", "count": 40}
    core = evidence.event_item({"metadata": {"name": "e2"}, "involvedObject": {"kind": "Pod", "name": "q"},
                                "reason": "Failed", "message": "m", "count": 3, "lastTimestamp": iso(NOW)})
    assert (core["object"], core["count"], core["time"], core["message"]) == ("Pod/q", 3, iso(NOW), "m")


def test_node_problems():
    assert evidence.node_item(node("a"))["problems"] == []
    bad = evidence.node_item(node("b", ready="Unknown", pressure=("MemoryPressure",)))
    assert bad["problems"] == ["NotReady (NodeStatusUnknown)", "MemoryPressure"] and bad["ready"] is False
    cordoned = node("c")
    cordoned["spec"] = {"unschedulable": True}
    assert evidence.node_item(cordoned)["problems"] == ["Unschedulable (cordoned)"]


def test_build_keeps_only_the_targets_warning_events_and_involved_nodes_broken_first():
    revs = [evidence.replicaset_revision(rs(1, template("shop/api:1.4"), 30, "h1")),
            evidence.replicaset_revision(rs(2, template("shop/api:1.5"), 4, "h2"))]
    pods = [pod("api-h1-a", "h1"), pod("api-h2-b", "h2", ready=False, restarts=3, node="node-b",
                                        state={"waiting": {"reason": "CrashLoopBackOff"}},
                                        last={"reason": "Error", "exitCode": 1})]
    events = [event("e1", "api-h2-b", "BackOff", "Back-off restarting failed container", count=3),
              event("e2", "other-pod", "BackOff", "not ours"),
              event("e3", "api-h2-b", "Pulled", "normal", type_="Normal"),
              event("e4", "api-h2", "FailedCreate", "quota", kind="ReplicaSet", minutes_ago=10)]
    ev = build("Deployment", DEPLOYMENT, revs, pods, events, [node("node-a"), node("node-b"), node("node-z")], NOW)
    assert ev["gatheredAt"] == iso(NOW) and ev["target"] == "Deployment/api" and ev["truncated"] is False
    assert [c["pod"] for c in ev["containers"]] == ["api-h2-b", "api-h1-a"]
    assert ev["containers"][0]["revision"] == 2 and ev["containers"][1]["revision"] == 1
    assert [e["ref"] for e in ev["events"]] == ["event/e1", "event/e4"]
    assert [n["name"] for n in ev["nodes"]] == ["node-a", "node-b"]
    assert ev["rollouts"][0]["changes"] == ["image app: shop/api:1.4 → shop/api:1.5"]


def test_repeated_events_are_merged_into_one_with_their_counts():
    events = [event(f"e{i}", "p", "BackOff", "Back-off restarting failed container", count=2, minutes_ago=i)
              for i in range(30)]
    ev = build("Deployment", DEPLOYMENT, [], [pod("p", "h")], events, [], NOW)
    [merged] = ev["events"]
    assert merged["count"] == 60 and merged["ref"] == "event/e0"


# --- bounds ---------------------------------------------------------------------------------------------


def test_a_pod_crash_looping_for_a_day_does_not_grow_the_evidence():
    def after(hours: int) -> dict:
        restarts = hours * 12  # every five minutes, back-off capped
        p = pod("p", "h1", ready=False, restarts=restarts, state={"waiting": {"reason": "CrashLoopBackOff"}},
                last={"reason": "Error", "exitCode": 1, "finishedAt": iso(NOW)})
        # One aggregated Event (Kubernetes counts repeats) plus a fresh one per hour.
        events = [event("backoff", "p", "BackOff", "Back-off restarting failed container", count=restarts)]
        events += [event(f"e{h}", "p", "Unhealthy", f"probe failed at hour {h}", minutes_ago=60 * h) for h in range(hours)]
        return build("Deployment", DEPLOYMENT, [], [p], events, [node("node-a")], NOW)

    half, day = after(12), after(24)
    assert evidence.size(day) <= evidence.MAX_BYTES
    assert len(day["events"]) == evidence.MAX_EVENTS
    # Once the caps are reached, only counts and which items are newest change: the size stays put.
    assert abs(evidence.size(day) - evidence.size(half)) < 20
    assert day["containers"][0]["restarts"] == 288


def test_the_worst_case_stays_within_max_bytes():
    huge = "x" * 100_000
    tmpl = template(image=huge, command=[huge], env={f"V{i}": huge for i in range(50)},
                    extra=[{"name": f"c{i}", "image": huge} for i in range(50)])
    revs = [Revision(n, "r" * 253, iso(NOW), {**tmpl, "spec": {"containers": [
        {**c, "image": c["image"] + str(n)} for c in tmpl["spec"]["containers"]]}}, f"h{n}") for n in range(1, 30)]
    pods = []
    for i in range(200):
        p = pod(f"{'p' * 240}{i}", "h1", ready=False, restarts=10**6, node=f"{'n' * 240}{i}",
                state={"waiting": {"reason": huge, "message": huge}}, last={"reason": huge, "exitCode": 1})
        pods.append(p)
    events = [event(f"{'e' * 240}{i}", pods[i % 200]["metadata"]["name"], huge[:i + 1], huge) for i in range(500)]
    nodes = [node(f"{'n' * 240}{i}", ready="False") for i in range(200)]
    ev = build("Deployment", {"metadata": {"name": "d" * 253, "uid": "u"}}, revs, pods, events, nodes, NOW)
    assert ev["truncated"] is True
    assert len(ev["containers"]) == evidence.MAX_CONTAINERS and len(ev["events"]) == evidence.MAX_EVENTS
    assert len(ev["nodes"]) == evidence.MAX_NODES and len(ev["rollouts"]) == evidence.MAX_ROLLOUTS
    ev["logs"] = [evidence.log_item("p" * 253, "c" * 63, True, "\u2603" * 100_000, NOW)]
    assert evidence.size(ev) <= evidence.MAX_BYTES, evidence.size(ev)


def test_cut():
    assert evidence.cut("abc", 3) == "abc" and evidence.cut("abcd", 3) == "ab…" and evidence.cut(None) == ""


def test_log_target_is_the_first_broken_container_and_its_previous_run_when_it_restarted():
    crashed = {"pod": "p", "container": "app", "ready": False, "restarts": 3, "state": "Waiting"}
    pending = {"pod": "q", "container": "app", "ready": False, "restarts": 0, "state": "Waiting"}
    healthy = {"pod": "r", "container": "app", "ready": True, "restarts": 0, "state": "Running"}
    assert evidence.log_target({"containers": [healthy, crashed, pending]}) == ("p", "app", True)
    assert evidence.log_target({"containers": [pending]}) == ("q", "app", False)
    assert evidence.log_target({"containers": [healthy]}) is None
    assert evidence.log_target({"containers": [{"pod": "s", "container": "", "ready": False}]}) is None
    # Just exited (before the back-off): the crash is in this run, the one before is gone.
    exited = {"pod": "t", "container": "app", "ready": False, "restarts": 2, "state": "Terminated"}
    assert evidence.log_target({"containers": [exited]}) == ("t", "app", False)
    running = {"pod": "u", "container": "app", "ready": False, "restarts": 2, "state": "Running"}
    assert evidence.log_target({"containers": [running]}) == ("u", "app", False)


def test_a_log_keeps_its_end_within_the_bound():
    item = evidence.log_item("p", "app", True, "x" * 10_000 + "the end\n", NOW)
    assert len(item["lines"]) == evidence.MAX_LOG_CHARS and item["lines"].endswith("the end\n")
    assert item["lines"].startswith("…") and item["ref"] == "log/p/app" and item["time"] == iso(NOW)
    ev = build("Deployment", DEPLOYMENT, [], [], [], [], NOW)
    assert ev["logs"] == []
    assert evidence.size({**ev, "logs": [item]}) - evidence.size(ev) < evidence.MAX_LOG_CHARS * 3 + 200
