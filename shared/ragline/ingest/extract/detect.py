"""Which format a file is: its Content-Type, checked against its first bytes (never its name)."""

from __future__ import annotations

import codecs
from enum import StrEnum

from ragline.ingest.extract._base import Format, Reason, fail

#: How many leading bytes `detect` looks at (PDF allows junk before `%PDF-` within 1 KiB).
HEAD_BYTES = 4096

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

MEDIA_TYPES: dict[str, Format] = {
    "application/pdf": Format.PDF,
    "application/x-pdf": Format.PDF,
    "text/html": Format.HTML,
    "application/xhtml+xml": Format.HTML,
    DOCX_MEDIA_TYPE: Format.DOCX,
    "text/markdown": Format.MARKDOWN,
    "text/x-markdown": Format.MARKDOWN,
    "text/plain": Format.TEXT,
}
#: Declared types that say nothing: the bytes decide.
UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream"})


class Sniffed(StrEnum):
    """What the first bytes look like."""

    PDF = "pdf"
    ZIP = "zip"  # DOCX is a zip; which kind of zip is checked when it is opened
    HTML = "html"
    TEXT = "text"
    BINARY = "binary"


# Magic numbers of common files ragline does not read, so they are never taken for text.
_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"GIF8",
    b"\x1f\x8b",  # gzip
    b"\xd0\xcf\x11\xe0",  # OLE2: legacy .doc/.xls
    b"{\\rtf",
    b"7z\xbc\xaf",
    b"Rar!",
    b"\xfd7zXZ",
    b"\x7fELF",
    b"II*\x00",  # TIFF
    b"MM\x00*",
    b"%!PS",
)
# The WHATWG sniffing rules' HTML openers (compared in lower case, after leading blanks).
_HTML_OPENERS = tuple(
    f"<{tag}".encode()
    for tag in (
        "!doctype html",
        "html",
        "head",
        "script",
        "iframe",
        "h1",
        "div",
        "font",
        "table",
        "a",
        "style",
        "title",
        "b",
        "body",
        "br",
        "p",
        "!--",
    )
)
_UTF_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def media_type(content_type: str | None) -> str:
    """`text/HTML; charset=utf-8` → `text/html`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def charset(content_type: str | None) -> str | None:
    """The `charset` parameter of a Content-Type, if any and known to Python."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            value = value.strip().strip("\"'")
            try:
                return codecs.lookup(value).name
            except LookupError:
                return None
    return None


def sniff(head: bytes) -> Sniffed:
    """Classify a file by its first bytes."""
    if b"%PDF-" in head[:1024]:
        return Sniffed.PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Sniffed.ZIP
    if head.startswith(_BINARY_MAGIC):
        return Sniffed.BINARY
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Sniffed.TEXT  # decoded later; NULs are expected in UTF-16
    if not _looks_like_text(head):
        return Sniffed.BINARY
    body = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n\x0c").lower()
    for opener in _HTML_OPENERS:
        if body.startswith(opener) and body[len(opener) : len(opener) + 1] in (b" ", b">", b""):
            return Sniffed.HTML
    if body.startswith(b"<?xml") and b"<html" in body:
        return Sniffed.HTML
    return Sniffed.TEXT


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and exc.reason == "unexpected end of data":
            return True  # a multi-byte character cut by the head's end
    # Another 8-bit encoding: text if control characters are rare.
    controls = sum(1 for byte in head if byte < 0x20 and byte not in b"\t\n\r\x0c")
    return controls * 100 <= len(head)


# Which sniffed kinds each declared format accepts.
_COMPATIBLE: dict[Format, frozenset[Sniffed]] = {
    Format.PDF: frozenset({Sniffed.PDF}),
    Format.DOCX: frozenset({Sniffed.ZIP}),
    Format.HTML: frozenset({Sniffed.HTML, Sniffed.TEXT}),
    # Text that starts like HTML stays text when declared so: never upgrade to markup.
    Format.MARKDOWN: frozenset({Sniffed.TEXT, Sniffed.HTML}),
    Format.TEXT: frozenset({Sniffed.TEXT, Sniffed.HTML}),
}
_FROM_BYTES: dict[Sniffed, Format] = {
    Sniffed.PDF: Format.PDF,
    Sniffed.ZIP: Format.DOCX,
    Sniffed.HTML: Format.HTML,
    Sniffed.TEXT: Format.TEXT,
}


def detect(content_type: str | None, head: bytes) -> Format:
    """The format of a file from its declared Content-Type and its first bytes.

    A declared type must agree with the bytes (`type_mismatch` otherwise); an absent or
    `application/octet-stream` type is decided by the bytes alone. Raises ExtractionError
    with reason `empty`, `unsupported_type` or `type_mismatch`.
    """
    head = head[:HEAD_BYTES]
    if not head:
        raise fail(Reason.EMPTY, "the file is empty")
    declared = media_type(content_type)
    sniffed = sniff(head)
    if declared in UNTYPED:
        found = _FROM_BYTES.get(sniffed)
        if found is None:
            raise fail(
                Reason.UNSUPPORTED_TYPE,
                "the file is neither PDF, HTML, DOCX, Markdown nor text",
                sniffed=str(sniffed),
            )
        return found
    fmt = MEDIA_TYPES.get(declared)
    if fmt is None:
        raise fail(
            Reason.UNSUPPORTED_TYPE,
            f"{declared!r} is not a supported type ({', '.join(sorted(MEDIA_TYPES))})",
            content_type=declared,
        )
    if sniffed not in _COMPATIBLE[fmt]:
        raise fail(
            Reason.TYPE_MISMATCH,
            f"the file is declared {declared!r} but its bytes look like {sniffed}",
            content_type=declared,
            sniffed=str(sniffed),
        )
    return fmt
