"""Types and helpers shared by the format modules: formats, reasons, limits, the result, the
deadline and the bounded text builder."""

from __future__ import annotations

import re
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from enum import StrEnum

from ragline.core.errors import ExtractionError

MiB = 1024 * 1024
#: Longest title kept (the documents table allows 500 characters).
MAX_TITLE = 500


class Format(StrEnum):
    PDF = "pdf"
    HTML = "html"
    DOCX = "docx"
    MARKDOWN = "markdown"
    TEXT = "text"


class Reason(StrEnum):
    """Stable `ExtractionError.reason` codes (docs/documents.md)."""

    EMPTY = "empty"  # no bytes, or only whitespace
    UNSUPPORTED_TYPE = "unsupported_type"  # a type ragline does not read (images, .doc, zip)
    TYPE_MISMATCH = "type_mismatch"  # the bytes are not what the Content-Type says
    ENCRYPTED = "encrypted"  # a PDF that needs a password to open
    CORRUPT = "corrupt"  # the parser could not read the file
    NO_TEXT = "no_text"  # readable, but nothing to index (scanned pages, script-only HTML)
    TOO_LARGE = "too_large"  # over a size, page, text or decompression limit
    TIMEOUT = "timeout"  # over the time budget of one call


class PagesError(ValueError):
    """A `pages` argument that is not a range(a, b) of pages of the file (a caller's bug)."""


def fail(reason: Reason, message: str, **details: object) -> ExtractionError:
    return ExtractionError(str(reason), message, details={"reason": str(reason), **details})


@dataclass(frozen=True)
class Limits:
    """Per-call bounds, sized for a 512 MiB function (figures in docs/documents.md)."""

    max_bytes: int = 32 * MiB  # the file
    max_markup_bytes: int = 5 * MiB  # HTML: the lxml tree takes many times the input
    max_markup_depth: int = 4096  # HTML: lexbor's parse is quadratic in the nesting depth
    max_chars: int = 4 * MiB  # extracted text (the default per-document text cap is 4 MiB)
    max_pages: int = 2000  # pages in a PDF
    max_pages_per_call: int = 200  # pages extracted by one call: split larger PDFs into ranges
    max_unzipped_bytes: int = 64 * MiB  # DOCX: all members, as declared in the zip directory
    max_xml_bytes: int = 16 * MiB  # DOCX: one XML part (parsed into a tree in memory)
    max_zip_members: int = 2000
    max_compression_ratio: int = 100  # DOCX: a member over 1 MiB unpacking to more is a bomb
    timeout_s: float | None = 60.0  # checked between pages and blocks, not inside a library call


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Extracted:
    """A document's text as chunking sees it, with where its pages are."""

    text: str  # Markdown-style: headings are `#` lines, blocks separated by blank lines
    format: Format
    title: str | None  # the file's own title (PDF metadata, HTML <title>, DOCX properties)
    page_count: int | None = None  # PDF: pages in the whole file; None for other formats
    pages: list[tuple[int, int]] = field(default_factory=list)  # PDF: text[start:end] per page
    first_page: int = 1  # 1-based number of the page at pages[0] (with a page range)

    def page_of(self, offset: int) -> int | None:
        """The 1-based page holding character `offset` of `text` (None if not a PDF)."""
        return page_of(offset, self.pages, first_page=self.first_page)


def page_of(offset: int, pages: list[tuple[int, int]], *, first_page: int = 1) -> int | None:
    """The 1-based page whose span holds `offset` (a chunk's start); an offset between two
    pages belongs to the earlier one; None when there are no pages or the offset precedes
    them."""
    index = bisect_right([start for start, _ in pages], offset) - 1
    return None if index < 0 else first_page + index


class Deadline:
    """A time budget checked between units of work (pages, blocks)."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds

    def check(self, where: str) -> None:
        if self.at is not None and time.monotonic() >= self.at:
            raise fail(
                Reason.TIMEOUT,
                f"extraction ran over its {self.seconds} s budget ({where}); "
                "split the document (page ranges) or raise the limit",
                timeout_s=self.seconds,
            )


class TextBuilder:
    """Blocks joined by blank lines, refusing to grow past `max_chars`."""

    SEPARATOR = "\n\n"

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self.parts: list[str] = []
        self.size = 0
        self.blocks = 0

    def add(self, block: str) -> tuple[int, int]:
        """Append `block`; return its (start, end) in the text."""
        separator = self.SEPARATOR if self.blocks else ""
        start = self.size + len(separator)
        end = start + len(block)
        if end > self.max_chars:
            raise fail(
                Reason.TOO_LARGE,
                f"the extracted text is over {self.max_chars} characters",
                max_chars=self.max_chars,
            )
        if separator:
            self.parts.append(separator)
        self.parts.append(block)
        self.size = end
        self.blocks += 1
        return start, end

    def text(self) -> str:
        return "".join(self.parts)


# C0 controls other than tab and newline, DEL, and PDFium's soft-hyphen markers (U+FFFE and
# U+0002 at a hyphenated line break) and byte-order marks: none belongs in indexed text.
_DROP = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xFFFE, 0xFEFF])
# A line that chunking would read as an ATX heading ("# ..." at column 0).
_HEADING_LIKE_RE = re.compile(r"^(?=#{1,6}(?:[ \t]|$))", re.MULTILINE)


def clean(text: str) -> str:
    """Unix newlines, no control characters, no trailing blanks on lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_DROP)
    # Per line, not a `[ \t]+$` regex: that rescans a long run of blanks from every position.
    return "\n".join(line.rstrip(" \t") for line in text.split("\n"))


def escape_headings(text: str) -> str:
    """Indent body lines that look like `#` headings by one space, so only the headings the
    extractor writes label sections (chunking reads ATX headings at column 0 only)."""
    return _HEADING_LIKE_RE.sub(" ", text)


# Titles that tools write when the author gave none (ReportLab writes "untitled").
_PLACEHOLDER_TITLES = frozenset({"untitled", "untitled document", "no title", "title"})


def clean_title(title: object) -> str | None:
    """One line without control characters, at most MAX_TITLE characters; None for nothing
    or a tool's placeholder."""
    if not isinstance(title, str):
        return None
    title = " ".join(title.replace("\x00", " ").translate(_DROP).split())[:MAX_TITLE].strip()
    return None if title.casefold() in _PLACEHOLDER_TITLES else title or None


def heading_line(level: int, title: str) -> str:
    return "#" * max(1, min(level, 6)) + " " + " ".join(title.split())
