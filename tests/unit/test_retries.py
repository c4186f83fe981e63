"""The non-hot retry loops (tenacity): a notification channel's tries and the informer's watch."""

from __future__ import annotations

import asyncio
import logging

from paramedic import informer as informer_mod
from paramedic import kube
from paramedic.domain.notify_render import Notification
from paramedic.notify import Notifier, _Permanent
from paramedic.settings import Settings

NOTE = Notification(event="opened", incident_name="inc-1", namespace="shop", service="checkout",
                    severity="high", state="open", title="down", recipients=["a@example.com"])


def run_attempts(monkeypatch, outcomes: list[BaseException | None], **kw) -> tuple[object, list[float]]:
    """Drives Notifier._with_retries over `outcomes` (None: success), recording the waits."""
    sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(seconds: float, *a: object) -> None:
        sleeps.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    calls = iter(outcomes)

    async def attempt() -> None:
        exc = next(calls)
        if exc is not None:
            raise exc

    notifier = Notifier(Settings(), **kw)
    result = asyncio.run(notifier._with_retries("slack", NOTE, ["a@example.com"], attempt))
    return result, sleeps


def test_notification_retried_with_doubling_backoff_until_it_succeeds(monkeypatch):
    result, sleeps = run_attempts(monkeypatch, [OSError("refused"), TimeoutError(), None],
                                  tries=3, backoff=0.5, max_backoff=2.0)
    assert result.ok and result.attempts == 3
    assert sleeps == [0.5, 1.0]


def test_notification_backoff_is_capped_and_gives_up_after_its_tries(monkeypatch, caplog):
    with caplog.at_level(logging.WARNING, logger="paramedic.notify"):
        result, sleeps = run_attempts(monkeypatch, [OSError("refused")] * 5, tries=5, backoff=0.5, max_backoff=2.0)
    assert not result.ok and result.attempts == 5 and result.error == "refused"
    assert sleeps == [0.5, 1.0, 2.0, 2.0]
    assert "failed on slack after 5 tries: refused" in caplog.text


def test_permanent_failure_is_not_retried(monkeypatch):
    result, sleeps = run_attempts(monkeypatch, [_Permanent("HTTP 404"), None], tries=3)
    assert not result.ok and result.attempts == 1 and result.error == "HTTP 404"
    assert sleeps == []


class _Stop:
    """The informer's stop event: records each back-off wait, and is set after `limit` of them."""

    def __init__(self, limit: int) -> None:
        self.waits: list[float] = []
        self.limit = limit
        self.set_ = False

    def is_set(self) -> bool:
        return self.set_

    def set(self) -> None:
        self.set_ = True

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        if len(self.waits) >= self.limit:
            self.set_ = True
        return self.set_


class _FailingClient:
    def __init__(self) -> None:
        self.requests = 0

    def request(self, method: str, path: str) -> dict:
        self.requests += 1
        raise kube.Unavailable("connection refused")

    def watch(self, *a: object) -> list[dict]:
        raise AssertionError("no watch before a LIST")


def test_informer_watch_retries_forever_with_capped_backoff_and_logs_once(caplog):
    client = _FailingClient()
    inf = informer_mod.Informer(client, kube.MONITORED_SERVICES, "shop")  # type: ignore[arg-type]
    stop = _Stop(limit=9)
    inf._stopped = stop  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, logger="paramedic.informer"):
        inf._run()  # returns once stopped
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert client.requests == 9
    assert caplog.text.count("watch of monitoredservices in shop failed, retrying") == 1
    assert not inf.fresh


class _ExpiringClient:
    """LIST works; the first watch answers 410 Gone, the second ends normally and stops the informer."""

    def __init__(self, stop: _Stop) -> None:
        self.stop, self.lists, self.watches = stop, 0, 0

    def request(self, method: str, path: str) -> dict:
        self.lists += 1
        return {"items": [{"metadata": {"name": f"svc-{self.lists}"}}], "metadata": {"resourceVersion": "7"}}

    def watch(self, *a: object):
        self.watches += 1
        if self.watches == 1:
            raise kube.Expired(410, "too old resource version", "Expired")
        self.stop.set()
        return iter(())


def test_informer_relists_at_once_after_410():
    stop = _Stop(limit=100)
    client = _ExpiringClient(stop)
    inf = informer_mod.Informer(client, kube.MONITORED_SERVICES, "shop")  # type: ignore[arg-type]
    inf._stopped = stop  # type: ignore[assignment]
    inf._run()
    assert (client.lists, client.watches) == (2, 2) and stop.waits == []
    assert [o["metadata"]["name"] for o in inf.items()] == ["svc-2"] and inf.fresh
