"""The demo's sample files: the same bytes on every run, and each answers its question
through the real extractors (the PDF's figure on page 2 only)."""

from __future__ import annotations

from pathlib import Path

from ragline.dev import samples
from ragline.ingest.extract import HEAD_BYTES, detect, extract

TYPES = {
    samples.PDF_NAME: "application/pdf",
    samples.HTML_NAME: "text/html",
    samples.DOCX_NAME: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def test_samples_are_reproducible(tmp_path: Path) -> None:
    first = samples.write_samples(tmp_path / "a")
    second = samples.write_samples(tmp_path / "b")
    assert [p.name for p in first] == [samples.PDF_NAME, samples.HTML_NAME, samples.DOCX_NAME]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_each_fact_is_in_its_file_and_the_pdf_figure_on_page_two(tmp_path: Path) -> None:
    written = {p.name: p.read_bytes() for p in samples.write_samples(tmp_path)}
    for fact in samples.FACTS:
        data = written[fact.file]
        doc = extract(data, detect(TYPES[fact.file], data[:HEAD_BYTES]))
        assert doc.title, fact.file
        offset = doc.text.find(fact.answer)
        assert offset >= 0, (fact.file, fact.answer)
        assert doc.page_of(offset) == fact.page
        other_files = [n for n in written if n != fact.file]
        assert all(fact.answer.encode() not in written[n] for n in other_files)
    pdf = extract(written[samples.PDF_NAME], detect("application/pdf", b"%PDF-"))
    assert pdf.page_count == 3 and pdf.text.count("4,817,302") == 1


def test_html_noise_is_left_out(tmp_path: Path) -> None:
    data = samples.html_bytes()
    doc = extract(data, detect("text/html", data[:HEAD_BYTES]))
    assert doc.title == "Kestrel Bay Visitor Guide"
    assert "## Ferries" in doc.text
    assert "analytics" not in doc.text and "cookies" not in doc.text and "Privacy" not in doc.text
