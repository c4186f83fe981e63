"""Bad input to the receiver: over 10,000 generated bodies (property-based) and the nastiest
hand-made ones (oversized, 100k-deep nesting, invalid UTF-8, lone surrogates). The
answer is always 2xx or 4xx with a JSON error, never a crash, and the receiver keeps
serving.

The generated bodies go through the Flask test client (fast) backed by the real API
server: bodies that parse reach it and are written. The hand-made ones go through the
real gunicorn server.
"""

from __future__ import annotations

import json
import socket
import uuid

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from paramedic import kube
from paramedic.settings import Settings
from paramedic.webhook.app import create_app
from tests.helpers import wait_for

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

TOKEN = "fuzz-" + uuid.uuid4().hex
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 256 * 1024
PATHS = ["/api/v1/alertmanager", "/api/v1/alerts"]

# Hypothesis examples per property; each example yields one to four request bodies (the
# document as is, to both endpoints, truncated, with a byte flipped): 10,300 bodies in all.
# PARAMEDIC_CHAOS_FUZZ_SCALE scales them for quick runs.
import os  # noqa: E402

_SCALE = float(os.environ.get("PARAMEDIC_CHAOS_FUZZ_SCALE", "1"))
ANY_JSON = int(1500 * _SCALE)      # x4 bodies
NEAR_VALID = int(800 * _SCALE)     # x2
GENERIC = int(600 * _SCALE)        # x2
RAW_BYTES = int(1500 * _SCALE)     # x1
BODIES = 4 * ANY_JSON + 2 * NEAR_VALID + 2 * GENERIC + RAW_BYTES

_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**70, max_value=2**70)
            | st.floats(allow_nan=False) | st.text(max_size=16) | st.sampled_from(["firing", "resolved", "4", "", "\x00"]))
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(
    st.sampled_from(["alerts", "labels", "status", "version", "startsAt", "fingerprint", "service", "severity",
                     "message", "annotations"]) | st.text(max_size=8), inner, max_size=5), max_leaves=30)
# Label values and names from a small alphabet: duplicates are common (the dedup path), and
# incidents stay small. The namespace label is always the test's (or one that does not exist).
_short = st.text(alphabet="abcxyz-_.:/ é\n\"'{}$", min_size=0, max_size=6)
GOOD_TIMES = ["2026-03-02T10:00:00Z", "2026-03-02T10:00:00.123456789+02:00", "2026-03-02T11:30:00.5Z"]
LABEL_NAMES = ["app", "service", "instance", "env", "instance", "job", "", "é", "a b"]
TIMES = ["2026-03-02T10:00:00Z", "2026-03-02T10:00:00.123456789+02:00", "0001-01-01T00:00:00Z", "not a time",
         "2026-13-45T99:99:99Z", "9999-12-31T23:59:59Z", ""]


def _maybe(draw, valid):
    # Mostly the valid value; sometimes a wrong scalar or a small wrong structure (cheap to draw).
    pick = draw(st.integers(0, 19))
    if pick < 18:
        return valid
    return draw(_scalars if pick == 18 else st.lists(_scalars, max_size=2))


@st.composite
def near_valid_alertmanager(draw, namespace: str):
    alerts = []
    for _ in range(draw(st.integers(0, 4)) or draw(st.integers(0, 1))):
        labels = {"alertname": draw(_short), "namespace": draw(st.sampled_from([namespace, "no-such-ns-fuzz"])),
                  draw(st.sampled_from(LABEL_NAMES)): draw(_short)}
        alert = {"status": _maybe(draw, draw(st.sampled_from(["firing", "resolved"]))),
                 "labels": _maybe(draw, labels),
                 "annotations": _maybe(draw, {"summary": draw(_short)}),
                 "startsAt": _maybe(draw, draw(st.sampled_from(GOOD_TIMES))),
                 "endsAt": _maybe(draw, draw(st.sampled_from(["0001-01-01T00:00:00Z"] * 3 + TIMES))),
                 "generatorURL": _maybe(draw, "http://prometheus/graph"),
                 "fingerprint": _maybe(draw, draw(st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)
                                                  | st.text(alphabet="0123456789abcdefg", max_size=17)))}
        if draw(st.integers(0, 9)) == 0:
            alert.pop(draw(st.sampled_from(list(alert))))
        alerts.append(alert)
    return {"version": _maybe(draw, "4"), "status": "firing", "receiver": "paramedic", "groupKey": "{}",
            "truncatedAlerts": _maybe(draw, 0), "alerts": _maybe(draw, alerts)}


@st.composite
def generic_alert(draw, namespace: str):
    def one():
        labels = {"namespace": namespace, draw(st.sampled_from(LABEL_NAMES)): draw(_short)}
        body = {"service": _maybe(draw, "s" + draw(_short)),
                "severity": _maybe(draw, draw(st.sampled_from(["critical", "high", "medium", "low", "warning", ""]))),
                "message": _maybe(draw, "m" + draw(_short)), "labels": _maybe(draw, labels),
                "timestamp": _maybe(draw, draw(st.sampled_from(GOOD_TIMES + [None]))),
                "status": _maybe(draw, draw(st.sampled_from(["firing", "firing", "resolved", "x"])))}
        if draw(st.integers(0, 9)) == 0:
            body.pop(draw(st.sampled_from(list(body))))
        return body

    return one() if draw(st.booleans()) else [one() for _ in range(draw(st.integers(0, 3)))]


@pytest.fixture
def fuzz_client(kube_client, namespace):
    app = create_app(Settings(webhook_token=TOKEN, namespace=namespace, webhook_max_body_bytes=MAX_BODY), kube_client)
    return app.test_client()


class Tally:
    def __init__(self) -> None:
        self.codes: dict[int, int] = {}

    def check(self, resp, body) -> None:
        self.codes[resp.status_code] = self.codes.get(resp.status_code, 0) + 1
        assert resp.status_code < 500 and resp.status_code >= 200, (resp.status_code, resp.data[:500], body)
        out = resp.get_json()
        assert isinstance(out, dict), resp.data[:200]
        if resp.status_code >= 400:
            assert out.get("error"), out

    @property
    def total(self) -> int:
        return sum(self.codes.values())


def _settings(n: int) -> hsettings:
    # derandomize: CI runs the same cases every time (deterministic, like the rest of the suite).
    return hsettings(max_examples=n, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(HealthCheck))


def test_generated_bodies_never_crash_the_receiver(fuzz_client, kube_client, namespace):
    tally = Tally()

    def post(path: str, data: bytes, body, ctype: str = "application/json") -> None:
        tally.check(fuzz_client.post(path, data=data, headers=AUTH, content_type=ctype), body)

    @_settings(ANY_JSON)
    @given(_json, st.integers(0, 10**6), st.integers(0, 255))
    def any_json(body, cut, byte):
        data = json.dumps(body).encode()
        post(PATHS[0], data, body)
        post(PATHS[1], data, body)
        post(PATHS[cut % 2], data[:cut % (len(data) + 1)], body)  # truncated
        flipped = bytearray(data)
        flipped[cut % len(flipped)] ^= byte or 0x80
        post(PATHS[byte % 2], bytes(flipped), body)

    @_settings(NEAR_VALID)
    @given(near_valid_alertmanager(namespace), st.integers(0, 10**6))
    def near_valid(body, cut):
        data = json.dumps(body).encode()
        post(PATHS[0], data, body)
        post(PATHS[0], data[:cut % (len(data) + 1)], body)

    @_settings(GENERIC)
    @given(generic_alert(namespace), st.integers(0, 10**6))
    def generic(body, cut):
        data = json.dumps(body).encode()
        post(PATHS[1], data, body)
        post(PATHS[1], data[:cut % (len(data) + 1)], body)

    @_settings(RAW_BYTES)
    @given(st.one_of(st.binary(max_size=300), st.builds(lambda s: s.encode("utf-8", "surrogatepass"), st.text(max_size=50))),
           st.sampled_from(PATHS), st.sampled_from(["application/json", "application/json; charset=latin-1",
                                                    "text/plain", "application/json; boundary=x"]))
    def raw(body, path, ctype):
        post(path, body, body, ctype)

    for prop in (any_json, near_valid, generic, raw):
        prop()
    written = kube_client.list(kube.INCIDENTS, namespace)
    alerts = sum(len((i.get("status") or {}).get("alerts") or []) for i in written)
    print(f"\nfuzz: {tally.total} bodies, answers {dict(sorted(tally.codes.items()))}, "
          f"{len(written)} incidents holding {alerts} alerts written")
    assert tally.total >= BODIES * 0.99  # hypothesis may skip an example it generated twice
    assert tally.codes.get(200, 0) >= BODIES * 0.03, "hardly any body was accepted: the API server path went untested"
    assert written, "nothing reached the API server"


def _raw_post(port: int, head: bytes, body_chunks, timeout: float = 30) -> bytes:
    """HTTP/1.1 by hand: for Content-Length lies and chunked bodies no client library sends."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed: read what it said
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
        return data


def test_nasty_bodies_through_gunicorn(kube_client, namespace, webhooks, kubeconfig):
    hook = webhooks(kubeconfig, namespace, TOKEN)
    url = hook.url + "/api/v1/alertmanager"
    depth = 100_000
    cases = {
        "100k nested arrays": b"[" * depth + b"]" * depth,
        "100k nested objects": b'{"a":' * depth + b"1" + b"}" * depth,
        "invalid UTF-8": b'{"alerts": [{"labels": {"a": "\xc3\x28\xff"}}]}',
        "overlong UTF-8 slash": b'{"alerts": "\xc0\xaf"}',
        "UTF-16": json.dumps({"alerts": []}).encode("utf-16"),
        "NUL bytes": b'{"alerts": []}\x00\x00',
        "huge integer": b'{"version": "4", "alerts": [], "truncatedAlerts": ' + b"9" * 5000 + b"}",
        "2 MB string": b'{"alerts": [], "x": "' + b"a" * (2 * 1024 * 1024) + b'"}',
        "10k alerts": json.dumps({"version": "4", "alerts": [{"status": "firing", "labels": {}}] * 10000}).encode(),
    }
    answers = {}
    with httpx.Client(headers=AUTH, timeout=60) as http:
        # A lone surrogate in an otherwise valid alert is text to cut, not a refusal: the alert
        # is recorded, U+FFFD in its place (every alert is recorded on its own).
        lone = (b'{"version": "4", "alerts": [{"status": "firing", "labels": {"alertname": "Lone\\udfff", '
                b'"namespace": "' + namespace.encode() + b'"}, "startsAt": "2026-03-02T10:00:00Z"}]}')
        resp = http.post(url, content=lone, headers={"Content-Type": "application/json"})
        assert resp.status_code == 200 and resp.json()["created"] == 1, resp.text[:300]
        [recorded] = kube_client.list(kube.INCIDENTS, namespace)
        assert "\ufffd" in json.dumps(recorded, ensure_ascii=False), recorded["spec"]
        answers["lone surrogate"] = 200
        for name, body in cases.items():
            resp = http.post(url, content=body, headers={"Content-Type": "application/json"})
            answers[name] = resp.status_code
            assert resp.status_code in (400, 413), (name, resp.status_code, resp.text[:300])
            assert resp.json()["error"], name
    # Lies and streams, by hand: a Content-Length far over the limit (refused before the body
    # is read), and an endless chunked body (cut off at the limit).
    head = (f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\n").encode()
    declared = _raw_post(hook.port, head + b"Content-Length: 50000000000\r\n\r\n", [b"[" * 1000])
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
    chunk = b"[" * 65536
    chunked = _raw_post(hook.port, head + b"Transfer-Encoding: chunked\r\n\r\n",
                        (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(200)))
    assert chunked.startswith(b"HTTP/1.1 413"), chunked[:200]
    answers["50 GB Content-Length"] = 413
    answers["13 MB chunked"] = 413
    print(f"\nnasty bodies: {answers}")

    # Still serving, same process, and a good alert still lands.
    assert hook.proc.poll() is None
    good = {"service": "survivor", "severity": "low", "message": "still here", "labels": {"namespace": namespace}}
    resp = wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
        httpx.post(hook.url + "/api/v1/alerts", json=good, headers=AUTH, timeout=30)), 30, "a good alert accepted")
    assert resp.json()["created"] == 1
    assert "WORKER TIMEOUT" not in hook.logs() and "Traceback" not in hook.logs(), hook.logs()[-3000:]
