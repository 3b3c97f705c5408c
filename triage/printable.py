"""Logged values as a terminal may show them: control characters escaped, long values cut.

A version, route, segment value or category is data, and data can hold anything: an ESC sequence
that clears the screen and prints a fake `triage check — OK`, a BEL, a newline that starts a line
of its own, a right-to-left override that reverses what follows, ten thousand characters. Every
text rendering of a logged value goes through `printable`; `--json` keeps values exact.
"""

from __future__ import annotations

import re
import unicodedata

from rich.cells import cell_len

WIDTH = 60  # characters of a value in a table cell or a line, the last one `…` when cut

# C0 and C1 controls and DEL; the bidi marks, embeddings, overrides and isolates; the Unicode line
# and paragraph separators (which some terminals break lines at); the zero-width space, joiners,
# word joiner, invisible operators and the byte order mark (text that cannot be seen, or told apart).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_USERINFO = re.compile(r"(//)[^/?#@]*@")  # the `user:password@` of a URL's authority
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def without_credentials(url: str) -> str:
    """A URL as it may be shown: a user and password in it (`https://user:pw@host`) as `***`."""
    return _USERINFO.sub(r"\1***@", url)


def printable_lines(text: str) -> str:
    """A document of ours (a report) holding logged values: every line `printable`, whole, its
    line breaks kept."""
    return "\n".join(printable(line, None) for line in text.split("\n"))


def printable(value: object, width: int | None = WIDTH) -> str:
    """`value` as text that cannot act on a terminal: each control or bidi character shown as its
    Python escape (ESC as `\\x1b`, a newline as `\\n`, U+202E as `\\u202e`), in text not in NFC
    each character NFC would compose or replace too (`cafe\\u0301`, not a second `café`:
    `_composable_escaped`), and at most `width` characters (None: all), the last one `…` when cut."""
    text = _UNSAFE.sub(_escape, str(value))
    if not unicodedata.is_normalized("NFC", text):
        text = _composable_escaped(text)
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _composable_escaped(text: str) -> str:
    """A decomposed é (e + U+0301) looks like the composed é it is not equal to: the category
    "café" unseen beside the reference's "café". Each character that NFC would compose with the
    one before it, or replace (Å U+212B by Å U+00C5, a CJK compatibility ideograph), is shown
    escaped; marks NFC only reorders or keeps (Hebrew points, a Devanagari virama) stay as text."""
    shown = []
    for i, char in enumerate(text):
        replaced = unicodedata.normalize("NFC", char) != char
        composes = i > 0 and len(unicodedata.normalize("NFC", text[i - 1] + char)) == 1
        shown.append(f"\\u{ord(char):04x}" if replaced or composes else char)
    return "".join(shown)


def pad(text: str, width: int, right: bool = False) -> str:
    """`text` filled with spaces to `width` terminal columns (a wide character, 東, takes two), on
    the right — or on the left, with `right`, to align it right."""
    fill = " " * max(0, width - cell_len(text))
    return fill + text if right else text + fill


def columns(text: str) -> int:
    """The terminal columns `text` takes."""
    return cell_len(text)
