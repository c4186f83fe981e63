"""Receiver tokens scoped to namespaces: parsing, the token store, routing outside the scope."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from paramedic import ingest, kube
from paramedic.domain import alert_naming as naming
from paramedic.domain import scope as sc
from paramedic.domain.alert import FIRING, RESOLVED, Alert
from paramedic.settings import Settings, SettingsError
from paramedic.webhook.auth import TokenSource

# --- pure ------------------------------------------------------------------------


def test_scope_home_is_the_first_namespace():
    s = sc.scope("a", ["team-a", "team-a-staging"], "paramedic")
    assert s.home == "team-a" and s.allows("team-a-staging") and not s.allows("team-b")
    assert not s.allows("kube-system") and not s.everywhere


def test_star_alone_means_everywhere_with_paramedic_at_home():
    s = sc.scope("all", ["*"], "paramedic")
    assert s.home == "paramedic" and s.everywhere and s.allows("kube-system")
    assert sc.scope("ops", ["ops", "*"], "paramedic").home == "ops"


@pytest.mark.parametrize("namespaces", [[], [""], ["Team_A"], ["a,b"], ["*x"]])
def test_bad_namespaces_are_refused(namespaces):
    with pytest.raises(sc.ScopeError):
        sc.scope("t", namespaces, "paramedic")


@pytest.mark.parametrize("doc, message", [
    ({"tokens": "x"}, "list"),
    ([{"namespaces": ["a"], "token": "t"}], "name is required"),
    ([{"name": "a", "namespaces": ["a"]}], "exactly one"),
    ([{"name": "a", "namespaces": ["a"], "token": "t", "tokenFile": "/f"}], "exactly one"),
    ([{"name": "a", "namespaces": ["a"], "token": " "}], "non-empty"),
    ([{"name": "a", "namespaces": {"a": 1}, "token": "t"}], "list"),
    ([{"name": "a", "namespaces": ["a"], "token": "t", "extra": 1}], "unknown field"),
    ([{"name": "a", "namespaces": ["a"], "token": "t"}, {"name": "a", "namespaces": ["b"], "token": "u"}], "twice"),

    # A string would be a trap ("false" is truthy): only YAML's booleans are taken.
    ([{"name": "a", "namespaces": ["a"], "token": "t", "remediate": "false"}], "true or false"),
    ([{"name": "a", "namespaces": ["a"], "token": "t", "remediate": 1}], "true or false"),
])
def test_bad_token_entries_are_refused(doc, message):
    with pytest.raises(sc.ScopeError, match=message):
        sc.parse_tokens(doc, "paramedic")


def test_remediation_is_a_right_of_its_own_off_unless_turned_on():
    old, on, off = sc.parse_tokens([{"name": "old", "namespaces": ["a"], "token": "t1"},  # written before it existed
                                    {"name": "on", "namespaces": ["a"], "token": "t2", "remediate": True},
                                    {"name": "off", "namespaces": ["a"], "token": "t3", "remediate": False}],
                                   "paramedic")
    assert (old.scope.remediate, on.scope.remediate, off.scope.remediate) == (False, True, False)
    assert sc.scope("legacy", ["a"], "paramedic").remediate is False


def test_token_lines_allow_two_tokens_during_a_rotation():
    assert sc.token_lines("old\n\n  new  \n") == ["old", "new"]


def test_rehomed_service_cannot_be_a_monitored_service_name():
    service = sc.rehomed_service("team-b", "web")
    assert service == "team-b/web" and "/" in service  # MonitoredService names never hold a "/"
    assert len(sc.rehomed_service("x" * 63, "y" * 300)) == sc.MAX_SERVICE


@pytest.mark.parametrize("service", ["a,spec.state=closed", "x=y", "a\\,b", "web,spec.severity!=high"])
def test_service_field_selector_is_escaped(service):
    selector = naming.service_field_selector(service)
    # Unescaped `,` would add a requirement and `=` would change the one there is: one requirement only.
    requirements = _split_unescaped(selector, ",")
    assert len(requirements) == 1, selector
    key, _, value = requirements[0].partition("=")
    assert key == "spec.service" and _unescape(value) == service


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            current += ch
            escaped = True
        elif ch == sep:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _unescape(value: str) -> str:
    out, escaped = "", False
    for ch in value:
        if escaped or ch != "\\":
            out += ch
            escaped = False
        else:
            escaped = True
    return out


# --- the token store ---------------------------------------------------------------


def bearer(token: str) -> str:
    return f"Bearer {token}"


def settings(**over: Any) -> Settings:
    base: dict[str, Any] = {"namespace": "paramedic"}
    base.update(over)
    return Settings(**base)


def touch_later(path) -> None:
    later = time.time_ns() + 10**9
    os.utime(path, ns=(later, later))


def test_legacy_token_is_scoped_to_paramedics_namespace_by_default():
    s = TokenSource.from_settings(settings(webhook_token="t0"))
    found = s.check(bearer("t0"))
    assert found is not None and found.home == "paramedic" and not found.everywhere
    assert not found.allows("team-a")


def test_legacy_token_everywhere_only_when_the_admin_says_so():
    found = TokenSource.from_settings(settings(webhook_token="t0", webhook_token_namespaces=["*"])).check(bearer("t0"))
    assert found is not None and found.everywhere and found.home == "paramedic"


def test_legacy_token_namespaces_are_validated():
    with pytest.raises(SettingsError, match="TOKEN_NAMESPACES"):
        TokenSource.from_settings(settings(webhook_token="t0", webhook_token_namespaces=["Bad_NS"]))


def test_tokens_file_scopes_each_token(tmp_path):
    secret = tmp_path / "b-token"
    secret.write_text("tok-b\n")
    path = tmp_path / "tokens.yaml"
    path.write_text(json.dumps({"tokens": [
        {"name": "team-a", "namespaces": ["team-a", "team-a-staging"], "token": "tok-a"},
        {"name": "team-b", "namespaces": ["team-b"], "tokenFile": str(secret)},
    ]}))
    s = TokenSource.from_settings(settings(webhook_tokens_file=str(path)))
    a, b = s.check(bearer("tok-a")), s.check(bearer("tok-b"))
    assert a is not None and a.name == "team-a" and a.allows("team-a-staging") and not a.allows("team-b")
    assert b is not None and b.name == "team-b" and b.home == "team-b"
    assert s.check(bearer("tok-c")) is None and s.check(None) is None and s.check("Basic tok-a") is None
    # The tokenFile rotates on its own (its own Secret): two lines, both valid during the overlap.
    secret.write_text("tok-b\ntok-b2\n")
    touch_later(secret)
    assert s.check(bearer("tok-b")) == b and s.check(bearer("tok-b2")) == b
    secret.write_text("tok-b2\n")
    touch_later(secret)
    assert s.check(bearer("tok-b")) is None and s.check(bearer("tok-b2")) == b


def test_rotation_in_the_tokens_file_keeps_both_tokens_during_the_overlap(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("- {name: a, namespaces: [team-a], token: old}\n")
    s = TokenSource.from_settings(settings(webhook_tokens_file=str(path)))
    path.write_text("- {name: a, namespaces: [team-a], token: old}\n- {name: a-next, namespaces: [team-a], token: new}\n")
    touch_later(path)
    old, new = s.check(bearer("old")), s.check(bearer("new"))
    assert old is not None and new is not None and old.namespaces == new.namespaces
    path.write_text("- {name: a-next, namespaces: [team-a], token: new}\n")
    touch_later(path)
    assert s.check(bearer("old")) is None and s.check(bearer("new")) is not None


def test_a_broken_tokens_file_keeps_the_previous_tokens(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("- {name: a, namespaces: [team-a], token: old}\n")
    s = TokenSource.from_settings(settings(webhook_tokens_file=str(path)))
    path.write_text("- {name: a, namespaces: [team-a]\n")  # half-written YAML
    touch_later(path)
    assert s.check(bearer("old")) is not None
    path.unlink()
    assert s.check(bearer("old")) is not None
    path.write_text("- {name: a, namespaces: [team-a], token: fixed}\n")  # repaired: read again
    touch_later(path)
    assert s.check(bearer("old")) is None and s.check(bearer("fixed")) is not None


def test_a_broken_tokens_file_refuses_to_start(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("- {name: a, namespaces: [Team_A], token: x}\n")
    with pytest.raises(SettingsError, match="Team_A"):
        TokenSource.from_settings(settings(webhook_tokens_file=str(path)))
    with pytest.raises(SettingsError, match="TOKENS_FILE"):
        TokenSource.from_settings(settings(webhook_tokens_file=str(tmp_path / "missing")))


def test_one_token_with_two_scopes_is_refused(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("- {name: a, namespaces: [team-a], token: same}\n")
    with pytest.raises(SettingsError, match="same token"):
        TokenSource.from_settings(settings(webhook_tokens_file=str(path), webhook_token="same"))


def test_legacy_and_scoped_tokens_together(tmp_path):
    path = tmp_path / "tokens.yaml"
    path.write_text("- {name: a, namespaces: [team-a], token: tok-a}\n")
    s = TokenSource.from_settings(settings(webhook_tokens_file=str(path), webhook_token="legacy",
                                           webhook_token_namespaces=["*"]))
    assert s.check(bearer("legacy")).everywhere and not s.check(bearer("tok-a")).everywhere


def test_the_documented_tokens_secret_parses():
    from pathlib import Path

    import yaml
    docs = list(yaml.safe_load_all((Path(__file__).parents[2] / "manifests" / "secret.example.yaml").read_text()))
    [secret] = [d for d in docs if d["metadata"]["name"] == "paramedic-webhook-tokens"]
    entries = sc.parse_tokens(yaml.safe_load(secret["stringData"]["tokens.yaml"]), "paramedic")
    assert [(e.scope.name, e.scope.home, sorted(e.scope.namespaces)) for e in entries] == [
        ("team-a", "team-a", ["team-a", "team-a-staging"]), ("team-b", "team-b", ["team-b"])]


# --- routing outside the scope ------------------------------------------------------


class FakeClient:
    """Answers the router's reads: MonitoredServices per namespace, 403 where the receiver may not read."""

    def __init__(self, services: dict[str, list[dict]], forbidden: set[str]):
        self.services, self.forbidden, self.reads = services, forbidden, []

    def list(self, res: kube.Resource, namespace: str | None = None, **_: Any) -> list[dict]:
        self.reads.append(namespace)
        if namespace in self.forbidden:
            raise kube.ApiError(403, f"forbidden in {namespace}", "Forbidden")
        return self.services.get(namespace or "", [])

    def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None:
        return {"metadata": {"name": name}}


def alert(namespace: str, service: str, status: str = FIRING) -> Alert:
    return Alert(fingerprint=f"{namespace}-{service}", status=status,
                     labels={"alertname": "Down", "namespace": namespace, "service": service},
                     annotations={}, starts_at=datetime(2026, 3, 2, 10, tzinfo=UTC))


def service(name: str, namespace: str) -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {}}


def test_router_rehomes_alerts_outside_the_scope_without_reading_there():
    client = FakeClient({"team-a": [service("web", "team-a")], "team-b": [service("web", "team-b")]}, set())
    scope = sc.scope("a", ["team-a"], "paramedic", remediate=True)
    router = ingest._Router(client, settings(), None, None, scope)  # type: ignore[arg-type]
    groups = router.route([alert("team-a", "web"), alert("team-b", "web"), alert("kube-system", "dns"),
                           alert("team-b", "web", RESOLVED)])
    own = {k: g for k, g in groups.items() if not g.claimed}
    assert list(own) == [("team-a", "web", "high")] and own[("team-a", "web", "high")].managed
    rehomed = {k: g for k, g in groups.items() if g.claimed}
    assert {k[:2] for k in rehomed} == {("team-a", "team-b/web"), ("team-a", "kube-system/dns")}
    assert all(not g.managed and g.service is None and "unmanaged" in g.note for g in rehomed.values())
    assert router.rehomed == 3
    assert "team-b" not in client.reads and "kube-system" not in client.reads


def test_alerts_of_a_token_without_the_remediation_right_are_recorded_unmanaged():
    client = FakeClient({"team-a": [service("web", "team-a")]}, set())
    router = ingest._Router(client, settings(), None, None,  # type: ignore[arg-type]
                            sc.scope("a", ["team-a"], "paramedic"))  # remediate: off by default
    [(key, group)] = router.route([alert("team-a", "web")]).items()
    # Where it belongs, with its service (team, SLA, paging), but never remediated.
    assert key == ("team-a", "web", "high") and not group.managed and group.service is not None
    assert group.note_type == sc.UNREMEDIATED_TIMELINE_TYPE and "'a' may not trigger remediation" in group.note
    assert router.rehomed == 0


def test_router_turns_other_refusals_of_a_namespace_into_rehoming():
    class Refusing(FakeClient):
        def list(self, res: kube.Resource, namespace: str | None = None, **_: Any) -> list[dict]:
            raise kube.ApiError(400, "bad request", "BadRequest")

    router = ingest._Router(Refusing({}, set()), settings(), None, None,  # type: ignore[arg-type]
                            ingest.everywhere(settings()))
    [(key, group)] = router.route([alert("team-a", "web")]).items()
    assert key == ("paramedic", "team-a/web", "high") and group.reason == sc.REASON_REFUSED
    assert "400" in group.note and "refused" in group.note and router.reasons


def test_router_rehomes_alerts_of_a_namespace_it_may_not_read():
    client = FakeClient({"team-a": [service("web", "team-a")]}, {"unwatched"})
    router = ingest._Router(client, settings(), None, None, ingest.everywhere(settings()))  # type: ignore[arg-type]
    groups = router.route([alert("unwatched", "api"), alert("team-a", "web")])
    assert ("team-a", "web", "high") in groups and groups[("team-a", "web", "high")].managed
    [(key, group)] = [(k, g) for k, g in groups.items() if g.claimed]
    assert key == ("paramedic", "unwatched/api", "high") and group.claimed == "unwatched"
    assert "Paramedic may not read or write" in group.note


def test_router_still_raises_what_is_worth_retrying():
    class Down(FakeClient):
        def list(self, *a: Any, **k: Any) -> list[dict]:
            raise kube.Unavailable("connection refused")

    router = ingest._Router(Down({}, set()), settings(), None, None, None)  # type: ignore[arg-type]
    with pytest.raises(kube.Unavailable):
        router.route([alert("team-a", "web")])
