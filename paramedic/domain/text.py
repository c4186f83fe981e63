"""Text that reaches people: what a terminal, a mail reader or a chat client must not act on.

CR and alert values (titles, labels, actors, log lines, event messages) come from whoever
may write an Incident or send an alert. `printable` removes what would make a terminal do
something instead of showing text (ESC sequences: OSC 52 writes the clipboard, CSI moves the
cursor over earlier lines), other C0 and C1 controls, DEL, and the Unicode bidi overrides
that make text read differently from what it is. Pure.
"""

from __future__ import annotations

import re
from typing import Any

BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
"""Embeddings, overrides and isolates (LRE..RLO, LRI..PDI)."""

# Whole escape sequences first, so no `[2A` or `52;c;...` residue is left behind:
# CSI (ESC [ or C1 0x9b) params intermediates final; OSC/DCS/APC/PM/SOS (ESC ] P _ ^ X, or
# their C1 forms) up to BEL or ST, or to the line's end when unterminated; other two-byte
# ESC sequences.
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]P_^X]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
)
_CONTROLS = f"\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI_CONTROLS}"
_UNSAFE = re.compile(f"[{_CONTROLS}]")
_UNSAFE_WITH_LAYOUT = re.compile(f"[\t\n{_CONTROLS}]")


def printable(text: object, keep_layout: bool = True, replacement: str = "") -> str:
    """`text` with escape sequences, control characters (C0, DEL, C1) and bidi overrides removed.

    `keep_layout` keeps newline and tab (multi-line views); otherwise they go too (one-line
    values such as headers). Other controls become `replacement` (a header wants a space so
    words stay apart); whole escape sequences always vanish.
    """
    s = "" if text is None else str(text)
    s = _SEQUENCES.sub("", s)
    return (_UNSAFE if keep_layout else _UNSAFE_WITH_LAYOUT).sub(replacement, s)


def is_printable(text: str, keep_layout: bool = True) -> bool:
    """True when `printable` would leave `text` as it is."""
    return not (_UNSAFE if keep_layout else _UNSAFE_WITH_LAYOUT).search(text)


ELLIPSIS = "…"


def cut(text: Any, limit: int, keep_end: bool = False) -> str:
    """`text` as a string of at most `limit` characters, marked with "…" where it had to be cut.

    The start is kept and the end cut, or, with `keep_end`, the other way round (a log's last
    lines are what matter). The mark counts in `limit`."""
    s = "" if text is None else str(text)
    if len(s) <= limit:
        return s
    kept = max(0, limit - 1)
    return ELLIPSIS + s[len(s) - kept:] if keep_end else s[:kept] + ELLIPSIS
