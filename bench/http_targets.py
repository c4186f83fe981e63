"""Many tiny HTTP health endpoints in one asyncio process: one listening port per service.

    python -m bench.http_targets --count 2000 --ports-file FILE

Every GET gets `200 ok` (keep-alive honoured). The ports are written to FILE,
one per line, once all are listening. It exits on SIGTERM, or by itself after
--max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import socket
from collections.abc import Callable
from pathlib import Path

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
RESPONSE_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Health(asyncio.Protocol):
    """`200 ok` to every request; `note(head)`, when given, sees each request's head first."""

    def __init__(self, note: Callable[[bytes], None] | None = None) -> None:
        self.buf = b""
        self.note = note
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)  # probes send no body
            if self.note is not None:
                self.note(head)
            close = b"connection: close" in head.lower()
            assert self.transport is not None
            self.transport.write(RESPONSE_CLOSE if close else RESPONSE)
            if close:
                self.transport.close()
                return


async def serve(count: int, ports_file: Path, max_seconds: float,
                factory: Callable[[], asyncio.Protocol] = Health, every: Callable[[], None] | None = None) -> None:
    """`count` listening ports, written to `ports_file` once all listen; until SIGTERM or
    `max_seconds`, calling `every` (when given) every quarter of a second and at the end."""
    loop = asyncio.get_running_loop()
    servers, ports = [], []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        servers.append(await loop.create_server(factory, sock=sock))
        ports.append(sock.getsockname()[1])
    tmp = ports_file.with_suffix(".tmp")
    tmp.write_text("\n".join(map(str, ports)) + "\n")
    tmp.rename(ports_file)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    deadline = loop.time() + max_seconds
    while not stop.is_set() and loop.time() < deadline:
        pause = max(0.0, deadline - loop.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(0.25, pause) if every is not None else pause)
        if every is not None:
            every()
    for s in servers:
        s.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--ports-file", type=Path, required=True)
    p.add_argument("--max-seconds", type=float, default=1800)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, args.count * 3 + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    asyncio.run(serve(args.count, args.ports_file, args.max_seconds))


if __name__ == "__main__":
    main()
