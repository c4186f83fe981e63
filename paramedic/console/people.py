"""People who are signed in: each one's own API client, name and watch-fed lists.

Listing 5,000 Incidents from the API server costs more than a page may take (bench/
console_list.py), so a person who keeps a page open gets informers (paramedic.informer:
list once, then watch) fed with **their own token**, over exactly the scope their LIST
succeeded in: cluster-wide, or the namespaces they may list. Pages then read from memory,
as fresh as the watch. Nothing is shared between people: one person's cache never answers
for another. A person idle for IDLE_SECONDS is forgotten (watches stopped, client closed);
at most MAX_PEOPLE are kept (the least recently seen goes first). A watch that fails (the
token expired, rights removed) makes the cache stale, and reads go to the API server again,
which then says no. Rights removed take effect for reads within SCOPE_SECONDS: memory answers
only that long after the person's scope was last checked. Then the API server is asked again,
as them, with LISTs of one item: the same scope keeps memory answering, a changed one (rights
removed or given) LISTs everything again. Writes always go to the API server as the person.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from paramedic import kube
from paramedic.domain.resources import Resource
from paramedic.informer import Informer

T = TypeVar("T")
IDLE_SECONDS = 600.0
MAX_PEOPLE = 50
NAME_SECONDS = 60.0
"""How long a person's user name (SelfSubjectReview) is reused."""
SCOPE_SECONDS = 60.0
"""How long the namespaces a person may list are reused before being worked out again."""

class Lister(Protocol):
    def __call__(self, client: kube.KubeClient, res: kube.Resource, hint: list[str], not_older_than: str = "",
                 scope_only: bool = False) -> tuple[list[dict], list[str], list[str] | None]:
        """(items, namespaces refused, scope: None = cluster-wide, else namespaces) of what the
        person may list, no older than `not_older_than`; with `scope_only`, no items: only the scope."""
        ...


@dataclass
class Person:
    client: kube.KubeClient
    seen: float = field(default_factory=time.monotonic)
    name: str = ""
    name_at: float = 0.0
    informers: dict[tuple[str, str | None], Informer] = field(default_factory=dict)
    scopes: dict[str, tuple[float, list[str] | None, list[str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    wrote: dict[str, str] = field(default_factory=dict)
    """Per resource, the resourceVersion of the person's last write: their next pages show at least that."""

    def written(self, res: kube.Resource, obj: dict | None) -> None:
        rv = Resource(obj).resource_version if obj else ""
        if rv:
            self.wrote[res.plural] = rv

    def close(self) -> None:
        for informer in self.informers.values():
            informer.stop()
        self.client.close()  # also ends the watches' connections


class People:
    """Thread-safe registry of signed-in people, keyed by a hash of their token."""

    def __init__(self, make_client: Callable[[str], kube.KubeClient], max_people: int = MAX_PEOPLE,
                 idle_seconds: float = IDLE_SECONDS):
        self._make_client = make_client
        self._max, self._idle = max_people, idle_seconds
        self._people: OrderedDict[str, Person] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> Person:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        gone: list[Person] = []
        with self._lock:
            person = self._people.get(key)
            if person is None:
                person = Person(self._make_client(token))
                self._people[key] = person
            person.seen = now
            self._people.move_to_end(key)
            for k in [k for k, p in self._people.items() if now - p.seen > self._idle]:
                gone.append(self._people.pop(k))
            while len(self._people) > self._max:
                gone.append(self._people.popitem(last=False)[1])
        for p in gone:
            p.close()
        return person

    def forget(self, token: str) -> None:
        with self._lock:
            person = self._people.pop(hashlib.sha256(token.encode()).hexdigest(), None)
        if person is not None:
            person.close()

    def close(self) -> None:
        with self._lock:
            people, self._people = list(self._people.values()), OrderedDict()
        for p in people:
            p.close()


def name_of(person: Person, ask: Callable[[kube.KubeClient], str]) -> str:
    """The person's user name, asked again after NAME_SECONDS."""
    now = time.monotonic()
    if person.name and now - person.name_at < NAME_SECONDS:
        return person.name
    person.name, person.name_at = ask(person.client), now
    return person.name


def newest(*versions: str) -> str:
    """The newest of some resourceVersions (etcd's are integers; others count as none)."""
    def number(rv: str) -> int:
        try:
            return int(rv or 0)
        except ValueError:
            return 0
    best = max(versions, key=number, default="")
    return best if number(best) else ""


def visible(person: Person, res: kube.Resource, hint: list[str], lister: Lister,
            build: Callable[[list[dict]], list[T]] | None = None, floor: str = "") -> tuple[list[Any], list[str]]:
    """Every object of `res` the person may list: from their informers when all are fresh,
    else from `lister` (the API server), which also (re)starts informers over the scope it found.
    With `build`, its result over the objects instead (from memory: once per change of each
    informer, not per request). Never older than the person's last write here, nor than `floor`
    (their last write through another replica of the console, from their cookie)."""
    now = time.monotonic()
    wrote = newest(person.wrote.get(res.plural, ""), floor)
    with person.lock:
        scope = person.scopes.get(res.plural)
    informers = [person.informers.get((res.plural, ns)) for ns in _namespaces(scope[1])] if scope else []
    if scope and informers and all(i is not None and i.fresh and i.seen(wrote) for i in informers):
        if now - scope[0] >= SCOPE_SECONDS:
            # Time to check the person's rights again: a cheap walk; memory again only if nothing changed.
            _, denied, namespaces = lister(person.client, res, hint, wrote, scope_only=True)
            if namespaces == scope[1]:
                with person.lock:
                    person.scopes[res.plural] = scope = (now, namespaces, denied)
            else:
                informers = []
        if informers:
            items: list[Any] = []
            for informer in informers:
                assert informer is not None
                items += informer.view(build) if build is not None else informer.items()
            return items, scope[2]
    items, denied, namespaces = lister(person.client, res, hint, wrote)
    with person.lock:
        person.scopes[res.plural] = (now, namespaces, denied)
        for ns in _namespaces(namespaces):
            if (res.plural, ns) not in person.informers:
                person.informers[(res.plural, ns)] = Informer(person.client, res, ns).start()
    return (build(items) if build is not None else items), denied


def _namespaces(scope: list[str] | None) -> list[str | None]:
    return [None] if scope is None else list(scope)
