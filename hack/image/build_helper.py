"""Helps the Dockerfile's build stage (runs inside the image build, standard library only).

  build_helper.py bundle PYPROJECT             the packages of the `ansible` extra (the collection bundle),
                                               one name a line
  build_helper.py pick LOCK REQ...             the entries of LOCK (requirements.lock: pins with their hashes)
                                               for these packages (a requirement's name is its package)
  build_helper.py omit LOCK REQ...             the entries of LOCK for every other package
  build_helper.py unpack WHEEL DEST NS.NAME... copy only these collections out of the bundle's wheel to
                                               DEST/ansible_collections; write DEST/constraints.txt (the
                                               ansible-core the bundle was released with) and
                                               DEST/requirements.txt (the collections' Python needs)
  build_helper.py installed DIST SITE OUT      copy the files pip installed for DIST (its RECORD) from the
                                               environment of site-packages SITE to OUT, same paths

The image carries ansible-core and only the collections Paramedic's playbooks use, not the whole
`ansible` bundle (hundreds of collections); Galaxy need not be reachable.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path


def project(pyproject: str) -> dict:
    with open(pyproject, "rb") as f:
        return tomllib.load(f)["project"]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    if not match:
        sys.exit(f"build_helper: not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def lock_entries(lock: str) -> dict[str, str]:
    """A uv/pip-compile lock's entries by package name: `name==version` with its `--hash` lines."""
    entries: dict[str, str] = {}
    name = ""
    for line in Path(lock).read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            name = _name(line)
            entries[name] = line + "\n"
        elif name:
            entries[name] += line + "\n"
    return entries


def pick(lock: str, requirements: list[str], keep: bool) -> str:
    entries = lock_entries(lock)
    names = {_name(r) for r in requirements}
    missing = names - entries.keys()
    if missing:
        sys.exit(f"build_helper: {', '.join(sorted(missing))} not in {lock}: run `make lock`")
    return "".join(text for name, text in entries.items() if (name in names) == keep)


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


def installed(dist: str, site: str, out: str) -> None:
    """Copies DIST's installed files (package, dist-info, console scripts) to OUT, keeping their paths,
    so the runtime image gets Paramedic's own files in a small layer of their own."""
    records = list(Path(site).glob(f"{dist}-*.dist-info/RECORD"))
    if len(records) != 1:
        sys.exit(f"build_helper: expected one {dist} RECORD in {site}, found {len(records)}")
    with records[0].open(newline="") as f:
        paths = [row[0] for row in csv.reader(f) if row]
    for rel in paths:
        src = os.path.normpath(os.path.join(site, rel))
        dst = os.path.join(out, src.lstrip("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def main(argv: list[str]) -> None:
    cmd, *args = argv
    if cmd == "bundle":
        print("\n".join(_name(r) for r in project(args[0])["optional-dependencies"]["ansible"]))
    elif cmd in ("pick", "omit"):
        print(pick(args[0], args[1:], keep=cmd == "pick"), end="")
    elif cmd == "unpack":
        unpack(args[0], args[1], args[2:])
    elif cmd == "installed":
        installed(args[0], args[1], args[2])
    else:
        sys.exit(f"build_helper: unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
