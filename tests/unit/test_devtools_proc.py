"""devtools.proc and devtools.wait: the process and polling helpers the tests, benchmarks and demo share."""

import subprocess
import sys
import uuid

import pytest

from devtools import proc
from devtools.wait import WaitTimeout, wait_for


def test_find_alive_terminate():
    marker = f"pm-proc-test-{uuid.uuid4().hex[:8]}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], start_new_session=True)
    try:
        assert proc.alive(child.pid)
        wait_for(lambda: proc.cmdline(child.pid)[-1:] == [marker], 10, "the child's exec", interval=0.02)
        assert list(proc.find(marker)) == [child.pid]
        proc.terminate(child.pid, grace=5)
        assert not proc.alive(child.pid)
        assert proc.find(marker) == {} and proc.cmdline(child.pid) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_wait_for_returns_the_value_or_fails_as_assertion_and_timeout():
    assert wait_for(lambda: 7, 1, "seven") == 7

    def racing() -> bool:
        raise KeyError("not yet")

    with pytest.raises(WaitTimeout, match=r"waiting for nothing \(last error: 'not yet'\)") as caught:
        wait_for(racing, 0.3, "nothing", interval=0.05)
    assert isinstance(caught.value, AssertionError) and isinstance(caught.value, TimeoutError)
