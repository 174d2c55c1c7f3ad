"""Files to text for chunking: PDF, HTML, DOCX, Markdown and plain text (issue 13).

    fmt = detect(content_type, data[:HEAD_BYTES])      # Content-Type checked against the bytes
    probed = probe(data, fmt)                           # PDF: page count, to plan page ranges
    doc = extract(data, fmt, pages=range(0, 50))        # pages [0, 50) of a PDF, or None: all
    chunks = split_document(doc.text)                   # `#` headings → section labels
    page = doc.page_of(chunk.start)                     # 1-based page of a chunk (PDF)

Every failure is an `ExtractionError` with a stable `reason` (`Reason`); parsers are imported
on first use (cold starts). Pure: no database, no HTTP. See docs/documents.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ragline.core.errors import ExtractionError
from ragline.ingest.extract._base import (
    DEFAULT_LIMITS,
    Deadline,
    Extracted,
    Format,
    Limits,
    PagesError,
    Reason,
    fail,
    page_of,
)
from ragline.ingest.extract.detect import HEAD_BYTES, charset, detect

__all__ = [
    "DEFAULT_LIMITS",
    "HEAD_BYTES",
    "Extracted",
    "ExtractionError",
    "Format",
    "Limits",
    "PagesError",
    "Probe",
    "Reason",
    "charset",
    "detect",
    "extract",
    "page_of",
    "page_ranges",
    "probe",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Probe:
    """What a file is before its text is extracted."""

    format: Format
    page_count: int | None  # PDF pages; None for other formats
    title: str | None  # PDF metadata title (other formats: known after `extract`)


def _check_size(data: bytes, limits: Limits) -> None:
    if not data:
        raise fail(Reason.EMPTY, "the file is empty")
    if len(data) > limits.max_bytes:
        raise fail(
            Reason.TOO_LARGE,
            f"the file is {len(data)} bytes; the limit is {limits.max_bytes}",
            bytes=len(data),
            max_bytes=limits.max_bytes,
        )


def probe(data: bytes, fmt: Format, *, limits: Limits = DEFAULT_LIMITS) -> Probe:
    """The page count (and title) of a PDF without extracting its text; cheap for the rest."""
    _check_size(data, limits)
    if fmt is not Format.PDF:
        return Probe(fmt, None, None)
    from ragline.ingest.extract.pdf import count_pages

    count, title = _guarded(lambda: count_pages(data, limits), fmt)
    return Probe(fmt, count, title)


def page_ranges(page_count: int, per_call: int = DEFAULT_LIMITS.max_pages_per_call) -> list[range]:
    """Consecutive page ranges of at most `per_call` pages covering a PDF, one per task."""
    if per_call < 1:
        raise ValueError(f"per_call must be at least 1, got {per_call}")
    return [range(a, min(a + per_call, page_count)) for a in range(0, page_count, per_call)]


def extract(
    data: bytes,
    fmt: Format,
    *,
    pages: range | None = None,
    limits: Limits = DEFAULT_LIMITS,
    charset: str | None = None,
) -> Extracted:
    """The text of a file of format `fmt` (from `detect`), within `limits`.

    `pages` (PDF only) selects pages [a, b), 0-based; the stop is clamped to the page count,
    `Extracted.first_page` is a + 1, and a range without text is returned empty rather than
    failing `no_text` (the caller judges the whole document). `charset` (from the
    Content-Type) decodes HTML and text without a byte-order mark. Raises ExtractionError;
    PagesError (a ValueError) for a malformed `pages` argument.
    """
    if pages is not None and fmt is not Format.PDF:
        raise PagesError(f"pages apply to PDF only, not {fmt}")
    _check_size(data, limits)
    deadline = Deadline(limits.timeout_s)
    if fmt is Format.PDF:
        from ragline.ingest.extract.pdf import extract_pdf

        return _guarded(lambda: extract_pdf(data, limits, deadline, pages), fmt)
    if fmt is Format.HTML:
        from ragline.ingest.extract.html import extract_html

        return _guarded(lambda: extract_html(data, limits, deadline, charset), fmt)
    if fmt is Format.DOCX:
        from ragline.ingest.extract.docx import extract_docx

        return _guarded(lambda: extract_docx(data, limits, deadline), fmt)
    from ragline.ingest.extract.text import extract_text

    return _guarded(lambda: extract_text(data, fmt, limits, charset), fmt)


def _guarded(run: Callable[[], T], fmt: Format) -> T:
    """Run a format's extractor; a parser failure it did not foresee becomes `corrupt`."""
    try:
        return run()
    except (ExtractionError, PagesError, MemoryError):
        raise
    except RecursionError as exc:
        raise fail(Reason.CORRUPT, f"the {fmt} file nests too deeply") from exc
    except Exception as exc:
        logger.warning("%s parser failed: %r", fmt, exc)
        raise fail(Reason.CORRUPT, f"the {fmt} file cannot be read ({type(exc).__name__})") from exc
