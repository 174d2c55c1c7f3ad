"""Hostile markup and titles against the extractors (attack13): deep nesting is refused
before lexbor's quadratic parse, the depth scan is linear on any input, titles carry no
control characters."""

from __future__ import annotations

import time

import pytest

from ragline.core.errors import ExtractionError
from ragline.ingest.extract import Format, extract
from ragline.ingest.extract._base import Limits, clean_title

HEAD = "<!DOCTYPE html><html><body>"


def _seconds(html: str, limits: Limits | None = None) -> tuple[float, str]:
    started = time.monotonic()
    try:
        extract(html.encode(), Format.HTML, limits=limits or Limits())
        outcome = "ok"
    except ExtractionError as exc:
        outcome = exc.reason
    return time.monotonic() - started, outcome


@pytest.mark.parametrize("tag", ["<div>", "<ul>", "<section>", "<DIV class=x>"])
def test_a_megabyte_of_nested_blocks_is_refused_at_once(tag: str) -> None:
    """1 MiB of `<div>` took lexbor minutes (quadratic in depth); now refused in a scan."""
    elapsed, outcome = _seconds(HEAD + tag * (1024 * 1024 // len(tag)) + "words")
    assert outcome == "too_large"
    assert elapsed < 2.0, elapsed


def test_nesting_within_the_limit_and_flat_or_implicitly_closed_tags_are_read() -> None:
    deep = HEAD + "<div>" * 1000 + "deep words" + "</div>" * 1000
    assert extract(deep.encode(), Format.HTML).text == "deep words"
    flat = HEAD + "<div>a</div>" * 10_000 + "<p>b" * 10_000 + "<br><img src=x>" * 10_000
    assert "b" in extract(flat.encode(), Format.HTML).text
    # <html> and <body> are two levels.
    assert _seconds(HEAD + "<div>" * 99 + "x", Limits(max_markup_depth=100))[1] == "too_large"
    assert _seconds(HEAD + "<div>" * 98 + "x", Limits(max_markup_depth=100))[1] == "ok"


@pytest.mark.parametrize(
    "junk", ["<a" * 1_000_000, "<" + "a" * 3_000_000, "<a " + "b" * 3_000_000, "</" * 1_000_000]
)
def test_the_depth_scan_is_linear_on_broken_tags(junk: str) -> None:
    elapsed, outcome = _seconds(HEAD + junk + "<p>words")
    assert outcome in ("ok", "no_text")
    assert elapsed < 3.0, elapsed


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("A\x00B\x01C\x1bD\x7fE", "A BCDE"),
        ("\x1b[31mred\x1b[0m", "[31mred[0m"),
        ("two\nlines\r\u2028here", "two lines here"),
        ("\ufeff\ufffe", None),
        ("T" * 10_000, "T" * 500),
    ],
)
def test_titles_are_one_line_without_control_characters(raw: str, want: str | None) -> None:
    assert clean_title(raw) == want
