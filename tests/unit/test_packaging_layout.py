"""`operator/` is installed as `paramedic.operator`; the stdlib's `operator` stays itself."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_operator_is_the_standard_library():
    out = subprocess.run([sys.executable, "-c", "import operator, paramedic.operator as p; "
                          "print(operator.__file__); print(p.__file__); print(operator.itemgetter)"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    assert "site-packages" not in out[0] and out[0].endswith("/operator.py") and not out[0].startswith(str(REPO))
    assert out[1] == str(REPO / "operator" / "__init__.py")


def test_console_scripts_are_installed():
    bin_dir = Path(sys.executable).parent
    for script in ("paramedic-operator", "paramedic-webhook", "kubectl-paramedic"):
        assert (bin_dir / script).exists(), script
    help_text = subprocess.run([str(bin_dir / "paramedic-operator"), "--help"], capture_output=True, text=True).stdout
    assert "--all-namespaces" in help_text and "--namespace" in help_text


STDLIB_CHECK = ("import operator; assert operator.__file__.endswith('/operator.py'), operator.__file__; "
                f"assert not operator.__file__.startswith({str(REPO)!r}), operator.__file__; "
                "assert operator.attrgetter('real')(3) == 3; print('stdlib')")


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60, **kwargs)


def test_python_c_from_the_repository_root_gives_the_standard_library():
    # `python -c` puts the current directory (the repository root, holding operator/) first.
    out = _run([sys.executable, "-c", STDLIB_CHECK])
    assert out.returncode == 0 and out.stdout.strip() == "stdlib", out.stderr
    # What it rests on: the standard library's operator is imported before the root is on sys.path.
    out = _run([sys.executable, "-c", "import sys; print('operator' in sys.modules, sys.path[0] == '')"])
    assert out.stdout.split() == ["True", "True"], "the start-up no longer imports operator: see operator/__init__.py"


def test_python_m_from_the_repository_root_gives_the_standard_library():
    # How `make demo`, `make bench` and `make cluster-up` start Python: `python -m module` with the
    # repository root as the current directory (sys.path[0]). A throw-away module there plays the part.
    probe = REPO / f"_probe_operator_{os.getpid()}.py"
    probe.write_text(STDLIB_CHECK + "\n")
    try:
        out = _run([sys.executable, "-m", probe.stem])
    finally:
        probe.unlink()
    assert out.returncode == 0 and out.stdout.strip() == "stdlib", out.stderr


def test_pytest_with_the_root_on_sys_path_gives_the_standard_library(tmp_path):
    # `make test`/`make unit`: `python -m pytest` from the root, which also inserts the root
    # (tests/ is a package) before importing test modules.
    out = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(REPO),
                "-o", "addopts=", "-k", "test_python_c_from", str(Path(__file__))])
    assert out.returncode == 0, out.stdout + out.stderr


def test_operator_package_has_no_exec():
    text = (REPO / "operator" / "__init__.py").read_text()
    assert "exec(" not in text and "import" not in text.split('"""')[-1]


def test_development_tools_are_not_shipped():
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert not [p for p in setup["packages"] if p.split(".")[0] == "devtools"]
    assert "devtools" not in setup["package-dir"]
    # the runtime package holds no development tool any more
    assert not sorted(p.name for p in (REPO / "paramedic").glob("dev*.py")) + \
        sorted(p.name for p in (REPO / "paramedic").glob("demo*.py"))
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "devtools" not in dockerfile


def test_every_package_of_the_source_is_shipped():
    # pyproject lists packages by hand (operator/ and webhook/ are mapped into paramedic): a new
    # subpackage missing there installs in editable mode and fails only in the image.
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = set()
    for package, folder in setup["package-dir"].items():
        root = REPO / folder
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            rel = init.parent.relative_to(root).parts
            found.add(".".join((package, *rel)))
    # a mapped folder inside paramedic/ is shipped under its own name (paramedic.operator lives in operator/)
    assert found - set(setup["packages"]) == set(), "add these to [tool.setuptools] packages"
