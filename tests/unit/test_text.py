"""`domain.text.printable`: what a terminal, a mail reader or a chat client must not act on."""

import pytest

from paramedic.domain.text import cut, is_printable, printable


@pytest.mark.parametrize("hostile,shown", [
    ("copy \x1b]52;c;cm0gLXJmIH4=\x07me", "copy me"),            # OSC 52: writes the clipboard
    ("a\x1b]52;c;eA==\x1b\\b", "ab"),                             # ... terminated by ST
    ("title\x1b]0;pwned", "title"),                               # unterminated OSC: to the line's end
    ("line\x1b[2A\x1b[2Kover", "lineover"),                       # CSI: cursor up, erase line
    ("\x1b[31mred\x1b[0m", "red"),
    ("\x9b2Ac1", "c1"),                                           # C1 CSI
    ("\x9d52;c;x\x07after", "after"),                             # C1 OSC
    ("bell\x07 nul\x00 del\x7f cr\r bs\x08", "bell nul del cr bs"),
    ("\x1bc reset", " reset"),                                    # two-byte ESC sequence
    ("pay \u202eevil\u202c \u2066x\u2069", "pay evil x"),         # bidi overrides and isolates
    ("keeps\tlayout\nand ünïcödé — 支付", "keeps\tlayout\nand ünïcödé — 支付"),
])
def test_printable_removes_sequences_controls_and_bidi(hostile, shown):
    assert printable(hostile) == shown
    assert is_printable(printable(hostile))


def test_one_line_mode_replaces_layout_too():
    assert printable("a\r\nb\tc\x1b[2Ad", keep_layout=False, replacement=" ") == "a  b cd"
    assert not is_printable("a\nb", keep_layout=False) and is_printable("a\nb")


def test_none_and_non_strings():
    assert printable(None) == "" and printable(42) == "42"


@pytest.mark.parametrize("text,limit,keep_end,out", [
    ("abc", 3, False, "abc"),
    ("abcd", 3, False, "ab…"),
    ("abcd", 3, True, "…cd"),
    ("abcd", 1, False, "…"),
    ("abcd", 1, True, "…"),        # no `s[-0:]`: the whole text is never kept after the mark
    (None, 5, False, ""),
    (12345, 4, False, "123…"),
])
def test_cut_keeps_within_the_limit_and_marks_the_cut(text, limit, keep_end, out):
    assert cut(text, limit, keep_end=keep_end) == out
    assert len(out) <= max(limit, 1)
