"""`ragline upload` without a stack: which files go, with which content type, and which
document belongs to an upload."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragline.dev import uploader


def test_folders_are_walked_without_hidden_files(tmp_path: Path) -> None:
    for rel in ("a.pdf", "sub/b.MD", "sub/deep/c.docx", ".hidden/d.txt", "sub/.e.html", "f.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    extra = tmp_path / "sub" / "b.MD"
    files, skipped = uploader.collect([tmp_path, extra])
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [
        "a.pdf",
        "sub/b.MD",
        "sub/deep/c.docx",
    ]
    assert [p.name for p in skipped] == ["f.png"]
    with pytest.raises(FileNotFoundError):
        uploader.collect([tmp_path / "missing"])


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("x.pdf", "application/pdf"),
        ("x.HTM", "text/html"),
        ("x.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("x.markdown", "text/markdown"),
        ("x.txt", "text/plain"),
        ("x.doc", None),
        ("README", None),
    ],
)
def test_content_types(name: str, content_type: str | None) -> None:
    assert uploader.content_type_for(Path(name)) == content_type


def test_a_document_belongs_to_its_upload() -> None:
    upload = uploader.Upload(Path("a.pdf"), "application/pdf", 1, "u-1", "orgs/o/u-1/a.pdf")
    assert uploader.owns({"source_uri": "gs://b/orgs/o/u-1/a.pdf"}, upload, "b")
    assert uploader.owns({"metadata": {"upload_id": "u-1"}}, upload, "b")
    assert uploader.owns({"metadata": {"object": "orgs/o/u-1/a.pdf"}}, upload, "b")
    assert not uploader.owns({"source_uri": "gs://other/orgs/o/u-1/a.pdf"}, upload, "b")
    assert not uploader.owns({"metadata": None, "source_uri": None}, upload, "b")
