"""Polling until a condition holds: the one `wait_for` of the tests, the benchmarks and the demo tools."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class WaitTimeout(AssertionError, TimeoutError):
    """The condition did not hold in time: a failed assertion for the tests, a TimeoutError for the benchmarks."""


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.2,
             describe: Callable[[], str] | None = None,
             ignore: tuple[type[Exception], ...] = (Exception,)) -> Any:
    """Poll until `cond()` is truthy; its value is returned. Raises WaitTimeout naming `what`
    (and the last exception `cond` raised, since conditions may race object creation), followed
    by `describe()` when given: what was last seen, so a failure shows why it never held.
    An exception of `cond` counts as "not yet" when it is one of `ignore`; any other propagates."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            value = cond()
            if value:
                return value
        except ignore as exc:
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    message = f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    if describe is not None:
        message += "\n" + describe()
    raise WaitTimeout(message)
