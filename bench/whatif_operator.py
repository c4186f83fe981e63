"""What-if: `paramedic-operator` with its HTTP clients on aiohttp instead of httpx (an experiment, not the product).

Measures the fixes proposed in bench/RESULTS.md before anyone changes the
operator: the probe client (operator/prober.py `Prober.check`) and the
Kubernetes client (paramedic/kube.py `AsyncKubeClient.request`) are swapped,
at import time, for aiohttp equivalents with the same results and errors.
Nothing else changes. Select it for a benchmark run with

    PARAMEDIC_BENCH_OPERATOR=whatif-aiohttp python -m bench.run_all probe_scale

aiohttp is already installed: Kopf depends on it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, Mapping

import aiohttp

from paramedic import kube
from paramedic.domain.probe import ProbeResult, ProbeSpec, classify
from paramedic.domain.timeutil import utcnow


class _Resp:
    """What kube._raise_for reads from a response."""

    def __init__(self, status: int, body: bytes):
        self.status_code, self.content = status, body
        self.text = body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


def _kube_init(self: kube.AsyncKubeClient, conn: kube.Connection, timeout: float = 10.0,
               max_connections: int = 64) -> None:
    self.conn = conn
    self._timeout = aiohttp.ClientTimeout(total=timeout)
    self._limit = max_connections
    self._session = None


async def _kube_request(self: kube.AsyncKubeClient, method: str, path: str, body: Any = None,
                        content_type: str = "application/json", params: Mapping[str, Any] | None = None) -> Any:
    if self._session is None:  # created inside the running loop
        ssl = self.conn.verify if not isinstance(self.conn.verify, bool) else (None if self.conn.verify else False)
        self._session = aiohttp.ClientSession(self.conn.host, timeout=self._timeout,
                                              connector=aiohttp.TCPConnector(limit=self._limit, ssl=ssl))
    data = None if body is None else json.dumps(body)
    try:
        async with self._session.request(method, path + kube._query(params), data=data,
                                         headers=kube._headers(self.conn, content_type if data is not None else None)) as r:
            raw = await r.read()
            status = r.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise kube.Unavailable(f"API server unreachable: {exc.__class__.__name__}: {exc}") from exc
    kube._raise_for(_Resp(status, raw))  # type: ignore[arg-type]
    return json.loads(raw) if raw else None


async def _kube_aclose(self: kube.AsyncKubeClient) -> None:
    if self._session is not None:
        await self._session.close()


def patch_kube() -> None:
    kube.AsyncKubeClient.__init__ = _kube_init  # type: ignore[method-assign]
    kube.AsyncKubeClient.request = _kube_request  # type: ignore[method-assign]
    kube.AsyncKubeClient.aclose = _kube_aclose  # type: ignore[method-assign]


def patch_prober() -> None:
    from paramedic.operator import prober

    original_init = prober.Prober.__init__
    original_stop = prober.Prober.stop

    def init(self: Any, on_result: Any, concurrency: int = 256, deny_private: bool = False) -> None:
        original_init(self, on_result, concurrency, deny_private)
        self._limit = concurrency
        self._session = None

    async def check(self: Any, spec: ProbeSpec) -> ProbeResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit, keepalive_timeout=15, ttl_dns_cache=60),
                headers={"User-Agent": "paramedic-probe/1"}, auto_decompress=False)
        started = time.perf_counter()
        error, status = "", None
        try:
            if self._deny_private:
                await self._refuse_forbidden(spec.url)
            async with self._session.get(spec.url, allow_redirects=False,
                                         timeout=aiohttp.ClientTimeout(total=spec.timeout)) as resp:
                status = resp.status
                await resp.read()
        except asyncio.TimeoutError:
            error = f"timeout after {spec.timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            error = f"connection failed: {exc}"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{exc.__class__.__name__}: {exc}"
        latency_ms = int((time.perf_counter() - started) * 1000)
        return classify(spec, utcnow(), status_code=status, latency_ms=latency_ms, error=error)

    async def stop(self: Any) -> None:
        await original_stop(self)
        if self._session is not None:
            await self._session.close()

    prober.Prober.__init__ = init
    prober.Prober.check = check
    prober.Prober.stop = stop


def main() -> int:
    patch_kube()
    patch_prober()
    from paramedic.operator.main import main as operator_main
    return operator_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
