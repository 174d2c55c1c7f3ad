"""Unit tests of ragline.ingest.extract: detection, text and structure per format, pages and
offsets, titles, limits and the reason code of every bad file. Files are generated here
(ragline.testing.documents); nothing is timed."""

from __future__ import annotations

import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import pytest

from ragline.core.errors import ExtractionError, RaglineError
from ragline.ingest.chunking import split_document
from ragline.ingest.extract import (
    HEAD_BYTES,
    Extracted,
    Format,
    Limits,
    PagesError,
    Reason,
    charset,
    detect,
    extract,
    page_of,
    page_ranges,
    probe,
)
from ragline.ingest.extract.detect import DOCX_MEDIA_TYPE
from ragline.testing import documents as samples

MiB = 1024 * 1024
PDF = "application/pdf"
HTML = "text/html; charset=utf-8"


def reason_of(data: bytes, content_type: str | None, **kwargs: object) -> str:
    """Detect and extract `data`, expecting an ExtractionError; its reason."""
    with pytest.raises(ExtractionError) as caught:
        extract(data, detect(content_type, data[:HEAD_BYTES]), **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, RaglineError)
    assert caught.value.code == "extraction_failed"
    assert caught.value.details["reason"] == caught.value.reason
    return caught.value.reason


def labels(doc: Extracted) -> list[str | None]:
    chunks = split_document(doc.text, max_tokens=60, overlap_tokens=10)
    return list(dict.fromkeys(chunk.section_label for chunk in chunks))


EXPECTED_LABELS = [
    "Guide",
    "Guide > Install",
    "Guide > Install > Linux",
    "Guide > Install > Windows",
    "Guide > Usage",
    "Reference",
]


@pytest.fixture(scope="module")
def guide_pdf() -> bytes:
    return samples.pdf_with_headings()


# --- detection -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type", "head", "expected"),
    [
        ("pdf declared", PDF, b"%PDF-1.7\n...", Format.PDF),
        ("pdf after junk", PDF, b"\n\n  %PDF-1.4\n", Format.PDF),
        ("pdf untyped", "application/octet-stream", b"%PDF-1.7\n", Format.PDF),
        ("pdf no type", None, b"%PDF-1.7\n", Format.PDF),
        ("docx declared", DOCX_MEDIA_TYPE, b"PK\x03\x04\x14\x00", Format.DOCX),
        ("zip untyped", "", b"PK\x03\x04\x14\x00", Format.DOCX),
        ("html declared", "Text/HTML; charset=UTF-8", b"<!doctype html><p>x", Format.HTML),
        ("html untyped", None, b"\xef\xbb\xbf  <html lang=en>", Format.HTML),
        ("html without tags", "text/html", b"just words", Format.HTML),
        ("text stays text", "text/plain", b"<html><p>x</p></html>", Format.TEXT),
        ("markdown", "text/markdown", b"# Title\n\nbody", Format.MARKDOWN),
        ("text untyped", None, "caf\u00e9 au lait\n".encode(), Format.TEXT),
        ("latin-1 text", "text/plain", "caf\u00e9\n".encode("latin-1"), Format.TEXT),
        ("utf-16 text", "text/plain", "hi".encode("utf-16"), Format.TEXT),
        ("cut multibyte", None, "a\u00e9".encode()[:2], Format.TEXT),
    ],
)
def test_detect(name: str, content_type: str | None, head: bytes, expected: Format) -> None:
    assert detect(content_type, head) is expected, name


@pytest.mark.parametrize(
    ("name", "content_type", "head", "reason"),
    [
        ("empty", PDF, b"", Reason.EMPTY),
        ("empty untyped", None, b"", Reason.EMPTY),
        ("text declared pdf", PDF, b"hello world", Reason.TYPE_MISMATCH),
        ("pdf declared html", "text/html", b"%PDF-1.7\n", Reason.TYPE_MISMATCH),
        ("pdf declared text", "text/plain", b"%PDF-1.7\n", Reason.TYPE_MISMATCH),
        ("pdf declared docx", DOCX_MEDIA_TYPE, b"%PDF-1.7\n", Reason.TYPE_MISMATCH),
        ("png declared markdown", "text/markdown", b"\x89PNG\r\n\x1a\n", Reason.TYPE_MISMATCH),
        ("binary declared text", "text/plain", b"\x00\x01\x02\x03abc", Reason.TYPE_MISMATCH),
        ("png declared", "image/png", b"\x89PNG\r\n\x1a\n", Reason.UNSUPPORTED_TYPE),
        ("png untyped", "application/octet-stream", b"\x89PNG\r\n", Reason.UNSUPPORTED_TYPE),
        ("legacy doc", None, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Reason.UNSUPPORTED_TYPE),
        ("msword", "application/msword", b"\xd0\xcf\x11\xe0", Reason.UNSUPPORTED_TYPE),
    ],
)
def test_detect_refuses(name: str, content_type: str | None, head: bytes, reason: Reason) -> None:
    with pytest.raises(ExtractionError) as caught:
        detect(content_type, head)
    assert caught.value.reason == reason, name


def test_a_file_name_is_never_consulted() -> None:
    # The API takes no name: a ".pdf" upload of text is text, or a mismatch when declared PDF.
    assert detect(None, b"plain words") is Format.TEXT


def test_charset_parameter() -> None:
    assert charset("text/html; charset=ISO-8859-1") == "iso8859-1"
    assert charset('text/plain; charset="utf-8"') == "utf-8"
    assert charset("text/plain; charset=no-such-codec") is None
    assert charset(None) is None


# --- PDF -----------------------------------------------------------------------------------------


def test_pdf_text_pages_headings_and_title(guide_pdf: bytes) -> None:
    doc = extract(guide_pdf, detect(PDF, guide_pdf))
    assert (doc.format, doc.title, doc.page_count, doc.first_page) == (
        Format.PDF,
        "Widget Guide",
        6,
        1,
    )
    assert len(doc.pages) == 6
    for number, (start, end) in enumerate(doc.pages, start=1):
        page_text = doc.text[start:end]
        assert f"Page {number}" in page_text
        assert page_text == page_text.strip()
        assert doc.page_of(start) == doc.page_of(end - 1) == number
    assert [(a, b) for (_, a), (b, _) in zip(doc.pages, doc.pages[1:], strict=False)] == [
        (end, end + 2) for _, end in doc.pages[:-1]
    ]  # pages are separated by one blank line
    # The outline's entries became headings at their levels: sections follow the document.
    assert labels(doc) == EXPECTED_LABELS
    assert "# Guide\n" in doc.text and "### Linux\n" in doc.text


def test_pdf_chunks_know_their_page(guide_pdf: bytes) -> None:
    doc = extract(guide_pdf, Format.PDF)
    chunks = split_document(doc.text, max_tokens=40, overlap_tokens=5)
    assert len(chunks) > len(doc.pages)
    for chunk in chunks:
        page = doc.page_of(chunk.start)
        assert page is not None
        start, end = doc.pages[page - 1]
        assert start <= chunk.start < end
        if f"Page {page}" in chunk.text:
            assert all(f"Page {n}" not in chunk.text for n in range(1, 7) if n != page)


def test_pdf_page_range(guide_pdf: bytes) -> None:
    whole = extract(guide_pdf, Format.PDF)
    part = extract(guide_pdf, Format.PDF, pages=range(2, 4))
    assert (part.first_page, part.page_count, len(part.pages)) == (3, 6, 2)
    assert "Page 3" in part.text and "Page 4" in part.text
    assert "Page 2" not in part.text and "Page 5" not in part.text
    assert [part.page_of(start) for start, _ in part.pages] == [3, 4]
    for index, (start, end) in enumerate(part.pages):
        whole_start, whole_end = whole.pages[index + 2]
        assert part.text[start:end] == whole.text[whole_start:whole_end]
    # The stop is clamped to the page count; ranges cover the file one task at a time.
    assert len(extract(guide_pdf, Format.PDF, pages=range(4, 100)).pages) == 2
    texts = [extract(guide_pdf, Format.PDF, pages=r).text for r in page_ranges(6, 4)]
    assert "\n\n".join(texts) == whole.text


@pytest.mark.parametrize("pages", [range(6, 8), range(2, 2), range(0, 4, 2), range(-1, 2)])
def test_pdf_bad_page_range_is_a_caller_error(guide_pdf: bytes, pages: range) -> None:
    with pytest.raises(PagesError):
        extract(guide_pdf, Format.PDF, pages=pages)


def test_pages_apply_to_pdf_only() -> None:
    with pytest.raises(PagesError):
        extract(b"text", Format.TEXT, pages=range(0, 1))


def test_probe_counts_pages_without_text(guide_pdf: bytes) -> None:
    probed = probe(guide_pdf, Format.PDF)
    assert (probed.format, probed.page_count, probed.title) == (Format.PDF, 6, "Widget Guide")
    assert probe(b"# hi", Format.MARKDOWN).page_count is None


def test_page_ranges_and_page_of() -> None:
    assert page_ranges(450, 200) == [range(0, 200), range(200, 400), range(400, 450)]
    assert page_ranges(0, 10) == []
    with pytest.raises(ValueError, match="per_call"):
        page_ranges(10, 0)
    spans = [(0, 10), (12, 20), (22, 30)]
    assert [page_of(offset, spans) for offset in (0, 9, 10, 12, 29, 99)] == [1, 1, 1, 2, 3, 3]
    assert page_of(13, spans, first_page=41) == 42
    assert page_of(0, []) is None


def test_pdf_too_many_pages_per_call(guide_pdf: bytes) -> None:
    limits = Limits(max_pages_per_call=4)
    assert reason_of(guide_pdf, PDF, limits=limits) == Reason.TOO_LARGE
    assert extract(guide_pdf, Format.PDF, pages=range(0, 4), limits=limits).page_count == 6
    assert reason_of(guide_pdf, PDF, limits=Limits(max_pages=5)) == Reason.TOO_LARGE


def test_pdf_body_line_that_looks_like_a_heading_labels_nothing() -> None:
    data = samples.pdf_with_headings(pages=1, body_line="# 1 priority for the team")
    doc = extract(data, Format.PDF)
    assert "\n # 1 priority" in doc.text
    assert labels(doc) == ["Guide"]


def test_pdf_without_metadata_title() -> None:
    assert extract(samples.pdf_with_headings(title=None), Format.PDF).title is None


def test_pdf_image_only_has_no_text() -> None:
    data = samples.pdf_image_only()
    assert reason_of(data, PDF) == Reason.NO_TEXT
    # A page range is judged by the caller with the rest of the document: empty, not an error.
    part = extract(data, Format.PDF, pages=range(0, 1))
    assert (part.text, part.pages) == ("", [(0, 0)])


def test_pdf_encrypted_with_a_password() -> None:
    assert reason_of(samples.pdf_encrypted("secret"), PDF) == Reason.ENCRYPTED


def test_pdf_encrypted_without_a_user_password_is_read() -> None:
    doc = extract(samples.pdf_encrypted(""), Format.PDF)
    assert labels(doc) == EXPECTED_LABELS


@pytest.mark.parametrize("cut", ["head", "tail"])
def test_pdf_truncated_is_corrupt(guide_pdf: bytes, cut: str) -> None:
    data = guide_pdf[:1500] if cut == "head" else guide_pdf[:-300]
    assert reason_of(data, PDF) == Reason.CORRUPT


def test_pdf_garbage_after_the_header_is_corrupt() -> None:
    assert reason_of(b"%PDF-1.7\n" + bytes(range(256)) * 40, PDF) == Reason.CORRUPT


def test_pdf_time_budget() -> None:
    data = samples.pdf_with_headings(pages=2)
    assert reason_of(data, PDF, limits=Limits(timeout_s=0)) == Reason.TIMEOUT


def test_pdf_text_limit(guide_pdf: bytes) -> None:
    assert reason_of(guide_pdf, PDF, limits=Limits(max_chars=1000)) == Reason.TOO_LARGE


# --- DOCX ----------------------------------------------------------------------------------------


def test_docx_headings_lists_tables_and_title() -> None:
    data = samples.docx_with_headings()
    doc = extract(data, detect(DOCX_MEDIA_TYPE, data[:HEAD_BYTES]))
    assert (doc.format, doc.title, doc.page_count, doc.pages) == (
        Format.DOCX,
        "Widget Handbook",
        None,
        [],
    )
    assert labels(doc) == EXPECTED_LABELS
    assert "## Install\n\nDownload the installer" in doc.text
    assert "- first step" in doc.text and "| --port | listen port |" in doc.text
    # A body paragraph starting with "# " is indented, so it labels no section.
    assert "\n # not a heading" in doc.text


def test_docx_without_title() -> None:
    assert extract(samples.docx_with_headings(title=None), Format.DOCX).title is None


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """Each inflates to 256 MiB of blanks from about 260 KB."""
    return {
        "document": samples.docx_zip_bomb(),
        "media": samples.docx_zip_bomb(member="word/media/image1.png"),
        "lying": samples.docx_zip_bomb(lie=True),
    }


@pytest.fixture
def traced() -> Iterator[None]:
    tracemalloc.start()
    yield
    tracemalloc.stop()


@pytest.mark.parametrize(
    ("bomb", "reason"),
    [("document", Reason.TOO_LARGE), ("media", Reason.TOO_LARGE), ("lying", Reason.CORRUPT)],
)
def test_docx_zip_bomb_is_refused_in_bounded_memory(
    bombs: dict[str, bytes], bomb: str, reason: Reason, traced: None
) -> None:
    data = bombs[bomb]
    assert len(data) < MiB
    with zipfile.ZipFile(BytesIO(data)) as archive:
        # The lying bomb claims 1 000 bytes; without the guard zipfile inflates all 256 MiB.
        sizes = {info.filename: info.file_size for info in archive.infolist()}
    assert max(sizes.values()) == (1000 if bomb == "lying" else max(sizes.values()))
    tracemalloc.reset_peak()
    assert reason_of(data, DOCX_MEDIA_TYPE) == reason
    _, peak = tracemalloc.get_traced_memory()
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB while refusing a 256 MiB bomb"


def test_docx_total_unpacked_limit(bombs: dict[str, bytes]) -> None:
    lax = Limits(max_compression_ratio=10**6, max_xml_bytes=10**12)
    assert reason_of(bombs["document"], DOCX_MEDIA_TYPE, limits=lax) == Reason.TOO_LARGE


def test_docx_that_is_another_zip_is_a_mismatch() -> None:
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    assert reason_of(out.getvalue(), DOCX_MEDIA_TYPE) == Reason.TYPE_MISMATCH


def test_docx_damaged_zip_is_corrupt() -> None:
    data = samples.docx_with_headings()
    assert reason_of(data[: len(data) // 2], DOCX_MEDIA_TYPE) == Reason.CORRUPT
    assert reason_of(b"PK\x03\x04" + b"\x00" * 200, DOCX_MEDIA_TYPE) == Reason.CORRUPT


# --- HTML ----------------------------------------------------------------------------------------


def test_html_main_content_headings_and_title() -> None:
    data = samples.html_page(script_kb=64)
    doc = extract(data, detect(HTML, data[:HEAD_BYTES]))
    assert (doc.format, doc.title, doc.pages) == (Format.HTML, "Widget Guide | Example", [])
    assert labels(doc)[: len(EXPECTED_LABELS)] == EXPECTED_LABELS
    assert "apt install widget" in doc.text and "- first step" in doc.text
    assert "| --port | listen port |" in doc.text
    for boilerplate in ("tracking", "font-family", "Pricing", "Copyright"):
        assert boilerplate not in doc.text
    assert len(doc.text) < len(data) / 20  # 64 KiB of script are gone


def test_html_that_is_only_script_has_no_text() -> None:
    assert reason_of(samples.html_script_only(), HTML) == Reason.NO_TEXT


def test_html_charset_from_content_type() -> None:
    html = (
        "<html><title>Caf\u00e9</title><body><h1>Men\u00fc</h1>"
        "<p>Cr\u00e8me br\u00fbl\u00e9e pour deux.</p></body></html>"
    )
    data = html.encode("latin-1")
    content_type = "text/html; charset=ISO-8859-1"
    doc = extract(data, detect(content_type, data), charset=charset(content_type))
    assert doc.title == "Caf\u00e9"
    assert "Cr\u00e8me br\u00fbl\u00e9e" in doc.text and labels(doc) == ["Men\u00fc"]


def test_html_markup_limit() -> None:
    data = samples.html_page()
    assert reason_of(data, HTML, limits=Limits(max_markup_bytes=len(data) - 1)) == "too_large"


# --- Markdown and text ---------------------------------------------------------------------------


def test_markdown_title_and_sections() -> None:
    data = samples.markdown_page()
    doc = extract(data, detect("text/markdown", data))
    assert doc.title == "Widget Notes" and doc.format is Format.MARKDOWN
    assert labels(doc) == ["Widget Notes", *EXPECTED_LABELS]


def test_text_is_decoded_and_cleaned() -> None:
    data = "\ufeffline one\r\nline two\t \r\n\x07bell".encode()
    doc = extract(data, detect("text/plain", data))
    assert (doc.text, doc.title, doc.format) == ("line one\nline two\nbell", None, Format.TEXT)
    latin = extract("caf\u00e9".encode("latin-1"), Format.TEXT)
    assert latin.text == "caf\u00e9"


@pytest.mark.parametrize(
    ("name", "data", "fmt", "reason"),
    [
        ("empty", b"", Format.TEXT, Reason.EMPTY),
        ("blank", b" \n\t\n", Format.MARKDOWN, Reason.EMPTY),
        ("nul past the head", b"a" * HEAD_BYTES + b"\x00", Format.TEXT, Reason.TYPE_MISMATCH),
        ("empty pdf", b"", Format.PDF, Reason.EMPTY),
        ("empty docx", b"", Format.DOCX, Reason.EMPTY),
    ],
)
def test_text_refusals(name: str, data: bytes, fmt: Format, reason: Reason) -> None:
    with pytest.raises(ExtractionError) as caught:
        extract(data, fmt)
    assert caught.value.reason == reason, name


def test_file_size_limit() -> None:
    assert reason_of(b"x" * 101, "text/plain", limits=Limits(max_bytes=100)) == "too_large"
    assert reason_of(b"x" * 101, "text/plain", limits=Limits(max_chars=100)) == "too_large"


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (samples.pdf_with_headings, Format.PDF),
        (samples.docx_with_headings, Format.DOCX),
        (samples.html_page, Format.HTML),
        (samples.markdown_page, Format.TEXT),  # untyped text: its `#` headings still count
    ],
)
def test_untyped_samples_are_detected_from_their_bytes(
    make: Callable[[], bytes], fmt: Format
) -> None:
    data = make()
    doc = extract(data, detect(None, data[:HEAD_BYTES]))
    assert doc.format is fmt
    assert labels(doc)[-len(EXPECTED_LABELS) :] == EXPECTED_LABELS


def test_every_reason_is_documented() -> None:
    page = (Path(__file__).parents[2] / "docs" / "documents.md").read_text()
    for reason in Reason:
        assert f"`{reason}`" in page
