"""domain/status_patch: merge patches that remove what is gone."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from paramedic.domain.status_patch import apply, changes, replace, set_keys


def _no_nulls(value: Any) -> Any:
    """What the API server stores for `value`: a merge patch cannot store a null."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    return value


_keys = st.sampled_from(["a", "b", "c", "health", "lastProbe", "error"])
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=3))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(_keys, inner, max_size=3)), max_leaves=8)
_objects = st.dictionaries(_keys, _values, max_size=4)
_stored = _objects.map(_no_nulls)  # what the API server can hold


def test_the_demo_case_a_healthy_service_loses_its_old_probe_error() -> None:
    old = {"health": "Unhealthy", "lastProbe": {"time": "t1", "ok": False, "error": "status 500"}, "outageCount": 1}
    new = {"health": "Healthy", "lastProbe": {"time": "t2", "ok": True}}
    patch = set_keys(old, new)
    assert patch == {"health": "Healthy", "lastProbe": {"time": "t2", "ok": True, "error": None}}
    assert apply(old, patch) == {"health": "Healthy", "lastProbe": {"time": "t2", "ok": True}, "outageCount": 1}


def test_replace_removes_gone_keys_at_every_depth() -> None:
    old = {"current": {"name": "a", "email": "a@x", "override": True}, "next": {"name": "b"}, "stale": 1}
    new = {"current": {"name": "c", "email": "c@x"}, "next": {"name": "b"}}
    assert replace(old, new) == {"current": {"name": "c", "email": "c@x", "override": None},
                                 "next": {"name": "b"}, "stale": None}


def test_set_keys_leaves_the_keys_it_does_not_own() -> None:
    old = {"conditions": [{"type": "Ready"}], "remediation": {"inFlight": "inc-1", "recent": [], "old": "x"}}
    patch = set_keys(old, {"remediation": {"inFlight": "inc-2", "recent": ["t"]}})
    assert patch == {"remediation": {"inFlight": "inc-2", "recent": ["t"], "old": None}}
    assert apply(old, patch) == {"conditions": [{"type": "Ready"}], "remediation": {"inFlight": "inc-2", "recent": ["t"]}}


def test_a_value_that_stops_being_an_object_replaces_it() -> None:
    assert replace({"a": {"x": 1}}, {"a": 2}) == {"a": 2}
    assert apply({"a": {"x": 1}}, {"a": 2}) == {"a": 2}
    assert replace({"a": 2}, {"a": {"x": 1}}) == {"a": {"x": 1}}


def test_lists_are_replaced_whole() -> None:
    assert replace({"l": [1, 2, 3]}, {"l": [1]}) == {"l": [1]}


def test_changes() -> None:
    old = {"a": {"x": 1}, "b": 2}
    assert not changes(old, replace(old, {"a": {"x": 1}, "b": 2}))
    assert changes(old, replace(old, {"a": {"x": 1}}))
    assert changes(old, set_keys(old, {"a": {}}))
    assert not changes(None, {"a": None})


@given(_stored, _objects)
def test_replace_then_apply_gives_new(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert apply(old, replace(old, new)) == _no_nulls(new)


@given(_stored, _objects)
def test_set_keys_then_apply_gives_new_keys_over_the_rest(old: dict[str, Any], new: dict[str, Any]) -> None:
    expected = {k: v for k, v in old.items() if k not in new} | _no_nulls(new)
    assert apply(old, set_keys(old, new)) == expected


@given(_stored, _objects)
def test_the_inputs_are_not_changed(old: dict[str, Any], new: dict[str, Any]) -> None:
    before_old, before_new = repr(old), repr(new)
    apply(old, replace(old, new))
    assert (repr(old), repr(new)) == (before_old, before_new)
