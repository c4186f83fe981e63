"""Prober.check against real loopback HTTP servers: how each outcome is classified."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web

from paramedic.domain.outbound import OutboundPolicy, parse_cidrs
from paramedic.domain.probe import ProbeFailure, ProbeSpec
from paramedic.operator import prober as prober_mod
from paramedic.operator.prober import Prober


async def _noop(*_: Any) -> None:
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spec(url: str, timeout: float = 2.0) -> ProbeSpec:
    return ProbeSpec(url=url, interval=10, timeout=timeout, failure_threshold=1, success_threshold=1)


async def serve(routes: dict[str, Any]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


LOOPBACK_ALLOWED = OutboundPolicy(allow=parse_cidrs(["127.0.0.0/8"]))
"""The admin allowlist these tests need: the default refuses loopback."""


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_outcomes_are_classified_and_connections_reused() -> None:
    peers: set[int] = set()

    async def ok(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername")[1])
        return web.Response(text="fine" * 1000)

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.Response(text="late")

    async def main() -> dict[str, Any]:
        runner, base = await serve({"/ok": ok, "/broken": broken, "/moved": moved, "/slow": slow})
        p = Prober(_noop, concurrency=4, rules=LOOPBACK_ALLOWED)
        try:
            out = {"ok": await p.check(spec(base + "/ok")), "again": await p.check(spec(base + "/ok"))}
            out.update({name: await p.check(spec(base + "/" + name, timeout=0.5 if name == "slow" else 2))
                        for name in ("broken", "moved", "slow")})
            out["refused"] = await p.check(spec(f"http://127.0.0.1:{free_port()}/"))
            out["bad-url"] = await p.check(spec("not a url"))
            return out
        finally:
            await p.stop()
            await runner.cleanup()

    out = run(main())
    assert out["ok"].ok and out["ok"].status_code == 200 and not out["ok"].error
    assert out["again"].ok
    assert len(peers) == 1, "the second probe of one target should reuse the kept-alive connection"
    assert not out["broken"].ok and out["broken"].status_code == 503
    assert not out["moved"].ok and out["moved"].status_code == 302, "redirects are not followed"
    assert not out["slow"].ok and out["slow"].error == "timeout after 0.5s"
    assert out["slow"].failure is ProbeFailure.TIMEOUT
    assert not out["refused"].ok and out["refused"].failure is ProbeFailure.REFUSED, out["refused"]
    assert out["refused"].error == "connection refused" and out["refused"].status_code is None
    assert not out["bad-url"].ok and out["bad-url"].failure is ProbeFailure.INVALID_URL, out["bad-url"]


def test_loopback_is_refused_by_default_in_every_form_and_nothing_is_sent() -> None:
    hits: list[str] = []

    async def ok(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="fine")

    async def main() -> dict[str, Any]:
        runner, base = await serve({"/ok": ok})
        port = base.rsplit(":", 1)[1]
        p = Prober(_noop)
        try:
            hosts = ["127.0.0.1", "[::ffff:127.0.0.1]", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.1",
                     "127.0.0.1.", "localhost", "[::ffff:0:7f00:1]"]
            return {h: await p.check(spec(f"http://{h}:{port}/ok")) for h in hosts}
        finally:
            await p.stop()
            await runner.cleanup()

    for host, result in run(main()).items():
        assert not result.ok and result.error.startswith("refused: ") and "loopback" in result.error, (host, result)
    assert hits == [], "a refused probe sends nothing"


def test_names_resolving_to_forbidden_addresses_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loopback answer stands in for the forbidden one (a metadata answer is checked without
    # any Prober: tests/unit/test_netguard.py), so even a broken check sends nothing off the machine.
    class Stand:
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict]:
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": family,
                     "proto": 0, "flags": 0}]

        async def close(self) -> None:
            return None

    monkeypatch.setattr(prober_mod.aiohttp, "ThreadedResolver", Stand)

    async def main() -> Any:
        p = Prober(_noop)
        try:
            return await p.check(spec(f"http://status.example:{free_port()}/latest/"))
        finally:
            await p.stop()

    result = run(main())
    assert not result.ok and result.failure is ProbeFailure.FORBIDDEN, result
    # The class of the address, not the address a name resolved to (status is no resolver).
    assert "the target is a loopback address" in result.error and "127.0.0.1" not in result.error, result.error


def test_probes_ignore_environment_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, int] = {"target": 0, "proxy": 0}

    def counting(name: str) -> Any:
        async def handler(_: web.Request) -> web.Response:
            seen[name] += 1
            return web.Response(text=name)
        return handler

    async def main() -> Any:
        target, base = await serve({"/ok": counting("target")})
        proxy, proxy_base = await serve({"/ok": counting("proxy")})
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(var, proxy_base)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        p = Prober(_noop, rules=LOOPBACK_ALLOWED)
        try:
            return await p.check(spec(base + "/ok"))
        finally:
            await p.stop()
            await target.cleanup()
            await proxy.cleanup()

    assert run(main()).ok
    assert seen == {"target": 1, "proxy": 0}, "the probe went straight to its target, never through the proxy"


def test_refused_probes_are_counted_by_reason() -> None:
    from prometheus_client import REGISTRY

    def count(reason: str) -> float:
        return REGISTRY.get_sample_value("paramedic_outbound_refused_total", {"kind": "probe", "reason": reason}) or 0.0

    before = {r: count(r) for r in ("metadata", "loopback", "unspecified")}

    async def main() -> None:
        p = Prober(_noop)
        try:
            for url in ("http://0xa9.0xfe.0xa9.0xfe/", "http://[::1]:9/", "http://0.0.0.0:9/"):
                assert not (await p.check(spec(url))).ok
        finally:
            await p.stop()

    run(main())
    assert {r: count(r) - before[r] for r in before} == {"metadata": 1, "loopback": 1, "unspecified": 1}
