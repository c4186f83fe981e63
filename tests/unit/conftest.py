"""tests/unit runs no tool: nothing here builds (hack/build-tools.sh) or starts a control plane.

A unit test that asks for one fails at once and says where such tests live: tests/chart
(helm), tests/e2e (the local control plane), tests/chaos.
"""

from __future__ import annotations

import pytest

WHERE = "tests/unit runs no tool: a test that needs one belongs in tests/chart or tests/e2e"


@pytest.fixture(autouse=True)
def _no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    from devtools import cluster

    def refused() -> None:
        raise AssertionError(f"{WHERE} (it asked for the built tools: devtools.cluster.tools_bin)")
    monkeypatch.setattr(cluster, "tools_bin", refused)


@pytest.fixture(scope="session")
def kubeconfig() -> None:
    raise AssertionError(f"{WHERE} (it asked for the session's control plane)")
