#!/usr/bin/env python3
"""The demo's SMTP server: accepts every message and keeps it as a file.

    mail_sink.py --port 2525 --dir .paramedic/demo/mail [--pid-file F]

Each message becomes DIR/NNNN-<time>.eml (the raw message, with X-Original-To
naming the envelope recipients, as mail delivery agents do). Files appear whole:
they are written under a temporary name and renamed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class FolderHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        existing = [int(p.name.split("-", 1)[0]) for p in folder.glob("*.eml") if p.name.split("-", 1)[0].isdigit()]
        self._seq = itertools.count(max(existing, default=0) + 1)
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        with self._lock:
            n = next(self._seq)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = f"{n:04d}-{stamp}.eml"
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        header = f"X-Original-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(header + content)
        os.replace(tmp, self.folder / name)
        print(f"{time.strftime('%H:%M:%S')} {name} from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}",
              flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SMTP server keeping every message in a folder.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    args = p.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    controller = Controller(FolderHandler(folder), hostname=args.host, port=args.port)
    controller.start()
    print(f"{time.strftime('%H:%M:%S')} SMTP on {args.host}:{args.port}, mail kept in {folder}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
