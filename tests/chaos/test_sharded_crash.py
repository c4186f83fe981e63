"""Three operator replicas sharing the work through Leases, one of them SIGKILLed every few
seconds while incidents remediate: every incident is remediated exactly once, paged once,
and none is lost.

Fifty services (a Deployment each, restart remediation, no probe) get one incident each,
created over the first 45 s while the kills go on. A replica is killed every 2–5 s, round
robin, for a minute, and started again at once: half the time under the same identity (it
takes its shards straight back), half under a new one (the dead identity's shards wait for
its member Lease to expire, then move to the others). A kill waits (up to 20 s) for its
target to act on some shards, so that on a loaded machine, where a start takes many
seconds, kills still hit work; the kills go on past the minute until nine such, up to
100 s. Then the kills stop and everything settles.

Counted at the targets, not from Paramedic's own account: each attempt's restartedAt is on
exactly one new ReplicaSet of its Deployment, and the SMTP sink receives each incident's
"opened" and "remediation" page once. A repeated page is allowed only where a send's
result can be lost by design: the holder of the incident's shard was SIGKILLed between
the two copies, soon after the first, and the incident's timeline records one send (the
outbox records a page pending before sending and its result after: a send whose result
died with its process is sent again). Anything else repeated, or missing, fails. Copies
of one send (`X-Paramedic-Send-ID`: a delivery's own retry) count once; every copy of a page,
whoever sent it, carries the page's one Message-ID, so mail systems show it once.

PARAMEDIC_CHAOS_SEED changes the schedule (fixed by default; printed).
"""

from __future__ import annotations

import email
import email.policy
import os
import random
import re
import signal
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
import pytest

from paramedic import kube
from paramedic.domain import sharding
from tests.chaos.test_operator_crash import incident, service, stuck, template_stamp
from tests.e2e.test_control_plane import deployment
from tests.helpers import smtp_env, wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(480)]

SERVICES = 50
SLOTS = ("op-a", "op-b", "op-c")
KILL_SECONDS = 60.0
WORKING_KILLS = 9
"""Kills of replicas at work wanted; on a slow machine the kills go on past KILL_SECONDS for
them, up to MAX_KILL_SECONDS."""
MAX_KILL_SECONDS = 100.0
ACTING = re.compile(r'^paramedic_shards_held\{replica="[^"]*"\} (\S+)$', re.M)
PAGES = ("opened", "remediation")  # what a restart remediation without a probe is paged for
RESULT_LOST_WINDOW = 5.0
"""A page's result is recorded within a reconcile of the send: a kill later than this after
the first copy cannot explain a second."""


@dataclass
class Page:
    at: float
    incident: str
    event: str
    message_id: str
    send_id: str


@dataclass
class Kill:
    at: float
    identity: str
    successor: str
    held: frozenset[int]  # the shards the Leases said the killed replica held just before
    acting: int  # the shards it said it acted on (its gauge)
    attempts: int  # attempts recorded in all incidents at the kill


@dataclass
class Sink:
    """What the mail sink received, by arrival (monotonic clock of the test)."""

    pages: list[Page] = field(default_factory=list)

    def receive(self, item: dict) -> None:
        msg = email.message_from_bytes(item["raw"], policy=email.policy.default)
        self.pages.append(Page(time.monotonic(), str(msg["X-Paramedic-Incident"]).split("/")[-1],
                               str(msg["X-Paramedic-Event"]), str(msg["Message-ID"]),
                               str(msg["X-Paramedic-Send-ID"])))


def acting(op) -> int:
    """Shards a replica's process acts on now (its own gauge; 0 while it starts)."""
    try:
        found = ACTING.search(httpx.get(f"http://127.0.0.1:{op.metrics_port}/metrics", timeout=2).text)
    except httpx.HTTPError:
        return 0
    return int(float(found.group(1))) if found else 0


def shard_holders(client: kube.KubeClient, ns: str) -> dict[int, str]:
    leases = (sharding.Lease.of(b) for b in client.list(kube.LEASES, ns))
    return {lease.shard: lease.holder for lease in leases if lease.shard is not None}


def sent_in_timeline(inc: dict, event: str) -> int:
    return sum(1 for e in (inc.get("status") or {}).get("timeline") or []
               if e["type"] == "notification-sent" and e["message"].startswith(f"{event} via email"))


def test_three_replicas_sigkilled_in_turn_remediate_and_page_each_incident_once(
        kube_client, namespace, kubeconfig, operators, mail):
    seed = int(os.environ.get("PARAMEDIC_CHAOS_SEED") or 20261207)
    rng = random.Random(seed)
    print(f"\nsharded chaos seed {seed}: {SERVICES} services, replicas {', '.join(SLOTS)}")
    sink = Sink()
    mail.on_message = sink.receive
    # Unbuffered, so the log of a SIGKILLed replica keeps its last lines (the evidence below).
    env = {**smtp_env(mail.port), "PYTHONUNBUFFERED": "1"}
    names = [f"svc{i:02d}" for i in range(SERVICES)]
    incidents = {f"{name}-inc": name for name in names}
    shards = 32  # the default PARAMEDIC_SHARDS
    shard_of_incident = {inc: sharding.shard_of(namespace, svc, shards) for inc, svc in incidents.items()}
    for name in names:
        kube_client.create(kube.DEPLOYMENTS, deployment(name, replicas=1), namespace)
        kube_client.create(kube.MONITORED_SERVICES, service(name), namespace)
    wait_for(lambda: all((d.get("status") or {}).get("availableReplicas") == 1
                         for d in kube_client.list(kube.DEPLOYMENTS, namespace)), 120, "deployments available")

    started_procs: list = []

    def start(identity: str):
        proc = operators(kubeconfig, namespace, env=env, standalone=False, extra_args=["--identity", identity],
                         tag=identity)
        started_procs.append(proc)
        return proc

    live = {slot: start(slot) for slot in SLOTS}
    identity = {slot: slot for slot in SLOTS}
    wait_for(lambda: set(shard_holders(kube_client, namespace).values()) == set(SLOTS)
             and len(shard_holders(kube_client, namespace)) == shards or None, 60,
             "the 32 shards held, by all three replicas")

    pending = list(incidents.items())
    rng.shuffle(pending)
    kills: list[Kill] = []
    started = time.monotonic()
    next_create = started
    next_kill = started + rng.uniform(2.0, 5.0)
    overdue = next_kill + 20.0
    # Incidents arrive over the first 45 s, so kills hit every phase of a remediation.
    spacing = 45.0 / SERVICES
    while True:
        now = time.monotonic()
        working = sum(1 for k in kills if k.acting)
        if now - started >= KILL_SECONDS and (working >= WORKING_KILLS or now - started >= MAX_KILL_SECONDS):
            break
        if pending and now >= next_create:
            inc, svc = pending.pop()
            kube_client.create(kube.INCIDENTS, incident(inc, svc), namespace)
            next_create = now + rng.uniform(0.0, 2 * spacing)
        if now >= next_kill:
            slot = SLOTS[len(kills) % len(SLOTS)]
            who = identity[slot]
            on = acting(live[slot])
            if not on and now < overdue:
                # Still starting or joining (many seconds on a loaded machine): a kill now would
                # hit no work. It waits a while for the replica to act on some shards.
                next_kill = now + 0.5
                continue
            held = frozenset(s for s, h in shard_holders(kube_client, namespace).items() if h == who)
            attempts = sum(len(((i.get("status") or {}).get("remediation") or {}).get("attempts") or [])
                           for i in kube_client.list(kube.INCIDENTS, namespace))
            live[slot].kill(signal.SIGKILL)
            at = time.monotonic()
            # Half the restarts come back as the same replica, half as a new one.
            successor = who if rng.random() < 0.5 else f"{slot}-{len(kills) + 1}"
            live[slot], identity[slot] = start(successor), successor
            kills.append(Kill(at, who, successor, held, on, attempts))
            next_kill = time.monotonic() + rng.uniform(2.0, 5.0)
            overdue = next_kill + 20.0
        time.sleep(max(0.0, min(next_create if pending else next_kill, next_kill) - time.monotonic()))
    for inc, svc in pending:  # none left unless the machine is very slow: created all the same
        kube_client.create(kube.INCIDENTS, incident(inc, svc), namespace)
    print(f"{len(kills)} SIGKILLs: " + "; ".join(
        f"{k.at - started:.1f}s {k.identity} (acting on {k.acting}, attempts {k.attempts}) -> {k.successor}"
        for k in kills))
    assert sum(1 for k in kills if k.acting) >= 6, "too few kills of replicas at work: the test proved little"

    def settled() -> dict[str, dict] | None:
        items = {i["metadata"]["name"]: i for i in kube_client.list(kube.INCIDENTS, namespace)}
        if len(items) != len(incidents):
            return None
        for i in items.values():
            st = i.get("status") or {}
            attempts = (st.get("remediation") or {}).get("attempts") or []
            if (i["spec"].get("state") != "mitigated" or not attempts or attempts[-1].get("result") == "Running"
                    or any(n.get("result") in ("pending", "retrying") for n in st.get("notifications") or [])
                    or not set(PAGES) <= {e.get("event") for e in st.get("notifications") or []}):
                return None
        return items

    try:
        done = wait_for(settled, 240, "every incident mitigated and its pages recorded")
    except AssertionError as exc:
        raise AssertionError(f"seed {seed}: {exc}\n" + stuck(kube_client, namespace) + "\n"
                             + pages_status(kube_client, namespace)) from None
    elapsed = time.monotonic() - started
    try:
        wait_for(lambda: not any(((s.get("status") or {}).get("remediation") or {}).get("inFlight")
                                 for s in kube_client.list(kube.MONITORED_SERVICES, namespace)), 30, "claims released")
    except AssertionError:
        pass  # reported per service below
    time.sleep(3)  # a page sent twice would follow within a reconcile or two
    print(f"{len(incidents)} incidents mitigated {elapsed:.0f}s after the kills began; {len(sink.pages)} messages received "
          f"({len({p.send_id for p in sink.pages})} sends, {len({p.message_id for p in sink.pages})} Message-IDs)")

    logs = {proc.log_path: proc for proc in started_procs}  # a returning identity appends to its own
    problems: list[str] = []
    explained: list[str] = []
    # A delivery retried after a timeout resends the same message (one send id): pages are
    # counted by send. All sends of one page carry its one Message-ID.
    copies: dict[tuple[str, str], list[float]] = defaultdict(list)
    message_ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    seen_ids: set[str] = set()
    for page in sink.pages:
        message_ids[(page.incident, page.event)].add(page.message_id)
        if page.send_id not in seen_ids:
            seen_ids.add(page.send_id)
            copies[(page.incident, page.event)].append(page.at)
    for (inc_name, event), ids in sorted(message_ids.items()):
        if len(ids) != 1:
            problems.append(f"{inc_name}: {event!r} sent under {len(ids)} Message-IDs {sorted(ids)}")
    for inc_name, svc in sorted(incidents.items()):
        inc = done[inc_name]
        st = inc["status"]
        attempts = (st.get("remediation") or {}).get("attempts") or []
        if len(attempts) != 1:
            problems.append(f"{inc_name}: {len(attempts)} attempts: {attempts}")
        for a in attempts:
            if a.get("result") != "Succeeded":
                problems.append(f"{inc_name}: attempt {a.get('id')} ended {a.get('result')}: {a.get('message')}")
        types = Counter(e["type"] for e in st.get("timeline") or [])
        if types["remediation-started"] != 1 or types["remediation-succeeded"] != 1:
            problems.append(f"{inc_name}: timeline started x{types['remediation-started']}, "
                            f"succeeded x{types['remediation-succeeded']}")
        # At the target: the original ReplicaSet has no stamp; the attempt made exactly one more.
        stamps = sorted(filter(None, (a.get("restartedAt") for a in attempts)))
        rs_stamps = sorted(filter(None, (template_stamp(rs) for rs in
                                         kube_client.list(kube.REPLICASETS, namespace, labels={"app": svc}))))
        if rs_stamps != stamps or not stamps:
            problems.append(f"{svc}: ReplicaSets stamped {rs_stamps}, attempts stamped {stamps}")
        dep = kube_client.get(kube.DEPLOYMENTS, svc, namespace)
        if stamps and template_stamp(dep) != stamps[-1]:
            problems.append(f"{svc}: the Deployment carries {template_stamp(dep)}, the attempt {stamps[-1]}")
        claim = (kube_client.get(kube.MONITORED_SERVICES, svc, namespace).get("status") or {}).get("remediation") or {}
        if claim.get("inFlight"):
            problems.append(f"{svc}: still claimed by {claim['inFlight']}")
        # At the mail sink: each page once, unless a kill of the shard's holder lost a send's result.
        for event in PAGES:
            got = copies.get((inc_name, event), [])
            if not got:
                problems.append(f"{inc_name}: never paged for {event!r} (status {st.get('notifications')})")
            recorded = sent_in_timeline(inc, event)
            for first, again in zip(got, got[1:], strict=False):
                cause = next((k for k in kills if first <= k.at <= again and k.at - first <= RESULT_LOST_WINDOW
                              and shard_of_incident[inc_name] in k.held), None)
                senders = sorted(path.stem.removeprefix(f"operator-{namespace}-")
                                 for path, proc in logs.items()
                                 for _ in re.finditer(f"notification {event} for {namespace}/{inc_name} sent", proc.logs()))
                line = (f"{inc_name}: {event!r} paged again {again - first:.1f}s later "
                        f"(timeline records {recorded} send(s); logs of {senders} tell a send)")
                if cause is not None and recorded < len(got):
                    explained.append(f"{line}: {cause.identity}, holding shard {shard_of_incident[inc_name]}, "
                                     f"SIGKILLed {cause.at - first:.2f}s after the first copy")
                else:
                    problems.append(f"{line}, no kill of the shard's holder in between explains it; "
                                    f"its outbox {st.get('notifications')}; its timeline "
                                    f"{[(e['time'], e['type'], e['message']) for e in st.get('timeline') or []]}")
    if explained:
        print("pages repeated because a SIGKILL lost the send's result:\n" + "\n".join(explained))

    # Afterwards the live replicas hold every shard between them, and nothing names a dead one
    # (a replica killed last holds its shards until its member Lease expires).
    alive = set(identity.values())
    try:
        wait_for(lambda: (lambda h: len(h) == shards and set(h.values()) <= alive)(
            shard_holders(kube_client, namespace)) or None, 45, "every shard held by a live replica")
        handled = wait_for(lambda: (lambda h: h if set(h.values()) <= alive else None)(
            {s["metadata"]["name"]: (s.get("status") or {}).get("handledBy")
             for s in kube_client.list(kube.MONITORED_SERVICES, namespace)}), 30, "services handled by live replicas")
        print(f"services handled at the end: {dict(Counter(handled.values()))}")
    except AssertionError as exc:
        problems.append(f"{exc}: shard Leases held by {Counter(shard_holders(kube_client, namespace).values())}, "
                        f"live replicas {sorted(alive)}")
    took = {path.stem: len(re.findall("took shards", proc.logs())) for path, proc in logs.items()}
    print(f"'took shards' lines per replica's log: {took}")
    assert not problems, f"seed {seed}:\n" + "\n".join(problems)


def pages_status(client: kube.KubeClient, ns: str) -> str:
    """The notification outbox of incidents not fully paged (for the failure message)."""
    lines = []
    for inc in client.list(kube.INCIDENTS, ns):
        entries = (inc.get("status") or {}).get("notifications") or []
        if any(n.get("result") != "sent" for n in entries) or not set(PAGES) <= {n.get("event") for n in entries}:
            lines.append(f"{inc['metadata']['name']}: notifications "
                         f"{[(n.get('event'), n.get('channel'), n.get('result'), n.get('error')) for n in entries]}")
    return "\n".join(lines)
