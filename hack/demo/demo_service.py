#!/usr/bin/env python3
"""The demo's service: a tiny HTTP process that can be broken, and is fixed by a restart.

    demo_service.py --port 8080 [--daemon --pid-file F --log-file L]

GET /healthz answers 200 "ok" while healthy and 500 once broken. POST /break breaks
it (the fault lives in memory, like a leaked connection pool: only a restart clears
it); POST /fix repairs it by hand. GET / says who is answering, and answers 200 even
when broken: it is the shallow readiness check, /healthz the deep one.

DEMO_HEALTH=broken starts it broken: a bad release whose process runs and is Ready,
yet fails its health check, which only a rollback repairs.

With --daemon it detaches (double fork, new session) and returns only once it
listens and its pid file is written, which is what the test-only restart-local-service
playbook's start_command needs (tests/fixtures/playbooks). SIGTERM stops it and removes its pid file.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class State:
    def __init__(self) -> None:
        self.started = time.time()
        self.broken_since: float | None = self.started if os.environ.get("DEMO_HEALTH") == "broken" else None


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "paramedic-demo/1"

        def _send(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
            raw = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/healthz":
                if state.broken_since is None:
                    self._send(200, "ok\n")
                else:
                    self._send(500, f"broken for {time.time() - state.broken_since:.0f}s\n")
            elif self.path == "/":
                self._send(200, json.dumps({
                    "service": "demo", "pid": os.getpid(), "uptimeSeconds": round(time.time() - state.started, 1),
                    "healthy": state.broken_since is None}) + "\n", "application/json")
            else:
                self._send(404, "not found\n")

        def do_POST(self) -> None:  # noqa: N802
            if self.path == "/break":
                if state.broken_since is None:
                    state.broken_since = time.time()
                self._send(200, "broken: /healthz now answers 500 until the process restarts\n")
            elif self.path == "/fix":
                state.broken_since = None
                self._send(200, "fixed\n")
            else:
                self._send(404, "not found\n")

        def log_message(self, fmt: str, *args: object) -> None:
            if self.path != "/healthz":  # probes every second would drown the log
                sys.stderr.write(f"{time.strftime('%H:%M:%S')} {self.address_string()} {fmt % args}\n")

    return Handler


def _write_pid(path: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    Path(tmp).write_text(f"{os.getpid()}\n")
    os.replace(tmp, path)  # readers never see a half-written pid


def _remove_pid(path: str) -> None:
    try:
        if Path(path).read_text().strip() == str(os.getpid()):
            Path(path).unlink()
    except OSError:
        pass


def serve(args: argparse.Namespace, ready_fd: int | None = None) -> int:
    state = State()
    try:
        server = ThreadingHTTPServer((args.host, args.port), make_handler(state))
    except OSError as exc:
        print(f"demo_service: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        if ready_fd is not None:
            os.write(ready_fd, f"error: {exc}".encode())
            os.close(ready_fd)
        return 1
    server.daemon_threads = True
    if args.pid_file:
        _write_pid(args.pid_file)
    print(f"{time.strftime('%H:%M:%S')} demo service pid {os.getpid()} listening on "
          f"http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    if ready_fd is not None:
        os.write(ready_fd, b"ok")
        os.close(ready_fd)

    def stop(signum: int, _frame: object) -> None:
        print(f"{time.strftime('%H:%M:%S')} pid {os.getpid()} stopping on signal {signum}", file=sys.stderr,
              flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.pid_file:
            _remove_pid(args.pid_file)
    return 0


def daemonize(args: argparse.Namespace) -> int:
    """Detach; the first process exits 0 only once the daemon listens (1 with its error otherwise)."""
    read_fd, write_fd = os.pipe()
    if os.fork() > 0:
        os.close(write_fd)
        chunks = []
        while True:
            chunk = os.read(read_fd, 512)
            if not chunk:
                break
            chunks.append(chunk)
        message = b"".join(chunks).decode(errors="replace")
        if message == "ok":
            return 0
        print(f"demo_service: did not start: {message or 'exited early'}", file=sys.stderr)
        return 1
    os.close(read_fd)
    os.setsid()  # its own session: whoever started it (ansible, make) may end without taking it along
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    log = os.open(args.log_file or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    os._exit(serve(args, write_fd))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="The Paramedic demo's breakable HTTP service.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid-file", default="", help="written once listening, removed on exit")
    p.add_argument("--log-file", default="", help="with --daemon: where output goes")
    p.add_argument("--daemon", action="store_true", help="detach; return once listening")
    args = p.parse_args(argv)
    if args.pid_file:
        args.pid_file = os.path.abspath(args.pid_file)
    if args.log_file:
        args.log_file = os.path.abspath(args.log_file)
    return daemonize(args) if args.daemon else serve(args)


if __name__ == "__main__":
    sys.exit(main())
