"""`printable`: logged values as text that cannot act on a terminal."""

from __future__ import annotations

import pytest

from triage.printable import WIDTH, columns, pad, printable, printable_lines, without_credentials


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("\x1b[2J\x1b[H\x1b]0;x\x07OK", "\\x1b[2J\\x1b[H\\x1b]0;x\\x07OK"),  # clear screen, set title, BEL
        ("line1\nline2\rline3\ttab", "line1\\nline2\\rline3\\ttab"),
        ("\x00nul\x7fdel\x9bcsi", "\\x00nul\\x7fdel\\x9bcsi"),  # C0, DEL, C1 (0x9b is a one-byte CSI)
        ("\u202eevil\u202c", "\\u202eevil\\u202c"),  # right-to-left override … pop
        ("\u2066\u2067\u2068\u2069\u202a\u202b\u202d", "\\u2066\\u2067\\u2068\\u2069\\u202a\\u202b\\u202d"),
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # the bidi marks
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line and paragraph separators
        ("wide表示 café ✓ v2.1-rc [bold]x[/]", "wide表示 café ✓ v2.1-rc [bold]x[/]"),  # nothing to escape
    ],
)
def test_controls_and_bidi_characters_are_shown_as_escapes(value: str, shown: str) -> None:
    assert printable(value) == shown


def test_long_values_are_cut_with_an_ellipsis() -> None:
    assert printable("X" * WIDTH) == "X" * WIDTH
    assert printable("X" * 10_000) == "X" * (WIDTH - 1) + "…"
    assert printable("\x1b" * 40, 10) == "\\x1b\\x1b\\…"  # cut after escaping: no control slips through
    assert printable("X" * 10_000, width=None) == "X" * 10_000
    assert printable(None) == "None" and printable(12) == "12"


def test_printable_text_stays_as_it_is() -> None:
    once = printable("\x1b[31m" + "Y" * 100)
    assert printable(once) == once


def test_zero_width_characters_and_the_byte_order_mark_are_shown() -> None:
    assert printable("a\u200bb\u200dc\u2060d\ufeffe") == "a\\u200bb\\u200dc\\u2060d\\ufeffe"


def test_a_decomposed_accent_is_told_apart_from_the_composed_one() -> None:
    """`cafe` + U+0301 and `café` are two categories that look alike: the decomposed one's mark is
    shown escaped; composed text, and text whose marks are its normal form (Hindi), stay as they are."""
    assert printable("cafe\u0301") == "cafe\\u0301" != printable("caf\u00e9") == "caf\u00e9"
    assert printable("नमस्ते Ångström") == "नमस्ते Ångström"
    assert printable(printable("cafe\u0301")) == printable("cafe\u0301")
    # Look-alikes NFC replaces: the Ångström sign, a CJK compatibility ideograph.
    assert printable("\u212bngstr\u00f6m \uf900") == "\\u212bngstr\u00f6m \\uf900"
    # Text merely not in NFC order keeps its marks as text: Hebrew points typed in keyboard order, a
    # virama beside a decomposed é — only the acute, which NFC composes, is escaped.
    hebrew = "\u05e9\u05c1\u05b8\u05dc\u05d5\u05b9\u05dd"
    assert printable(hebrew) == hebrew
    assert printable("\u0928\u094d e\u0301") == "\u0928\u094d e\\u0301"


def test_a_document_keeps_its_lines() -> None:
    assert printable_lines("# v\x1b[2J\n| a\u202e |\n") == "# v\\x1b[2J\n| a\\u202e |\n"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@am:9093/api/v2/alerts", "http://***@am:9093/api/v2/alerts"),
        ("https://token@[::1", "https://***@[::1"),
        ("http://am:9093/a@b", "http://am:9093/a@b"),  # an @ in the path is not a user
        ("http://am:9093", "http://am:9093"),
    ],
)
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def test_wide_characters_take_two_columns_in_a_table() -> None:
    rows = [["東京", "1"], ["São Paulo", "22"], ["x", "333"]]
    width = max(columns(name) for name, _ in rows)
    lines = [pad(name, width) + " " + pad(n, 3, right=True) for name, n in rows]
    assert {columns(line) for line in lines} == {width + 4}
    assert lines[0] == "東京" + " " * 5 + " " + "  1" and columns("東京") == 4
