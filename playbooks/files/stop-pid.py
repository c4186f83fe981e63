#!/usr/bin/env python3
"""Stop the process named by a pid file: SIGTERM, wait, then SIGKILL.

Usage: stop-pid.py PID_FILE TIMEOUT_SECONDS [EXPECTED_CMDLINE_SUBSTRING]
Exit 0 when the process is gone (or was not running), 1 on unusable input.
Prints "stopped" when it actually stopped something (the playbook reports a change).
"""

import os
import signal
import sys
import time


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            # A zombie has exited; only its parent's wait() is missing.
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 1
    path, timeout = argv[1], float(argv[2])
    expected = argv[3] if len(argv) == 4 else ""
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except FileNotFoundError:
        print(f"no pid file {path}: nothing to stop")
        return 0
    if not text.isdigit() or int(text) <= 1:
        print(f"pid file {path} holds no usable pid: {text[:40]!r}", file=sys.stderr)
        return 1
    pid = int(text)
    if not alive(pid):
        print(f"process {pid} is not running")
        return 0
    if expected and expected not in cmdline(pid):
        # A stale pid file may name a recycled pid: never kill a stranger.
        print(f"process {pid} is not the service (command line {cmdline(pid)[:200]!r}); leaving it alone")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        while alive(pid) and time.monotonic() < deadline + 5:
            time.sleep(0.1)
        print(f"stopped {pid} (killed after {timeout:g}s)")
    else:
        print(f"stopped {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
