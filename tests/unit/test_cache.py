"""The one watch-fed cache (`paramedic.informer.Cache`): the operator's and the informers'."""

from __future__ import annotations

from paramedic.informer import Cache


def obj(name: str, rv: int, namespace: str = "shop", **spec: str) -> dict:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": str(rv)}, "spec": spec}


def names(items: list[dict]) -> list[str]:
    return sorted(f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in items)


def test_objects_are_kept_by_namespace_and_name():
    cache = Cache()
    assert cache.put(obj("api", 1)) == ("shop", "api")
    cache.put(obj("api", 2, namespace="cart"))  # the same name elsewhere is another object
    assert names(cache.values()) == ["cart/api", "shop/api"] and len(cache) == 2
    assert cache.get(("cart", "api")) == obj("api", 2, namespace="cart")
    assert cache.drop(obj("api", 3)) == ("shop", "api")
    assert names(cache.values()) == ["cart/api"] and cache.get(("shop", "api")) is None


def test_an_older_body_never_replaces_a_newer_one():
    cache = Cache()
    cache.put(obj("api", 5, v="new"))
    cache.put(obj("api", 4, v="old"))  # a watch event after our own write's answer
    assert cache.get(("shop", "api"))["spec"] == {"v": "new"}
    cache.put(obj("api", 5, v="same"))
    assert cache.get(("shop", "api"))["spec"] == {"v": "same"}


def test_reset_replaces_everything_and_the_index():
    cache = Cache(index=lambda body: body["spec"].get("service"))
    cache.put(obj("a", 1, service="checkout"))
    cache.reset([obj("b", 1, service="cart")])
    assert names(cache.values()) == ["shop/b"]
    assert cache.indexed("checkout") == [] and names(cache.indexed("cart")) == ["shop/b"]


def test_views_are_built_once_per_change():
    cache = Cache()
    built: list[int] = []

    def build(items: list[dict]) -> list[str]:
        built.append(1)
        return names(items)

    cache.put(obj("a", 1))
    assert cache.view(build) == ["shop/a"] and cache.view(build) == ["shop/a"] and len(built) == 1
    cache.put(obj("b", 1))
    assert cache.view(build) == ["shop/a", "shop/b"] and len(built) == 2
    cache.put(obj("b", 0))  # older: nothing changed
    cache.view(build)
    assert len(built) == 2
    cache.drop(obj("a", 2))
    assert cache.view(build) == ["shop/b"] and len(built) == 3
    cache.drop(obj("gone", 2))  # nothing to drop: nothing changed
    cache.view(build)
    assert len(built) == 3


def test_the_generation_moves_with_every_change_and_only_then():
    cache = Cache()
    start = cache.generation
    cache.put(obj("api", 1))
    after_put = cache.generation
    assert after_put != start
    cache.get(("shop", "api"))
    cache.values()
    cache.drop(obj("gone", 1))  # nothing to drop
    assert cache.generation == after_put  # reads and no-ops change nothing
    cache.put(obj("api", 0))  # older than what is kept: not stored
    assert cache.generation == after_put
    cache.drop(obj("api", 2))
    assert cache.generation != after_put
