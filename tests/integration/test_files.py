"""Files posted raw to `ingest` (issue 13): PDF, HTML and DOCX become ready documents whose
chunks, hits and citations carry their page; bad files fail with a reason or a 4xx."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ragline.db import tenancy
from ragline.db.models import Chunk, DocumentPart
from ragline.testing import documents as samples

from .helpers import Tenant, client

PDF = "application/pdf"
HTML = "text/html"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def pdf_with_facts(pages: int, title: str | None = "Field Manual") -> bytes:
    """A PDF whose page N states a fact found nowhere else: `the access code is zebraN`."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    if title:
        pdf.setTitle(title)
    for number in range(1, pages + 1):
        pdf.setFont("Helvetica", 11)
        pdf.drawString(72, 780, f"Chapter {number} of the field manual.")
        pdf.drawString(72, 760, f"On this page the access code is zebra{number}quux.")
        pdf.drawString(72, 740, "Operators keep the manual at hand during every shift.")
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def post(tenant: Tenant, data: bytes, ctype: str, query: str = "") -> Any:
    return client("ingest").post(
        f"/{query}", data=data, headers={**tenant.headers, "Content-Type": ctype}
    )


def detail(tenant: Tenant, doc_id: str) -> dict[str, Any]:
    resp = client("documents").get(f"/{doc_id}", headers=tenant.headers)
    assert resp.status_code == 200, resp.json
    body: dict[str, Any] = resp.json
    return body


def search(tenant: Tenant, query: str, mode: str = "text") -> list[dict[str, Any]]:
    resp = client("search").post(
        "/", json={"query": query, "mode": mode, "top_k": 5}, headers=tenant.headers
    )
    assert resp.status_code == 200, resp.json
    hits: list[dict[str, Any]] = resp.json["results"]
    return hits


@pytest.fixture(autouse=True)
def _pipeline(offline_pipeline: Callable[..., None]) -> None:
    pass


def test_pdf_posted_raw_is_ready_and_hits_carry_the_page(tenant: Tenant) -> None:
    resp = post(tenant, pdf_with_facts(5), PDF)
    assert resp.status_code == 202, resp.json
    doc = detail(tenant, resp.json["document_id"])
    assert doc["status"] == "ready", doc
    assert doc["title"] == "Field Manual"  # the PDF's own title: no ?title= was given
    assert doc["source"]["format"] == "pdf"
    assert doc["source"]["page_count"] == 5
    assert doc["source"]["extracted_chars"] > 100
    assert doc["source"]["file_bytes"] > 500
    hits = search(tenant, "zebra4quux")
    assert hits and hits[0]["page"] == 4
    assert "zebra4quux" in hits[0]["text"]
    assert 0 <= hits[0]["start"] < hits[0]["end"]
    answer = client("answer").post(
        "/", json={"question": "What is the access code zebra3quux?"}, headers=tenant.headers
    )
    assert answer.status_code == 200, answer.json
    cited = {c["page"] for c in answer.json["citations"]}
    assert 3 in cited


def test_long_pdf_is_parsed_in_page_ranges(tenant: Tenant, configure: Callable[..., None]) -> None:
    configure(parse_pages_per_task="2", chunk_tokens="40", chunk_overlap_tokens="0")
    resp = post(tenant, pdf_with_facts(7), PDF, "?title=Seven+pages")
    doc_id = resp.json["document_id"]
    doc = detail(tenant, doc_id)
    assert doc["status"] == "ready", doc
    assert doc["title"] == "Seven pages"
    assert doc["source"]["page_count"] == 7
    with tenancy.tenant_session(tenant.org_id) as s:
        parts = s.scalar(
            sa.select(sa.func.count()).where(DocumentPart.document_id == uuid.UUID(doc_id))
        )
        rows = s.execute(
            sa.select(Chunk.page, Chunk.text).where(Chunk.document_id == uuid.UUID(doc_id))
        ).all()
    assert parts == 0  # assembled, then dropped
    for page, text in rows:
        for n in range(1, 8):
            if f"zebra{n}quux" in text and text.index(f"zebra{n}quux") < 20:
                assert page == n
    for n in (1, 4, 7):
        assert search(tenant, f"zebra{n}quux")[0]["page"] == n


def test_html_and_docx_become_ready_with_their_own_titles(tenant: Tenant) -> None:
    html = post(tenant, samples.html_page(title="Widget Guide", script_kb=4), HTML)
    docx = post(tenant, samples.docx_with_headings(title="Widget Handbook"), DOCX)
    for resp, title, fmt in ((html, "Widget Guide", "html"), (docx, "Widget Handbook", "docx")):
        assert resp.status_code == 202, resp.json
        doc = detail(tenant, resp.json["document_id"])
        assert (doc["status"], doc["title"], doc["source"]["format"]) == ("ready", title, fmt)
        assert doc["source"]["page_count"] is None
    hits = search(tenant, "installer signature")
    assert {h["document_id"] for h in hits} >= {html.json["document_id"]}
    assert all("tracking" not in h["text"] for h in hits)  # the script is not text
    assert any(h["section_label"] for h in hits)


def test_the_same_file_twice_is_one_document(tenant: Tenant) -> None:
    data = pdf_with_facts(2)
    first, second = post(tenant, data, PDF), post(tenant, data, PDF)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json["document_id"] == second.json["document_id"]
    assert second.json["created"] is False


def test_text_bodies_take_their_title_from_the_text(tenant: Tenant) -> None:
    resp = post(tenant, b"# Release notes\n\nVersion 2 ships today.", "text/markdown")
    assert resp.status_code == 202, resp.json
    assert detail(tenant, resp.json["document_id"])["title"] == "Release notes"


BAD_FILES: list[tuple[str, Callable[[], bytes], str, str]] = [
    ("encrypted", samples.pdf_encrypted, PDF, "encrypted"),
    ("scanned", samples.pdf_image_only, PDF, "no_text"),
    ("corrupt", lambda: b"%PDF-1.7\n" + bytes(range(256)) * 40, PDF, "corrupt"),
    ("zip bomb", samples.docx_zip_bomb, DOCX, "too_large"),
    ("script only", samples.html_script_only, HTML, "no_text"),
]


@pytest.mark.parametrize(
    ("name", "make", "ctype", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_bad_files_fail_with_a_reason_and_leave_others_alone(
    tenant: Tenant, name: str, make: Callable[[], bytes], ctype: str, reason: str
) -> None:
    good = post(tenant, pdf_with_facts(2, title=None), PDF, "?filename=good.pdf")
    assert detail(tenant, good.json["document_id"])["title"] == "good.pdf"
    resp = post(tenant, make(), ctype)
    assert resp.status_code == 202, resp.json
    doc = detail(tenant, resp.json["document_id"])
    assert doc["status"] == "failed", doc
    assert doc["failure_reason"] == reason, doc
    assert doc["error"].startswith(f"parse: {reason}")
    assert detail(tenant, good.json["document_id"])["status"] == "ready"
    assert search(tenant, "zebra2quux")[0]["document_id"] == good.json["document_id"]


@pytest.mark.parametrize(
    ("data", "ctype", "status", "code"),
    [
        (b"<!DOCTYPE html><html><body>hi</body></html>", PDF, 415, "unsupported_media_type"),
        (b"%PDF-1.4 not really", HTML, 415, "unsupported_media_type"),
        (b"", PDF, 422, "invalid_request"),
        (b"\x89PNG\r\n\x1a\n....", "image/png", 415, "unsupported_media_type"),
        (b"PK\x03\x04 not a docx", "application/zip", 415, "unsupported_media_type"),
    ],
    ids=["html-as-pdf", "pdf-as-html", "empty", "png", "zip"],
)
def test_files_refused_at_upload(
    tenant: Tenant, data: bytes, ctype: str, status: int, code: str
) -> None:
    resp = post(tenant, data, ctype)
    assert resp.status_code == status, resp.json
    assert resp.json["error"]["code"] == code


def test_a_file_over_the_body_limit_points_to_uploads(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    configure(max_body_bytes="4096")
    data = pdf_with_facts(30)
    assert len(data) > 4096
    # No Content-Length (a chunked body): the function reads up to the limit, then refuses.
    resp = client("ingest").post(
        "/",
        input_stream=io.BytesIO(data),
        headers={**tenant.headers, "Content-Type": PDF, "Transfer-Encoding": "chunked"},
    )
    assert resp.status_code == 413, resp.json
    assert "/uploads" in resp.json["error"]["message"]
    assert resp.json["error"]["details"] == {"upload_route": "/uploads"}


def test_a_declared_oversized_file_is_refused_before_reading(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    configure(max_body_bytes="4096")
    resp = post(tenant, pdf_with_facts(30), PDF)
    assert resp.status_code == 413, resp.json
    assert resp.json["error"]["details"] == {"upload_route": "/uploads"}
    json_resp = client("ingest").post(
        "/", json={"title": "t", "text": "x" * 5000}, headers=tenant.headers
    )
    assert json_resp.status_code == 413
    assert "details" not in json_resp.json["error"]  # JSON is not a file: no upload hint


def test_an_acl_query_longer_than_a_request_line_allows_is_a_422(tenant: Tenant) -> None:
    long_acl = ",".join(f"group:g{i:04d}" for i in range(200))  # 2 199 characters
    resp = post(tenant, b"# Notes\n\nshort", "text/markdown", f"?acl={long_acl}")
    assert resp.status_code == 422, resp.json
    assert "PATCH" in resp.json["error"]["message"]


def test_a_repeated_query_parameter_is_refused_not_guessed(tenant: Tenant) -> None:
    resp = post(tenant, pdf_with_facts(1), PDF, "?title=a&title=b")
    assert resp.status_code == 422, resp.json
    assert "repeated" in resp.json["error"]["message"]


def test_a_long_pdf_failing_at_assembly_leaves_no_parts(
    tenant: Tenant, configure: Callable[..., None]
) -> None:
    # Each 2-page part fits the text cap; the assembled 7 pages do not.
    configure(parse_pages_per_task="2", max_document_bytes="400")
    doc_id = post(tenant, pdf_with_facts(7), PDF).json["document_id"]
    doc = detail(tenant, doc_id)
    assert (doc["status"], doc["failure_reason"]) == ("failed", "too_large"), doc
    with tenancy.tenant_session(tenant.org_id) as s:
        parts = s.scalar(
            sa.select(sa.func.count()).where(DocumentPart.document_id == uuid.UUID(doc_id))
        )
    assert parts == 0
