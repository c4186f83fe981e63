"""mypy and import-linter over the source where it lives (`make lint`).

`operator/` and `webhook/` are installed as `paramedic.operator` and `paramedic.webhook`
(pyproject's `[tool.setuptools] package-dir`). Neither tool follows that mapping by itself:
mypy names a file after its folders (`operator.handlers`, which the standard library's
`operator` shadows), and grimp (import-linter's graph) finds a package with importlib and
walks its one folder, refusing `paramedic.operator` as a package of its own. The editable
install's import hook is not read by either. So this script hands them the mapping:

- mypy: its own command line, then each source under a mapped folder renamed
  (`operator.handlers` -> `paramedic.operator.handlers`) before the build; imports of the
  new names resolve to those sources. Imports of our own code resolve among the sources
  only (the repository root is not searched: its operator/ would shadow the standard
  library's), so give it every root, as `make lint` does.
- grimp: each mapped folder is one more found package under its installed name, so its
  modules are scanned from where they live and their imports are edges like any other.

Usage (from the repository root): `python hack/lint.py mypy [mypy args...]`,
`python hack/lint.py imports [config files...]` (no cache: it scans in well under a second).
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_dirs(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, Path]:
    """Installed name -> folder, for the packages whose folder is not their name's path."""
    with pyproject.open("rb") as fh:
        mapping: dict[str, str] = tomllib.load(fh)["tool"]["setuptools"]["package-dir"]
    return {name: ROOT / folder for name, folder in mapping.items()
            if (ROOT / folder) != ROOT.joinpath(*name.split("."))}


def run_mypy(args: list[str]) -> int:
    from mypy import build, util
    from mypy.errors import CompileError
    from mypy.fscache import FileSystemCache
    from mypy.main import process_options

    fscache = FileSystemCache()
    sources, options = process_options(args, fscache=fscache)
    folders = {folder.resolve(): name for name, folder in package_dirs().items()}
    for source in sources:
        if source.path is None or source.module is None:
            continue
        path = Path(source.path).resolve()
        for folder, name in folders.items():
            if path.is_relative_to(folder):
                # mypy named it after its folder (`operator.x`); the installed name replaces that.
                source.module = ".".join([name, *source.module.split(".")[1:]])
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    messages: list[str] = []

    def show(filename: str | None, new: list[str], serious: bool) -> None:
        messages.extend(new)
        for line in new:
            print(formatter.colorize(line) if options.color_output else line, file=sys.stderr if serious else sys.stdout)

    blockers = False
    try:
        # Every module of ours is a source, so no folder of the repository is searched for
        # imports (mypy would search the working directory, whose operator/ shadows the standard
        # library's `operator`): an extra path that holds nothing takes the place of those folders.
        result = build.build(sources, options, alt_lib_path=os.devnull,
                             flush_errors=show, fscache=fscache)
        result.manager.metastore.close()
    except CompileError as e:
        blockers = True
        if not e.messages:
            raise
    n_errors, n_notes, n_files = util.count_stats(messages)
    if n_errors or blockers:
        print(formatter.format_error(n_errors, n_files, len(sources), blockers=blockers))
        return 2 if blockers else 1
    print(formatter.format_success(len(sources)))
    return 0


def run_import_linter(args: list[str]) -> int:
    from grimp.application.config import settings
    from importlinter import cli

    package_finder = settings.PACKAGE_FINDER
    module_finder = settings.MODULE_FINDER
    mapped = package_dirs()

    class MappedPackageFinder:
        """A root package's folder, plus the folders installed beneath it."""

        def determine_package_directories(self, package_name, file_system):  # type: ignore[no-untyped-def]
            found = set(package_finder.determine_package_directories(package_name, file_system))
            return found | {str(folder) for name, folder in mapped.items() if name.startswith(package_name + ".")}

    class MappedModuleFinder:
        """A mapped folder's modules under its installed name."""

        def find_package(self, package_name, package_directory, file_system):  # type: ignore[no-untyped-def]
            for name, folder in mapped.items():
                if Path(package_directory) == folder:
                    package_name = name
            return module_finder.find_package(package_name, package_directory, file_system)

    settings.configure(PACKAGE_FINDER=MappedPackageFinder(), MODULE_FINDER=MappedModuleFinder())
    sys.path.insert(0, str(ROOT))  # devtools, checked too, is not installed
    return cli.lint_imports(config_filenames=tuple(args), no_cache=True)


def main(argv: list[str]) -> int:
    tool, *args = argv
    return {"mypy": run_mypy, "imports": run_import_linter}[tool](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
