#!/usr/bin/env python3
"""Regenerates the README's configuration table from paramedic.settings."""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from paramedic.settings import markdown_table  # noqa: E402

readme = Path(__file__).resolve().parent.parent / "README.md"
text = readme.read_text()
start, end = "<!-- settings-table:start (python -m paramedic.settings --markdown) -->", "<!-- settings-table:end -->"
new = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: f"{start}\n{markdown_table()}\n{end}", text, flags=re.S)
readme.write_text(new)
