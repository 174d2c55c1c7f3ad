"""DOCX with python-docx (MIT; lxml underneath, entities not resolved): paragraphs and tables
in document order, `Heading N` styles as `#` lines, the title from the core properties.

Before python-docx sees the file, the zip directory is checked: member count, each member's
declared size and compression ratio, the total, and the size of each XML part (parsed into a
tree in memory). Declared sizes can lie, and Python's zipfile inflates a whole member in one
call before cutting it to the declared size (a member claiming 1 000 bytes that inflates to
256 MiB took 590 MB), so each member is then inflated here in 64 KiB steps and must end
exactly at its declared size: what python-docx later reads is bounded by the checked sizes.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from typing import Any

from ragline.ingest.extract._base import (
    Deadline,
    Extracted,
    Format,
    Limits,
    MiB,
    Reason,
    TextBuilder,
    clean,
    clean_title,
    escape_headings,
    fail,
    heading_line,
)

MAIN_PART = "word/document.xml"
_HEADING_STYLE_RE = re.compile(r"heading\s*([1-9])", re.IGNORECASE)


def check_zip(data: bytes, limits: Limits) -> None:
    """Refuse archives that would unpack past the limits (zip bombs), or are not Word files."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise fail(Reason.CORRUPT, f"the DOCX is not a readable zip archive: {exc}") from exc
    if len(infos) > limits.max_zip_members:
        raise fail(
            Reason.TOO_LARGE,
            f"the DOCX has {len(infos)} members; the limit is {limits.max_zip_members}",
        )
    total = 0
    for info in infos:
        total += info.file_size
        is_xml = info.filename.endswith((".xml", ".rels"))
        if (
            info.file_size > MiB
            and info.file_size > limits.max_compression_ratio * max(info.compress_size, 1)
        ) or (is_xml and info.file_size > limits.max_xml_bytes):
            raise fail(
                Reason.TOO_LARGE,
                f"the DOCX member {info.filename!r} unpacks to {info.file_size} bytes "
                f"from {info.compress_size}: refused (zip bomb guard)",
                member=info.filename,
                unpacked_bytes=info.file_size,
            )
    if total > limits.max_unzipped_bytes:
        raise fail(
            Reason.TOO_LARGE,
            f"the DOCX unpacks to {total} bytes; the limit is {limits.max_unzipped_bytes}",
            unpacked_bytes=total,
        )
    if MAIN_PART not in {info.filename for info in infos}:
        raise fail(Reason.TYPE_MISMATCH, "the zip archive is not a Word document")
    for info in infos:
        _check_member(data, info)


_STEP = 64 * 1024
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra length


def _check_member(data: bytes, info: zipfile.ZipInfo) -> None:
    """Inflate one member in bounded steps; it must produce exactly its declared size."""
    lie = fail(
        Reason.CORRUPT,
        f"the DOCX member {info.filename!r} does not match its declared size (zip bomb guard)",
        member=info.filename,
    )
    if info.flag_bits & 0x1:
        raise fail(Reason.ENCRYPTED, "the DOCX is encrypted")
    header = info.header_offset
    if header < 0 or header + _LOCAL_HEADER.size > len(data):
        raise lie
    signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, header)
    if signature != b"PK\x03\x04":
        raise lie
    start = header + _LOCAL_HEADER.size + name_length + extra_length
    compressed = memoryview(data)[start : start + info.compress_size]
    if info.compress_type == zipfile.ZIP_STORED:
        if len(compressed) != info.file_size:
            raise lie
        return
    if info.compress_type != zipfile.ZIP_DEFLATED:
        raise fail(Reason.CORRUPT, f"the DOCX member {info.filename!r} uses another compression")
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced = 0
    try:
        for at in range(0, len(compressed), _STEP):
            pending = bytes(compressed[at : at + _STEP])
            while pending and not inflater.eof:
                produced += len(inflater.decompress(pending, _STEP))
                if produced > info.file_size:
                    raise lie
                pending = inflater.unconsumed_tail
            if inflater.eof:
                break
    except zlib.error as exc:
        raise fail(Reason.CORRUPT, f"the DOCX member {info.filename!r} is damaged") from exc
    if not inflater.eof or produced != info.file_size:
        raise lie


def _style_names(document: Any) -> dict[str, str]:
    """Paragraph style id → name, read once (python-docx's `paragraph.style` scans every
    style for each paragraph: 5.7 s for 3 000 paragraphs)."""
    names: dict[str, str] = {}
    for style in document.styles.element.style_lst:
        if style.styleId and style.name_val:
            names[style.styleId] = style.name_val
    return names


def _heading_level(style_name: str) -> int | None:
    match = _HEADING_STYLE_RE.fullmatch(style_name)
    return int(match.group(1)) if match else None


def _is_list_item(paragraph: Any, style_name: str) -> bool:
    """Numbered directly, or by a list style ("List Bullet", "List Number 2", ...)."""
    properties = paragraph._p.pPr
    if properties is not None and properties.numPr is not None:
        return True
    return style_name.startswith("List")


def _table_lines(table: Any) -> str:
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            if not cells or cells[-1] != text:  # a merged cell repeats in each grid column
                cells.append(text)
        if any(cells):
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def extract_docx(data: bytes, limits: Limits, deadline: Deadline) -> Extracted:
    check_zip(data, limits)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except ValueError as exc:  # python-docx: "file ... is not a Word file, content type is ..."
        raise fail(Reason.TYPE_MISMATCH, f"the zip archive is not a Word document: {exc}") from exc
    except Exception as exc:  # KeyError, lxml syntax errors, BadZipFile (CRC) ...
        raise fail(Reason.CORRUPT, f"the DOCX cannot be read: {exc}") from exc
    deadline.check("parsed")
    styles = _style_names(document)
    builder = TextBuilder(limits.max_chars)
    for number, block in enumerate(document.iter_inner_content()):
        if number % 256 == 0:
            deadline.check(f"block {number}")
        if isinstance(block, Table):
            text = _table_lines(block)
        else:
            text = clean(block.text).strip()
            style = styles.get(block._p.style or "", "") if text else ""
            level = _heading_level(style)
            if level is not None:
                text = heading_line(level, text)
            elif text:
                text = escape_headings(text)
                if _is_list_item(block, style):
                    text = "- " + text
        if text:
            builder.add(text)
    text = builder.text()
    if not text.strip():
        raise fail(Reason.NO_TEXT, "the DOCX has no text")
    try:
        title = clean_title(document.core_properties.title)
    except Exception:  # core properties are optional and often malformed
        title = None
    return Extracted(text=text, format=Format.DOCX, title=title)
