"""Sample files for the upload demo, written at demo time (no binary blobs in the
repository) and byte-for-byte the same on every run: a three-page PDF whose page 2 holds a
figure no other page has, an HTML page with a title, headings and script/nav/footer noise,
and a DOCX with headings and a table.

    python -m ragline.dev.samples DIR

The PDF is drawn with ReportLab (BSD; a dev dependency, like the extraction tests' files) in
its invariant mode, the DOCX with python-docx, its zip entries stamped with one fixed date.
`FACTS` lists a question each file answers, for the demo to ask.
"""

from __future__ import annotations

import io
import sys
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PDF_NAME = "kestrel-bay-annual-review.pdf"
HTML_NAME = "kestrel-bay-visitor-guide.html"
DOCX_NAME = "kestrel-bay-safety-handbook.docx"
#: One fixed time for every timestamp inside the files (reproducible bytes).
FIXED_TIME = datetime(2026, 1, 15, 9, 0, 0)


@dataclass(frozen=True)
class Fact:
    """A question a sample file answers, where, and a phrase the answer contains."""

    question: str
    answer: str
    file: str
    page: int | None = None


FACTS = (
    Fact(
        "How many containers did the Kestrel Bay terminal handle in 2026?",
        "4,817,302 containers",
        PDF_NAME,
        page=2,
    ),
    Fact("When does the Kestrel Bay ferry to Gull Island leave?", "07:40", HTML_NAME),
    Fact("What is the wind limit for crane work at Kestrel Bay?", "54 km/h", DOCX_NAME),
)

_PDF_PAGES: list[tuple[str, list[str]]] = [
    (
        "Kestrel Bay Port Authority: Annual Review 2026",
        [
            "This review covers the year of the Kestrel Bay Port Authority, a fictional harbour "
            "used to demonstrate document uploads in ragline.",
            "The authority runs three terminals, a ferry service and a pilot station. Its "
            "board met eleven times during the year and approved two new berths.",
        ],
    ),
    (
        "Container traffic",
        [
            "In 2026 the Kestrel Bay terminal handled 4,817,302 containers, a record for the "
            "port and 9.4 percent more than in 2025.",
            "The busiest month was October, when the second deep-water berth opened and "
            "three new shipping lines called at the terminal every week.",
            "Average crane productivity rose to 31 moves per hour.",
        ],
    ),
    (
        "Outlook",
        [
            "The authority expects steady growth while the northern breakwater is extended.",
            "Dredging of the outer channel starts in spring and lasts until the end of summer.",
        ],
    ),
]

_HTML = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Kestrel Bay Visitor Guide</title>
  <script>window.analytics = {track: function () {}}; analytics.track("page");</script>
  <style>nav { float: left } .cookie-banner { position: fixed }</style>
</head>
<body>
  <nav class="navbar"><a href="/">Home</a> | <a href="/port">The port</a> |
    <a href="/ferries">Ferries</a> | <a href="/contact">Contact</a></nav>
  <div class="cookie-banner">We use cookies to count visitors. <button>Accept</button></div>
  <main>
    <h1>Visiting Kestrel Bay</h1>
    <p>Kestrel Bay is a working harbour with a public promenade along the old quay.</p>
    <h2>Ferries</h2>
    <p>The first ferry to Gull Island leaves the north pier at 07:40 every day; the last
      one returns at 19:15. Tickets are sold on board.</p>
    <h2>Walking the breakwater</h2>
    <p>The breakwater walk is 2.3 km long and closes when waves wash over the path.</p>
    <ul><li>Wear sturdy shoes.</li><li>Keep dogs on a lead.</li></ul>
  </main>
  <footer>© 2026 Kestrel Bay Port Authority · <a href="/privacy">Privacy</a></footer>
  <script src="/static/app.js"></script>
</body>
</html>
"""


def _wrap(text: str, width: int = 88) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines


def pdf_bytes() -> bytes:
    """The annual review: three pages, one outline entry each, "Page N" at the foot."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, invariant=True)
    pdf.setTitle("Kestrel Bay Annual Review 2026")
    pdf.setAuthor("Kestrel Bay Port Authority")
    for number, (heading, paragraphs) in enumerate(_PDF_PAGES, start=1):
        key = f"page{number}"
        pdf.bookmarkPage(key)
        pdf.addOutlineEntry(heading, key, level=0)
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, 770, heading)
        pdf.setFont("Helvetica", 11)
        y = 740.0
        for paragraph in paragraphs:
            for line in _wrap(paragraph):
                pdf.drawString(72, y, line)
                y -= 14
            y -= 10
        pdf.drawString(72, 40, f"Page {number}")
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def html_bytes() -> bytes:
    return _HTML.encode()


def _fixed_zip(data: bytes) -> bytes:
    """The same zip with every entry dated FIXED_TIME, in the same order."""
    out = io.BytesIO()
    stamp = FIXED_TIME.timetuple()[:6]
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=stamp)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            dst.writestr(fixed, src.read(info.filename))
    return out.getvalue()


def docx_bytes() -> bytes:
    """The safety handbook: headings, paragraphs and a table of limits."""
    from docx import Document

    doc = Document()
    props = doc.core_properties
    props.title = "Kestrel Bay Safety Handbook"
    props.author = "Kestrel Bay Port Authority"
    props.created = props.modified = props.last_printed = FIXED_TIME
    props.revision = 1
    doc.add_heading("Kestrel Bay Safety Handbook", level=1)
    doc.add_paragraph("Everyone working on the quays reads this handbook before the first shift.")
    doc.add_heading("Cranes", level=2)
    doc.add_paragraph(
        "Crane work stops when the wind exceeds 54 km/h, measured at the top of the crane; "
        "the duty manager restarts it once the wind has stayed below that limit for 15 minutes."
    )
    doc.add_heading("Limits at a glance", level=2)
    table = doc.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Activity", "Stops above"
    for activity, limit in (("Crane work", "54 km/h wind"), ("Pilot boarding", "3.5 m waves")):
        cells = table.add_row().cells
        cells[0].text, cells[1].text = activity, limit
    doc.add_heading("Visitors", level=2)
    doc.add_paragraph("Visitors wear a high-visibility vest and stay with their escort.")
    out = io.BytesIO()
    doc.save(out)
    return _fixed_zip(out.getvalue())


def write_samples(folder: Path) -> list[Path]:
    """Write the PDF, HTML and DOCX samples into `folder` (created if needed); their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in (
        (PDF_NAME, pdf_bytes()),
        (HTML_NAME, html_bytes()),
        (DOCX_NAME, docx_bytes()),
    ):
        path = folder / name
        path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m ragline.dev.samples DIR", file=sys.stderr)
        return 2
    for path in write_samples(Path(argv[1])):
        print(f"{path}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
