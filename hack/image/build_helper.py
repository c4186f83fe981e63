"""Helps the Dockerfile's build stage (runs inside the image build, standard library only).

  build_helper.py deps PYPROJECT               Paramedic's dependencies, one a line
  build_helper.py bundle PYPROJECT             the `ansible` extra (the collection bundle), one a line
  build_helper.py unpack WHEEL DEST NS.NAME... copy only these collections out of the bundle's wheel to
                                               DEST/ansible_collections; write DEST/constraints.txt (the
                                               ansible-core the bundle was released with) and
                                               DEST/requirements.txt (the collections' Python needs)

The image carries ansible-core and only the collections Paramedic's playbooks use, not the whole
`ansible` bundle (hundreds of collections); Galaxy need not be reachable.
"""

from __future__ import annotations

import re
import sys
import tomllib
import zipfile
from pathlib import Path


def project(pyproject: str) -> dict:
    with open(pyproject, "rb") as f:
        return tomllib.load(f)["project"]


def unpack(wheel: str, dest: str, names: list[str]) -> None:
    out = Path(dest)
    requirements: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        members = zf.namelist()
        for name in names:
            ns, _, coll = name.partition(".")
            prefix = f"ansible_collections/{ns}/{coll}/"
            wanted = [m for m in members if m.startswith(prefix) and not m.endswith("/")]
            if not coll or not wanted:
                sys.exit(f"build_helper: collection {name!r} is not in {Path(wheel).name}")
            for member in wanted:
                zf.extract(member, out)
            req = out / prefix / "requirements.txt"
            if req.is_file():
                requirements += [line.split("#", 1)[0].strip() for line in req.read_text().splitlines()]
        metadata = next(m for m in members if re.fullmatch(r"[^/]+\.dist-info/METADATA", m))
        core = [line.split(":", 1)[1].strip() for line in zf.read(metadata).decode().splitlines()
                if re.match(r"Requires-Dist:\s*ansible-core\b", line)]
    (out / "constraints.txt").write_text("".join(f"{c}\n" for c in core))
    (out / "requirements.txt").write_text("".join(f"{r}\n" for r in dict.fromkeys(r for r in requirements if r)))


def main(argv: list[str]) -> None:
    cmd, *args = argv
    if cmd == "deps":
        print("\n".join(project(args[0])["dependencies"]))
    elif cmd == "bundle":
        print("\n".join(project(args[0])["optional-dependencies"]["ansible"]))
    elif cmd == "unpack":
        unpack(args[0], args[1], args[2:])
    else:
        sys.exit(f"build_helper: unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
