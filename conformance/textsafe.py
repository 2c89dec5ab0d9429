"""Text from a target, made safe to print on a terminal.

A backend controls much of what the harness prints: its error messages, its version
string, the reason its worker could not start, the tail of its log. A terminal acts on
control characters in that text: ESC starts sequences that recolour, clear the screen,
move the cursor or set the window title; a carriage return or a backspace overwrites
what was printed before; bidirectional overrides reorder what is shown. `printable`
writes each such character as a visible escape instead (``\\x1b``, ``\\r``, as Python's
repr does), so the text reads as it was sent and nothing in it acts on the terminal.
"""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (U+009B is a one-character CSI on some
# terminals), the bidirectional controls ("Trojan Source"), line and paragraph separators,
# and lone surrogates (undecodable bytes decoded with surrogateescape: print() cannot
# encode them and would raise instead of printing).
_UNPRINTABLE = ("\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                "\ud800-\udfff")
_CONTROL = re.compile(f"[{_UNPRINTABLE}]")
_CONTROL_OR_NEWLINE = re.compile(f"[\n{_UNPRINTABLE}]")


def _escape(match: re.Match) -> str:
    return repr(match.group())[1:-1]


def printable(text, one_line: bool = False) -> str:
    """`text` (any value, as str) with every terminal control character escaped;
    newlines too when `one_line` (a message shown in one line of a table or a progress
    line must not start a line of its own that looks like the harness's)."""
    pattern = _CONTROL_OR_NEWLINE if one_line else _CONTROL
    return pattern.sub(_escape, "" if text is None else str(text))
