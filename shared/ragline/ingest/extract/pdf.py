"""PDF with pypdfium2 (PDFium; BSD-3-Clause/Apache-2.0): text page by page, headings from the
document outline (bookmarks), the title from the metadata.

PDFium is not thread-safe, so every call holds one process-wide lock. A PDF has no heading
markup: an outline entry pointing at a page marks the line of that page that carries its
title (`2.2 Naming` for `Naming`) as a `#` heading of the entry's depth, or, if no line
matches, opens the page with it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import islice
from typing import TYPE_CHECKING

from ragline.ingest.extract._base import (
    Deadline,
    Extracted,
    Format,
    Limits,
    PagesError,
    Reason,
    TextBuilder,
    clean,
    clean_title,
    escape_headings,
    fail,
    heading_line,
)

if TYPE_CHECKING:
    import pypdfium2

_LOCK = threading.Lock()
# PDFium's FPDF_GetLastError codes at load time.
_ERR_PASSWORD = 4
_ERR_SECURITY = 5
_MAX_OUTLINE = 10_000  # outline entries read (the outline is a tree in the file: bound it)
_MAX_HEADINGS_PER_PAGE = 50
# A section number before a title on the page: "2.2 ", "IV. ", "A.1 ".
_NUMBER_PREFIX_RE = re.compile(r"(?:\d+(?:\.\d+)*\.?|[ivxlcdm]+\.|[a-z](?:\.\d+)*\.?)\s+")


@contextmanager
def _open(data: bytes, limits: Limits) -> Iterator[pypdfium2.PdfDocument]:
    import pypdfium2

    with _LOCK:
        try:
            pdf = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError as exc:
            if exc.err_code in (_ERR_PASSWORD, _ERR_SECURITY):
                raise fail(Reason.ENCRYPTED, "the PDF is encrypted with a password") from exc
            raise fail(Reason.CORRUPT, f"the PDF cannot be read: {exc}") from exc
        try:
            if len(pdf) > limits.max_pages:
                raise fail(
                    Reason.TOO_LARGE,
                    f"the PDF has {len(pdf)} pages; the limit is {limits.max_pages}",
                    page_count=len(pdf),
                    max_pages=limits.max_pages,
                )
            yield pdf
        finally:
            pdf.close()


def _title(pdf: pypdfium2.PdfDocument) -> str | None:
    try:
        return clean_title(pdf.get_metadata_value("Title"))
    except Exception:  # metadata is optional and often malformed
        return None


def count_pages(data: bytes, limits: Limits) -> tuple[int, str | None]:
    """(page count, title) without extracting text: what a caller needs to plan page ranges."""
    with _open(data, limits) as pdf:
        return len(pdf), _title(pdf)


def _outline(pdf: pypdfium2.PdfDocument, wanted: range) -> dict[int, list[tuple[int, str]]]:
    """Outline entries by page index: (level from 1, title), for pages in `wanted`."""
    found: dict[int, list[tuple[int, str]]] = {}
    try:
        for mark in islice(pdf.get_toc(max_depth=6), _MAX_OUTLINE):
            dest = mark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = clean_title(mark.get_title())
            if index is None or index not in wanted or title is None:
                continue
            entries = found.setdefault(index, [])
            if len(entries) < _MAX_HEADINGS_PER_PAGE:
                entries.append((mark.level + 1, title))
    except Exception:  # a broken outline only costs the headings
        return found
    return found


def _norm(line: str) -> str:
    return " ".join(line.split()).casefold()


def _mark_headings(text: str, headings: list[tuple[int, str]]) -> str:
    """Turn the line carrying each heading's title into a `#` line (see the module doc)."""
    lines = text.split("\n")
    marked: set[int] = set()
    missing: list[str] = []
    for level, title in headings:
        want = _norm(title)
        for index, line in enumerate(lines):
            if index in marked:
                continue
            have = _norm(line)
            if have == want or (
                have.endswith(want) and _NUMBER_PREFIX_RE.fullmatch(have[: -len(want)])
            ):
                lines[index] = heading_line(level, line)
                marked.add(index)
                break
        else:
            missing.append(heading_line(level, title))
    return "\n".join([*missing, *lines])


def extract_pdf(
    data: bytes, limits: Limits, deadline: Deadline, pages: range | None = None
) -> Extracted:
    import pypdfium2

    with _open(data, limits) as pdf:
        count = len(pdf)
        wanted = range(count) if pages is None else _check_range(pages, count)
        if len(wanted) > limits.max_pages_per_call:
            raise fail(
                Reason.TOO_LARGE,
                f"{len(wanted)} pages in one call; the limit is {limits.max_pages_per_call}: "
                "extract page ranges",
                page_count=count,
                max_pages_per_call=limits.max_pages_per_call,
            )
        headings = _outline(pdf, wanted)
        builder = TextBuilder(limits.max_chars)
        spans: list[tuple[int, int]] = []
        for index in wanted:
            deadline.check(f"page {index + 1}")
            try:
                page = pdf[index]
                try:
                    textpage = page.get_textpage()
                    raw = textpage.get_text_range()
                    textpage.close()
                finally:
                    page.close()
            except pypdfium2.PdfiumError as exc:
                raise fail(Reason.CORRUPT, f"page {index + 1} cannot be read: {exc}") from exc
            text = escape_headings(clean(raw)).strip("\n")
            if index in headings:
                text = _mark_headings(text, headings[index])
            spans.append(builder.add(text))
        text = builder.text()
        if pages is None and not text.strip():
            raise fail(
                Reason.NO_TEXT,
                "the PDF has no extractable text (scanned pages need OCR)",
                page_count=count,
            )
        return Extracted(
            text=text,
            format=Format.PDF,
            title=_title(pdf),
            page_count=count,
            pages=spans,
            first_page=wanted.start + 1,
        )


def _check_range(pages: range, count: int) -> range:
    if pages.step != 1 or not 0 <= pages.start < pages.stop:
        raise PagesError(f"pages must be a non-empty range(a, b) with 0 <= a < b, got {pages}")
    if pages.start >= count:
        raise PagesError(f"pages {pages} starts past the last page ({count} pages)")
    return range(pages.start, min(pages.stop, count))
