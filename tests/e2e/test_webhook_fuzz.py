"""Random request bodies against the receiver backed by the real control plane: never a 5xx.

(Moved from tests/unit/test_webhook_http.py: it needs an API server, so `make unit` starts none.)
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from paramedic.webhook.app import create_app
from tests.unit.test_webhook_http import AUTH, make_settings

pytestmark = pytest.mark.e2e

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=25)
_label_text = st.text(max_size=12).filter(lambda s: s != "namespace")


@st.composite
def near_valid_payload(draw, namespace: str):
    """Alertmanager-shaped bodies with random holes and wrong types in them."""
    def maybe(strategy, valid):
        return draw(st.one_of(st.just(valid), strategy))

    alerts = []
    for _ in range(draw(st.integers(0, 3))):
        labels = draw(st.dictionaries(_label_text, st.text(max_size=12), max_size=4))
        labels["namespace"] = draw(st.sampled_from([namespace, "does-not-exist-x1"]))
        alert = {
            "status": maybe(_json, draw(st.sampled_from(["firing", "resolved"]))),
            "labels": maybe(_json, labels),
            "annotations": maybe(_json, {"summary": draw(st.text(max_size=20))}),
            "startsAt": maybe(_json, draw(st.sampled_from(["2026-03-02T10:00:00Z", "2026-03-02T10:00:00.5+02:00",
                                                           "0001-01-01T00:00:00Z"]))),
            "endsAt": maybe(_json, "0001-01-01T00:00:00Z"),
            "fingerprint": maybe(_json, draw(st.text(alphabet="0123456789abcdef", min_size=1, max_size=16))),
        }
        for key in draw(st.lists(st.sampled_from(list(alert)), max_size=2)):
            alert.pop(key, None)
        alerts.append(alert)
    return {"version": maybe(_json, "4"), "status": "firing", "alerts": maybe(_json, alerts)}


def test_random_bodies_never_get_a_5xx(kube_client, namespace):
    app = create_app(make_settings(namespace=namespace, webhook_max_body_bytes=10**6), kube_client)
    c = app.test_client()

    @hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(_json, near_valid_payload(namespace)), st.sampled_from(["/api/v1/alertmanager", "/api/v1/alerts"]))
    def check(body, path):
        resp = c.post(path, data=json.dumps(body), headers=AUTH, content_type="application/json")
        assert 200 <= resp.status_code < 500, (resp.status_code, resp.data, body)
        assert resp.get_json() is not None

    check()
