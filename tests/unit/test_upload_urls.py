"""Upload requests: file names, content types and object names (ragline.ingest.upload_urls)."""

from __future__ import annotations

import uuid

import pydantic
import pytest

from ragline.core import errors
from ragline.ingest.upload_urls import (
    UploadRequest,
    check_content_type,
    check_filename,
    object_name,
    parse_object_name,
)

GOOD_NAMES = [
    ("plain", "report.pdf", "report.pdf"),
    ("spaces kept inside", "Annual report 2026.pdf", "Annual report 2026.pdf"),
    ("blanks around dropped", "  notes.md \t", "notes.md"),
    ("NFC", "Re\u0301sume\u0301.docx", "Résumé.docx"),
    ("non-Latin", "报告.pdf", "报告.pdf"),
    ("a dot file", ".profile.txt", ".profile.txt"),
    ("hash and question mark", "q#1?.txt", "q#1?.txt"),
    ("200 characters", "a" * 196 + ".pdf", "a" * 196 + ".pdf"),
]


@pytest.mark.parametrize(("name", "value", "stored"), GOOD_NAMES, ids=[g[0] for g in GOOD_NAMES])
def test_good_file_names(name: str, value: str, stored: str) -> None:
    assert check_filename(value) == stored


BAD_NAMES = [
    ("empty", "", "empty"),
    ("blank", "   ", "empty"),
    ("slash", "a/b.pdf", "'/'"),
    ("backslash", "a\\b.pdf", "'/'"),
    ("parent", "..", "'..'"),
    ("dot dot inside", "a..pdf", "'..'"),
    ("newline", "a\nb.pdf", "control"),
    ("NUL", "a\x00b.pdf", "control"),
    ("DEL", "a\x7fb.pdf", "control"),
    ("right-to-left override", "invoice\u202efdp.exe", "control"),
    ("zero-width space", "a\u200bb.pdf", "control"),
    ("line separator", "a\u2028b.pdf", "control"),
    ("201 characters", "a" * 197 + ".pdf", "longer than 200"),
]


@pytest.mark.parametrize(("name", "value", "match"), BAD_NAMES, ids=[b[0] for b in BAD_NAMES])
def test_bad_file_names(name: str, value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_filename(value)


@pytest.mark.parametrize(
    ("declared", "signed"),
    [
        ("application/pdf", "application/pdf"),
        ("Application/PDF", "application/pdf"),
        ("text/html; charset=UTF-8", "text/html; charset=utf-8"),
        ('text/plain;charset="latin-1"', "text/plain; charset=latin-1"),
        ("text/markdown; variant=GFM", "text/markdown"),
        ("application/pdf; charset=utf-8", "application/pdf"),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ],
)
def test_accepted_content_types(declared: str, signed: str) -> None:
    assert check_content_type(declared) == signed


@pytest.mark.parametrize(
    "declared", ["image/png", "application/msword", "application/octet-stream", "", "text"]
)
def test_refused_content_types(declared: str) -> None:
    with pytest.raises(errors.UnsupportedMediaTypeError) as refused:
        check_content_type(declared)
    assert "application/pdf" in refused.value.details["accepted"]


def test_bad_charset_is_a_validation_error() -> None:
    with pytest.raises(errors.ValidationError, match="charset"):
        check_content_type("text/plain; charset=ut f8")


def test_object_names_round_trip() -> None:
    org, upload = uuid.uuid4(), uuid.uuid4()
    name = object_name(org, upload, "Résumé 2026.pdf")
    assert name == f"orgs/{org}/{upload}/Résumé 2026.pdf"
    parsed = parse_object_name(name)
    assert (parsed.org_id, parsed.upload_id, parsed.filename) == (org, upload, "Résumé 2026.pdf")


@pytest.mark.parametrize(
    "name",
    [
        "report.pdf",
        "orgs/x/y/report.pdf",
        f"orgs/{uuid.uuid4()}/report.pdf",
        f"other/{uuid.uuid4()}/{uuid.uuid4()}/report.pdf",
        f"orgs/{uuid.uuid4()}/{uuid.uuid4()}/a/b.pdf",
        f"orgs/{str(uuid.uuid4()).upper()}/{uuid.uuid4()}/report.pdf",
        f"orgs/{uuid.uuid4().hex}/{uuid.uuid4()}/report.pdf",
        f"orgs/{uuid.uuid4()}/{uuid.uuid4()}/ report.pdf",
        f"orgs/{uuid.uuid4()}/{uuid.uuid4()}/a..pdf",
    ],
)
def test_names_not_made_by_an_upload_url(name: str) -> None:
    with pytest.raises(errors.ValidationError):
        parse_object_name(name)


def test_upload_acl_is_checked_like_ingest() -> None:
    """The `acl` of an upload (issue 18) takes what `ingest` takes, normalised."""
    body = {"filename": "a.pdf", "content_type": "application/pdf", "size": 1}
    req = UploadRequest.model_validate({**body, "acl": ["group:hr", "group:board", "group:hr"]})
    assert req.acl == ["group:board", "group:hr"]
    assert UploadRequest.model_validate(body).acl is None
    for bad in ([], ["everyone"], ["group:a,b"], ["*"]):
        with pytest.raises(pydantic.ValidationError):
            UploadRequest.model_validate({**body, "acl": bad})
