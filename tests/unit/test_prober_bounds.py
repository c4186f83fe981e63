"""Prober.check against hostile loopback servers: what a probe reads is bounded, its time is
bounded by its timeout, and its failure is recorded as a class, never in the target's words."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from paramedic.domain.probe import BODY_LIMIT, ProbeFailure, ProbeResult
from paramedic.operator import prober as prober_mod
from paramedic.operator.prober import Prober, drain, failure_of
from tests.unit.test_prober_check import LOOPBACK_ALLOWED, _noop, spec

CANARY = "CANARY-7f3e9c-secret-token"

Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Raw:
    """A loopback TCP server that reads one request head and answers with `answer`; counts the
    bytes it managed to send before the client went away."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.sent = 0
        self.closed_by_client = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Raw:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await self.answer(writer)
            await reader.read()  # until the client closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed_by_client.set()
            writer.close()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/healthz"


async def check(answer: Answer, timeout: float = 2.0, scheme: str = "http") -> tuple[ProbeResult, Raw, float]:
    async with Raw(answer) as server:
        p = Prober(_noop, concurrency=4, rules=LOOPBACK_ALLOWED)
        try:
            started = time.monotonic()
            result = await p.check(spec(server.url(scheme), timeout=timeout))
            took = time.monotonic() - started
            try:  # the server's side of the story: it notices the client went away
                await asyncio.wait_for(server.closed_by_client.wait(), 5)
            except TimeoutError:
                pass
            return result, server, took
        finally:
            await p.stop()


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_an_endless_body_is_read_only_up_to_the_bound_and_the_probe_passes() -> None:
    chunk = b"x" * 65536
    sent = {"bytes": 0, "cut off": False}

    async def endless(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:  # without end, as fast as the client takes it
                w.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await w.drain()
                sent["bytes"] += len(chunk)
        except ConnectionError:
            sent["cut off"] = True

    result, _, took = run(check(endless, timeout=5))
    # The body is not judged: the status is, and the probe ends long before its timeout.
    assert result.ok and result.status_code == 200 and result.failure is None, result
    assert took < 2, took
    # The client closed the connection: what the server pushed is what kernel buffers took,
    # not an endless stream the probe read through.
    assert sent["cut off"] and sent["bytes"] < 64 * 1024 * 1024, sent


def test_a_body_dripping_slowly_costs_the_timeout_and_no_more() -> None:
    async def drip(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(1000):
            w.write(b"x")
            await w.drain()
            await asyncio.sleep(0.05)

    result, _, took = run(check(drip, timeout=1))
    assert not result.ok and result.failure is ProbeFailure.TIMEOUT and result.error == "timeout after 1s", result
    assert took < 2, took


def test_headers_dripping_slowly_cost_the_timeout_and_no_more() -> None:
    async def drip(w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 200 OK\r\n")
        for i in range(1000):
            w.write(b"X-%d: y\r\n" % i)
            await w.drain()
            await asyncio.sleep(0.05)

    result, _, took = run(check(drip, timeout=1))
    assert not result.ok and result.failure is ProbeFailure.TIMEOUT, result
    assert took < 2, took


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(100)) + b"Content-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"y" * 20000 + b"\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 " + b"z" * 20000 + b"\r\nContent-Length: 0\r\n\r\n",
], ids=["many-headers", "long-header", "long-status-line"])
def test_headers_beyond_the_bound_fail_the_probe_as_too_large(head: bytes) -> None:
    async def answer(w: asyncio.StreamWriter) -> None:
        w.write(head)
        await w.drain()

    result, _, _ = run(check(answer))
    assert not result.ok and result.failure is ProbeFailure.TOO_LARGE and result.status_code is None, result
    assert "too large" in result.error


@pytest.mark.parametrize("answer_bytes", [
    f"{CANARY} is not HTTP\r\n\r\n".encode(),
    f"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{CANARY}".encode(),  # cut short
    f"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz-{CANARY}\r\n".encode(),  # bad chunk size
], ids=["not-http", "cut-short", "bad-chunk"])
def test_a_broken_answer_is_a_class_and_never_the_targets_words(answer_bytes: bytes) -> None:
    async def answer(w: asyncio.StreamWriter) -> None:
        w.write(answer_bytes)
        await w.drain()
        w.close()

    result, _, _ = run(check(answer))
    assert not result.ok and result.failure is ProbeFailure.BAD_RESPONSE, result
    assert CANARY not in repr(result) and result.error == "not a valid HTTP response", result


def test_tls_to_a_server_that_speaks_no_tls_is_a_tls_failure() -> None:
    async def plain(w: asyncio.StreamWriter) -> None:
        w.write(f"HTTP/1.1 400 {CANARY}\r\nContent-Length: 0\r\n\r\n".encode())
        await w.drain()
        w.close()

    async def main() -> ProbeResult:
        async def handle(_: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await plain(w)  # answers the ClientHello with plain HTTP

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        p = Prober(_noop, rules=LOOPBACK_ALLOWED)
        try:
            return await p.check(spec(f"https://127.0.0.1:{port}/"))
        finally:
            await p.stop()
            server.close()

    result = run(main())
    assert not result.ok and result.failure is ProbeFailure.TLS, result
    assert CANARY not in repr(result)


def test_a_name_that_does_not_resolve_is_a_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in resolver: no query leaves the machine.
    class NoSuchName:
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict]:
            raise socket.gaierror(socket.EAI_NONAME, f"{CANARY} not known")

        async def close(self) -> None:
            return None

    monkeypatch.setattr(prober_mod.aiohttp, "ThreadedResolver", NoSuchName)

    async def main() -> ProbeResult:
        p = Prober(_noop, rules=LOOPBACK_ALLOWED)
        try:
            return await p.check(spec("http://nowhere.example:8080/"))
        finally:
            await p.stop()

    result = run(main())
    assert not result.ok and result.failure is ProbeFailure.DNS and CANARY not in repr(result), result


def test_drain_reads_at_most_the_bound() -> None:
    async def main() -> tuple[bool, int, bool, bool]:
        loop = asyncio.get_running_loop()

        class Proto:
            def pause_reading(self, **_: object) -> None: ...
            def resume_reading(self, **_: object) -> None: ...

        def reader(data: bytes, eof: bool) -> aiohttp.StreamReader:
            r = aiohttp.StreamReader(Proto(), 2**16, loop=loop)  # type: ignore[arg-type]
            r.feed_data(data)
            if eof:
                r.feed_eof()
            return r

        big = reader(b"x" * (10 * BODY_LIMIT), eof=False)
        whole = await drain(big, BODY_LIMIT)
        left = big.total_bytes - BODY_LIMIT  # what was fed but not read
        small = await drain(reader(b"ok", eof=True), BODY_LIMIT)
        exact = await drain(reader(b"y" * BODY_LIMIT, eof=True), BODY_LIMIT)
        return whole, left, small, exact

    whole, left, small, exact = run(main())
    assert whole is False and left == 9 * BODY_LIMIT, "a long body is left unread beyond the bound"
    assert small is True and exact is True, "a body within the bound is read to its end (the connection is reused)"


def test_failure_classes_come_from_exception_types_not_messages() -> None:
    words = f"Connection refused by {CANARY}"
    assert failure_of(TimeoutError(words)) == (ProbeFailure.TIMEOUT, "")
    assert failure_of(aiohttp.ServerDisconnectedError(words)) == (ProbeFailure.CONNECT, "")
    assert failure_of(aiohttp.ClientPayloadError(words)) == (ProbeFailure.BAD_RESPONSE, "")
    assert failure_of(ConnectionResetError(words)) == (ProbeFailure.CONNECT, "")
    assert failure_of(ValueError(words)) == (ProbeFailure.INVALID_URL, "")
    try:
        try:
            raise ConnectionRefusedError(111, words)
        except OSError as inner:
            raise aiohttp.ClientOSError(words) from inner
    except aiohttp.ClientOSError as wrapped:
        assert failure_of(wrapped) == (ProbeFailure.REFUSED, "")
