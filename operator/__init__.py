"""The Kopf operator, installed and imported as `paramedic.operator`.

Never imported as a top-level `operator` (the standard library's module): the interpreter
imports the standard library's `operator` while it starts (`site` and the editable
install's path hook need `collections`), before `python -m`/`-c` put the current
directory first on sys.path and before pytest adds the repository root, and a module,
once imported, is never searched for again. tests/unit/test_packaging_layout.py checks
this for each way `make` and CI start Python.
"""
