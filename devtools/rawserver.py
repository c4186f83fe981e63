"""A loopback TCP server that hands each connection to `serve` on a thread of its own: for
probe targets that must misbehave below HTTP (endless bodies, garbled answers)."""

from __future__ import annotations

import socket
import threading


class RawServer:
    """Listens on 127.0.0.1 (a free port) until `stop`; subclasses answer in `serve(conn)`."""

    def __init__(self, backlog: int = 128) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=backlog)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
