"""The chart rendered by helm (`helm template`), for the tests of this folder.

helm is one of the tools `make tools` builds (hack/build-tools.sh, cached); a helm on PATH
serves when the cache cannot be had. tests/unit never renders: it runs no tool.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def helm() -> str:
    from devtools.cluster import tools_bin
    try:
        built: Path | None = tools_bin() / "helm"
    except (OSError, subprocess.CalledProcessError):
        built = None
    if built is None or not built.exists():
        found = shutil.which("helm")
        if not found:
            pytest.skip("helm is not built (make tools)")
        return found
    return str(built)


def render(*sets: str, namespace: str = "ops") -> list[dict]:
    """The chart's documents for release `pm` in `namespace`, with `--set` values `sets`."""
    args = [helm(), "template", "pm", str(REPO / "charts" / "paramedic"), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return [d for d in yaml.safe_load_all(out.stdout) if d]
