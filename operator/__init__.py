"""The Kopf operator (imported as paramedic.operator)."""

if __name__ == "operator":  # pragma: no cover - only when the repository root is on sys.path
    # `python -m ...` run from the repository root puts the root first on sys.path, and a
    # bare `import operator` (the standard library's, imported by `collections` at start-up)
    # would find this folder. Load the standard library's module in its place.
    import os as _os

    _std = _os.path.join(_os.path.dirname(_os.__file__), "operator.py")
    with open(_std, encoding="utf-8") as _f:
        exec(compile(_f.read(), _std, "exec"))
    del _os, _std, _f
