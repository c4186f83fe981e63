"""requirements-dev.lock (`make lock`) pins, with hashes, everything pyproject.toml asks for."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def _locked() -> dict[str, tuple[str, int]]:
    text = (REPO / "requirements-dev.lock").read_text()
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        m = re.match(r"([A-Za-z0-9_.\-\[\]]+)==([^\s\\;]+)", block)
        if m:
            out[canonicalize_name(m.group(1).split("[")[0])] = (m.group(2), block.count("--hash=sha256:"))
    return out


def test_every_requirement_is_pinned_with_hashes_and_satisfied():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"]) + [r for extra in ("test", "ansible", "lint")
                                              for r in project["optional-dependencies"][extra]]
    wanted += [line for line in (REPO / "requirements-build.in").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    locked = _locked()
    assert len(locked) > 50
    for line in wanted:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements-dev.lock: run `make lock`"
        version, hashes = locked[name]
        assert req.specifier.contains(version, prereleases=True), \
            f"{req.name}=={version} does not satisfy {req}: run `make lock`"
    assert all(hashes for _, hashes in locked.values())
