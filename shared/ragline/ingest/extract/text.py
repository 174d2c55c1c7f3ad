"""Plain text and Markdown: decoded and cleaned, otherwise kept as they are (chunking reads
their headings itself)."""

from __future__ import annotations

import codecs

from ragline.ingest.extract._base import Extracted, Format, Limits, Reason, clean, clean_title, fail


def decode(data: bytes, charset: str | None = None) -> str:
    """Bytes to text: a byte-order mark wins, then the declared charset, then UTF-8, then
    Windows-1252 (which maps almost every byte; the rest become U+FFFD)."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    if charset:
        try:
            return data.decode(charset, errors="replace")
        except LookupError:
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def markdown_title(text: str) -> str | None:
    """The first line of a Markdown file when it is a level-1 `#` heading."""
    for line in text[:4096].split("\n"):
        if line.strip():
            if not line.startswith(("# ", "#\t")):
                return None
            return clean_title(line[2:].strip().rstrip("#"))
    return None


def extract_text(data: bytes, fmt: Format, limits: Limits, charset: str | None) -> Extracted:
    if len(data) > limits.max_chars * 4:  # more bytes than any text within the limit needs
        raise fail(Reason.TOO_LARGE, f"the text is over {limits.max_chars} characters")
    raw = decode(data, charset)
    if "\x00" in raw:
        raise fail(Reason.TYPE_MISMATCH, "the file holds NUL bytes: it is not text")
    text = clean(raw).strip("\n")
    if len(text) > limits.max_chars:
        raise fail(
            Reason.TOO_LARGE,
            f"the text is over {limits.max_chars} characters",
            max_chars=limits.max_chars,
        )
    if not text.strip():
        raise fail(Reason.EMPTY, "the file holds only whitespace")
    title = markdown_title(text) if fmt is Format.MARKDOWN else None
    return Extracted(text=text, format=fmt, title=title)
