"""Sample files for the extraction tests, the bench and the demo, made on the fly (no binary
blobs in the repository): PDFs (reportlab, pypdf, pypdfium2), DOCX (python-docx), zip bombs
(zipfile) and HTML. The generators are dev dependencies, imported inside each function.

`python -m ragline.testing.documents DIR` writes one of each good sample into DIR.
"""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from pathlib import Path

MiB = 1024 * 1024

#: The sections of every generated document: (level, heading, body paragraphs).
SECTIONS: list[tuple[int, str, list[str]]] = [
    (1, "Guide", ["This guide explains how to install and use the widget service."]),
    (2, "Install", ["Download the installer and check its signature before running it."]),
    (3, "Linux", ["On Linux, use the package manager: apt install widget."]),
    (3, "Windows", ["On Windows, run the MSI package as an administrator."]),
    (2, "Usage", ["Start the service with widget serve and open the dashboard."]),
    (1, "Reference", ["Every option of the widget command is listed here."]),
]
FILLER = (
    "The widget service keeps its state in a local database and replicates changes to its "
    "peers every few seconds, so a restarted node catches up without manual steps."
)


def pdf_with_headings(
    *,
    title: str | None = "Widget Guide",
    pages: int | None = None,
    fillers: int = 2,
    body_line: str | None = None,
) -> bytes:
    """A PDF with one section of `SECTIONS` per page (cycling when `pages` is larger), each
    heading in a larger font and in the outline (bookmarks) at its level, "Page N" on each."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    if title:
        pdf.setTitle(title)
    count = len(SECTIONS) if pages is None else pages
    for number in range(count):
        level, heading, body = SECTIONS[number % len(SECTIONS)]
        if number >= len(SECTIONS):
            heading = f"{heading} {number // len(SECTIONS) + 1}"
        key = f"p{number}"
        pdf.bookmarkPage(key)
        pdf.addOutlineEntry(heading, key, level=level - 1)
        y = 780.0
        pdf.setFont("Helvetica-Bold", 20 - 2 * level)
        pdf.drawString(72, y, heading)
        pdf.setFont("Helvetica", 11)
        lines = [*body, *([FILLER] * fillers)]
        if body_line is not None:
            lines.append(body_line)
        for paragraph in lines:
            y -= 30
            for piece in _wrap(paragraph, 90):
                pdf.drawString(72, y, piece)
                y -= 14
        pdf.drawString(72, 40, f"Page {number + 1}")
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines


def pdf_image_only(pages: int = 2) -> bytes:
    """A PDF whose pages are only images, like a scan without a text layer."""
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    document = pypdfium2.PdfDocument.new()
    for _ in range(pages):
        page = document.new_page(595, 842)
        image = pypdfium2.PdfImage.new(document)
        bitmap = pypdfium2.PdfBitmap.new_native(64, 32, pdfium_c.FPDFBitmap_BGR)
        bitmap.fill_rect((90, 90, 90, 255), 0, 0, 64, 32)
        image.set_bitmap(bitmap)
        image.set_matrix(pypdfium2.PdfMatrix().scale(400, 200).translate(100, 400))
        page.insert_obj(image)
        page.gen_content()
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf_encrypted(user_password: str = "secret") -> bytes:  # noqa: S107 (a test file)
    """`pdf_with_headings()` encrypted; an empty `user_password` opens without one (only the
    owner's permissions are protected, as in many "protected" PDFs)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_with_headings())))
    writer.encrypt(user_password, "owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_with_headings(*, title: str | None = "Widget Handbook", repeat: int = 1) -> bytes:
    """A DOCX with `SECTIONS` (`repeat` times, with `fillers` paragraphs after the first) as
    Heading 1-3 paragraphs, a bulleted list, a table, and a body paragraph starting with "# "
    (which must not become a heading)."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for copy in range(repeat):
        for level, heading, body in SECTIONS:
            document.add_heading(heading if copy == 0 else f"{heading} {copy + 1}", level=level)
            for paragraph in body if copy == 0 else [*body, FILLER, FILLER]:
                document.add_paragraph(paragraph)
    document.add_paragraph("# not a heading, a comment line")
    document.add_paragraph("first step", style="List Bullet")
    document.add_paragraph("second step", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(
        table.rows, [("option", "meaning"), ("--port", "listen port")], strict=True
    ):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_zip_bomb(
    unpacked: int = 256 * MiB, *, member: str = "word/document.xml", lie: bool = False
) -> bytes:
    """A DOCX-shaped zip whose `member` inflates to `unpacked` bytes of blanks (written in
    1 MiB pieces, so making it takes little memory). With `lie`, the zip directory and the
    local header claim the member is 1 000 bytes: only a reader that trusts neither the
    declared size nor reads to the end is safe."""
    out = io.BytesIO()
    piece = b" " * MiB
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        with archive.open(member, "w", force_zip64=True) as fh:
            if member == "word/document.xml":
                fh.write(_DOCUMENT_HEAD)
            for _ in range(unpacked // MiB):
                fh.write(piece)
            if member == "word/document.xml":
                fh.write(_DOCUMENT_TAIL)
    data = bytearray(out.getvalue())
    if lie:
        _patch_sizes(data, member.encode(), 1000)
    return bytes(data)


def _patch_sizes(data: bytearray, name: bytes, size: int) -> None:
    """Overwrite the uncompressed size of `name` in its local header and directory entry
    (and in their zip64 extra fields)."""
    for signature, size_at, lengths_at, name_at in (
        (b"PK\x03\x04", 22, 26, 30),
        (b"PK\x01\x02", 24, 28, 46),
    ):
        at = data.find(signature)
        while at >= 0:
            name_len, extra_len = struct.unpack_from("<HH", data, at + lengths_at)
            if bytes(data[at + name_at : at + name_at + name_len]) == name:
                struct.pack_into("<I", data, at + size_at, size)
                extra = at + name_at + name_len
                end = extra + extra_len
                while extra + 4 <= end:  # zip64 extra: uncompressed size comes first
                    tag, length = struct.unpack_from("<HH", data, extra)
                    if tag == 0x0001 and length >= 8:
                        struct.pack_into("<Q", data, extra + 4, size)
                    extra += 4 + length
            at = data.find(signature, at + 4)


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
    'officedocument.wordprocessingml.document.main+xml"/></Types>'
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="word/document.xml"/></Relationships>'
)
_DOCUMENT_HEAD = (
    b'<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats'
    b'.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>boom</w:t></w:r></w:p>'
)
_DOCUMENT_TAIL = b"</w:body></w:document>"


def html_page(
    *, title: str = "Widget Guide | Example", script_kb: int = 0, repeat: int = 1
) -> bytes:
    """An HTML page: navigation, footer, `SECTIONS` (`repeat` times) as nested h1-h3 in
    <main>, a list, a table, and `script_kb` KiB of inline script."""
    script = "var tracking = {id: 1, events: []};\n" * (script_kb * 1024 // 37 + 1)
    body = "".join(
        f"<h{level}>{heading}{f' {copy + 1}' if copy else ''}</h{level}>"
        + "".join(f"<p>{text} {FILLER}</p>" for text in paras)
        for copy in range(repeat)
        for level, heading, paras in SECTIONS
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><script>{script if script_kb else ''}</script>"
        "<style>body { font-family: sans-serif }</style></head><body>"
        "<nav><a href='/'>Home</a> <a href='/pricing'>Pricing</a></nav>"
        f"<main>{body}<ul><li>first step</li><li>second step</li></ul>"
        "<table><tr><th>option</th><th>meaning</th></tr>"
        "<tr><td>--port</td><td>listen port</td></tr></table></main>"
        f"<script>{script if script_kb else 'trackPage();'}</script>"
        "<footer>Copyright 2026 Example Corp. All rights reserved.</footer></body></html>"
    ).encode()


def html_script_only(script_kb: int = 64) -> bytes:
    """An HTML page that is all script and style: a single-page app before it runs."""
    script = "window.__STATE__ = {routes: [], user: null};\n" * (script_kb * 1024 // 46 + 1)
    return (
        "<!DOCTYPE html><html><head><title></title><style>#app{}</style>"
        f"<script>{script}</script></head><body><div id='app'></div>"
        "<noscript></noscript></body></html>"
    ).encode()


def markdown_page() -> bytes:
    return "\n\n".join(
        ["# Widget Notes"]
        + [f"{'#' * level} {heading}\n\n" + "\n\n".join(body) for level, heading, body in SECTIONS]
    ).encode()


def samples() -> dict[str, bytes]:
    """One good file of each format, named by its usual extension."""
    return {
        "guide.pdf": pdf_with_headings(),
        "handbook.docx": docx_with_headings(),
        "guide.html": html_page(script_kb=8),
        "notes.md": markdown_page(),
    }


def main(argv: list[str]) -> int:
    target = Path(argv[0] if argv else "tests/data/docs")
    target.mkdir(parents=True, exist_ok=True)
    for name, data in samples().items():
        (target / name).write_bytes(data)
        print(f"{target / name}: {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
