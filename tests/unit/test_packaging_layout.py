"""`operator/` is installed as `paramedic.operator`; the stdlib's `operator` stays itself."""

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


def test_repository_root_on_sys_path_still_gives_the_standard_library():
    # -S: no site, so nothing imports `operator` before the repository root is searched.
    out = subprocess.run([sys.executable, "-S", "-c", "import operator; print(operator.attrgetter('real')(3))"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
