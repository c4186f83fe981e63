"""Processes of the local cluster, its real node, the demo, the tests and the benchmarks: alive,
stopped, reaped, their command lines (development only)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from .wait import WaitTimeout, wait_for


def zombie(pid: int) -> bool:
    """Exited, only its parent's wait() missing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not zombie(pid)


def reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM to the process group `pid` leads (started with a new session), SIGKILL after `grace`."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    def ended() -> bool:
        reap(pid)  # if it is our child
        return not alive(pid)

    with contextlib.suppress(WaitTimeout):
        wait_for(ended, grace, f"process group {pid} to end", interval=0.1, ignore=())
    # SIGKILL to the group even when its leader has gone: a child it left (an iptables call of
    # kubelet's or kube-proxy's) would otherwise still change the host after tear-down.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    reap(pid)


def cmdline(pid: int) -> list[str]:
    """A process's arguments ([] once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1] if raw else []


def find(marker: str) -> dict[int, str]:
    """Live processes whose command line contains `marker`: pid → the command line, space-separated."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = " ".join(cmdline(int(entry)))
            if marker in line:
                found[int(entry)] = line
    return found
