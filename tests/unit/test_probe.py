from datetime import UTC, datetime, timedelta

from paramedic.domain.probe import (
    DEGRADED,
    DOWN,
    HEALTHY,
    UNKNOWN,
    ProbeFailure,
    ProbeSpec,
    ProbeState,
    advance,
    availability,
    classify,
    in_maintenance,
    incident_name,
    probe_url,
    write_phase,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SPEC = ProbeSpec(url="http://x/healthz", expected_status=200, interval=10, timeout=2, latency_threshold_ms=500,
                 failure_threshold=3, success_threshold=2)


def ok(t):
    return classify(SPEC, t, status_code=200, latency_ms=20)


def bad(t, **kw):
    kw.setdefault("status_code", 500)
    kw.setdefault("latency_ms", 20)
    return classify(SPEC, t, **kw)


def test_classification_names_the_reason():
    assert ok(T0).ok
    assert bad(T0).error == "status 500, expected 200"
    slow = classify(SPEC, T0, status_code=200, latency_ms=900)
    assert not slow.ok and slow.slow and "latency 900 ms over threshold 500 ms" in slow.error
    err = classify(SPEC, T0, status_code=None, latency_ms=2000, failure=ProbeFailure.TIMEOUT)
    assert not err.ok and not err.slow and err.error == "timeout after 2s" and err.failure is ProbeFailure.TIMEOUT
    assert bad(T0).failure is ProbeFailure.STATUS and slow.failure is ProbeFailure.SLOW and ok(T0).failure is None


def run(results):
    state, steps = ProbeState(), []
    for r in results:
        step = advance(state, r, SPEC)
        steps.append(step)
        state = step.state
    return state, steps


def test_failure_threshold_opens_exactly_one_incident():
    ts = [T0 + timedelta(seconds=10 * i) for i in range(8)]
    state, steps = run([ok(ts[0])] + [bad(t) for t in ts[1:]])
    assert [s.open_incident for s in steps] == [False, False, False, True, False, False, False, False]
    assert state.health == DOWN and state.outage_count == 1


def test_recovery_needs_success_threshold_and_flaps_do_not_reopen():
    ts = [T0 + timedelta(seconds=10 * i) for i in range(10)]
    seq = [ok(ts[0]), bad(ts[1]), bad(ts[2]), bad(ts[3]), ok(ts[4]), bad(ts[5]), ok(ts[6]), ok(ts[7])]
    state, steps = run(seq)
    assert [s.open_incident for s in steps].count(True) == 1
    assert [s.recovered for s in steps] == [False] * 7 + [True]
    assert state.health == HEALTHY


def test_an_open_incident_absorbs_the_next_outage():
    state = ProbeState(health=HEALTHY, open_incident="x-down-1", outage_count=1)
    for i in range(3):
        step = advance(state, bad(T0 + timedelta(seconds=i)), SPEC)
        state = step.state
        assert not step.open_incident


def test_slow_means_degraded():
    ts = [T0 + timedelta(seconds=10 * i) for i in range(3)]
    state, _ = run([classify(SPEC, t, status_code=200, latency_ms=900) for t in ts])
    assert state.health == DEGRADED


def test_steady_state_is_not_persisted_every_probe():
    state, steps = run([ok(T0 + timedelta(seconds=10 * i)) for i in range(20)])
    persisted = [s.persist for s in steps]
    # first probe (Unknown -> Healthy), second (counter reaches threshold), then only bucket roll-overs
    assert persisted[:2] == [True, True]
    assert sum(persisted[2:]) <= 1


def test_steady_state_writes_are_spread_over_the_bucket_by_service():
    # 300 steady services probed every 10 s for 20 minutes: each writes its steady
    # state once per bucket, and not all in the same probe round.
    rounds = 120
    write_rounds: dict[int, int] = {}
    for n in range(300):
        phase = write_phase(f"shop/svc-{n}")
        state = ProbeState(health=HEALTHY, consecutive_successes=2, last_probe={"time": "2026-11-01T11:59:55Z"})
        writes = 0
        for i in range(rounds):
            step = advance(state, ok(T0 + timedelta(seconds=10 * i)), SPEC, phase)
            state = step.state
            if step.persist:
                writes += 1
                write_rounds[i % 30] = write_rounds.get(i % 30, 0) + 1
        assert 3 <= writes <= 5, (n, writes)
    assert len(write_rounds) == 30, "every round of a bucket carries some services' writes"
    assert max(write_rounds.values()) < 300 * 4 / 10, write_rounds
    assert write_phase("shop/a") == write_phase("shop/a") and 0 <= write_phase("shop/a") < 300


def test_status_round_trip_and_availability():
    state, _ = run([ok(T0), bad(T0 + timedelta(seconds=10)), ok(T0 + timedelta(seconds=20)),
                    ok(T0 + timedelta(seconds=30))])
    status = state.to_status(T0 + timedelta(seconds=30))
    again = ProbeState.from_status(status)
    assert again.history == state.history and again.health == state.health
    assert status["availability"]["lastHour"] == "75.00%"
    assert availability((), T0, 3600) is None


def test_unknown_until_first_probe():
    assert ProbeState().health == UNKNOWN


def test_names_and_urls():
    assert incident_name("checkout", 3) == "checkout-down-3"
    assert len(incident_name("x" * 300, 1)) <= 253
    assert probe_url({"service": {"name": "api", "port": 8080, "path": "healthz"}}, "shop") == \
        "http://api.shop.svc:8080/healthz"


def run_with_window(results, window):
    """Probe results through `advance` and a maintenance window (`window(t)`: is t inside one);
    the state goes through status at each step, as a restarted operator would read it."""
    state, steps = ProbeState(), []
    for r in results:
        step = in_maintenance(advance(state, r, SPEC), window(r.time))
        steps.append(step)
        state = ProbeState.from_status(step.state.to_status(r.time))
    return state, steps


def test_an_outage_in_a_window_is_held_and_opens_its_incident_when_it_outlasts_the_window():
    ts = [T0 + timedelta(seconds=10 * i) for i in range(8)]
    state, steps = run_with_window([ok(ts[0])] + [bad(t) for t in ts[1:]], lambda t: t < ts[5])
    assert [s.open_incident for s in steps] == [False, False, False, False, False, True, False, False]
    held = [s.state.outage_held for s in steps]
    assert held == [False, False, False, True, True, False, False, False]
    assert steps[3].persist, "the hold is written, so an operator restarted in the window still knows"
    assert state.health == DOWN and state.outage_count == 1


def test_a_held_outage_that_recovers_in_the_window_opens_nothing_and_is_let_go():
    ts = [T0 + timedelta(seconds=10 * i) for i in range(9)]
    seq = [ok(ts[0]), bad(ts[1]), bad(ts[2]), bad(ts[3]), ok(ts[4]), ok(ts[5]), bad(ts[6]), bad(ts[7]), ok(ts[8])]
    state, steps = run_with_window(seq, lambda t: t < ts[7])
    assert not any(s.open_incident for s in steps)
    assert [s.state.outage_held for s in steps][3:6] == [True, True, False] and steps[5].persist
    assert not state.outage_held and state.health == HEALTHY


def test_one_success_inside_a_held_outage_does_not_let_it_go():
    ts = [T0 + timedelta(seconds=10 * i) for i in range(8)]
    seq = [ok(ts[0]), bad(ts[1]), bad(ts[2]), bad(ts[3]), ok(ts[4]), bad(ts[5]), bad(ts[6]), bad(ts[7])]
    _, steps = run_with_window(seq, lambda t: t < ts[6])
    assert [s.open_incident for s in steps] == [False] * 6 + [True, False]


def test_no_window_changes_nothing():
    ts = [T0 + timedelta(seconds=10 * i) for i in range(6)]
    state = ProbeState()
    for r in [ok(ts[0])] + [bad(t) for t in ts[1:]]:
        step = advance(state, r, SPEC)
        assert in_maintenance(step, False) == step
        state = step.state


def test_an_outage_held_under_an_open_incident_opens_no_second_one():
    state = ProbeState(health=DOWN, open_incident="x-down-1", outage_count=1, outage_held=True)
    step = in_maintenance(advance(state, bad(T0), SPEC), False)
    assert not step.open_incident


def test_a_recovered_probe_writes_null_for_the_keys_it_no_longer_has():
    # Status is written with a JSON merge patch: a key left out stays on the API server's copy,
    # so the write names every lastProbe key and sets the absent ones to null.
    failed, _ = run([classify(SPEC, T0, status_code=None, latency_ms=2000, failure=ProbeFailure.TIMEOUT)])
    assert failed.to_status(T0)["lastProbe"]["reason"] == "Timeout"
    recovered = advance(failed, ok(T0 + timedelta(seconds=10)), SPEC).state
    last = recovered.to_status(T0)["lastProbe"]
    assert last["error"] is None and last["reason"] is None and last["ok"] is True, last
    assert set(last) == {"time", "ok", "statusCode", "latencyMs", "reason", "error"}
    # Read back (the API server drops nulls), the state holds no null keys either.
    assert ProbeState.from_status({"lastProbe": last}).last_probe == {k: v for k, v in last.items() if v is not None}


def test_failure_messages_are_built_from_the_class_alone():
    for failure in ProbeFailure:
        text = classify(SPEC, T0, status_code=503, latency_ms=900, failure=failure, address_class="private").error
        assert text and "None" not in text, (failure, text)
    forbidden = classify(SPEC, T0, status_code=None, latency_ms=1, failure=ProbeFailure.FORBIDDEN,
                         address_class="private")
    assert forbidden.error.startswith("refused: the target is a private address") and "PROBE_ALLOW_CIDRS" in forbidden.error
