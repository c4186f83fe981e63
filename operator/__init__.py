"""The Kopf operator, installed and imported as `paramedic.operator`.

Never imported as a top-level `operator` (the standard library's module), although
`python -m`/`-c` from the repository root and pytest put the root first on sys.path: they
do so only after start-up, and by then the standard library's `operator` is imported (the
editable install's .pth loads its finder, which imports pathlib, functools, collections,
operator), and a module once imported is not searched for again. Nothing in the repository
puts the root on PYTHONPATH or runs `python -S` from it. tests/unit/test_packaging_layout.py
checks this for each way `make` and CI start Python.
"""
