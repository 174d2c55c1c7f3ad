"""HTML with trafilatura (Apache-2.0; lxml underneath): the page's main content as Markdown
(headings as `#` lines, lists, tables, code), without navigation, scripts, styles or footers;
the title from `<title>`."""

from __future__ import annotations

from typing import Any

from ragline.ingest.extract._base import (
    Deadline,
    Extracted,
    Format,
    Limits,
    Reason,
    TextBuilder,
    clean,
    clean_title,
    fail,
)
from ragline.ingest.extract.text import decode

_CONFIG: Any = None


def _config() -> Any:
    """trafilatura's settings, made once: no SIGALRM timeout (functions run handlers in
    threads), no minimum output size (short pages are documents too)."""
    global _CONFIG
    if _CONFIG is None:
        from trafilatura.settings import use_config

        config = use_config()
        config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
        config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "1")
        config.set("DEFAULT", "MIN_OUTPUT_SIZE", "1")
        config.set("DEFAULT", "MAX_FILE_SIZE", str(2**31))
        _CONFIG = config
    return _CONFIG


def extract_html(
    data: bytes, limits: Limits, deadline: Deadline, charset: str | None = None
) -> Extracted:
    if len(data) > limits.max_markup_bytes:
        raise fail(
            Reason.TOO_LARGE,
            f"the HTML is {len(data)} bytes; the limit is {limits.max_markup_bytes}",
            bytes=len(data),
            max_markup_bytes=limits.max_markup_bytes,
        )
    import trafilatura

    # Decode here (BOM, declared charset, UTF-8, else Windows-1252), so lxml never guesses.
    tree = trafilatura.load_html(decode(data, charset))
    if tree is None:
        raise fail(Reason.CORRUPT, "the HTML cannot be parsed")
    title = clean_title(tree.findtext(".//title"))
    deadline.check("parsed")
    markdown = trafilatura.extract(
        tree,
        output_format="markdown",
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        favor_recall=True,
        deduplicate=False,
        config=_config(),
    )
    text = clean(markdown or "").strip("\n")
    if not any(char.isalnum() for char in text):
        raise fail(Reason.NO_TEXT, "the HTML has no readable text (only markup or scripts)")
    builder = TextBuilder(limits.max_chars)
    builder.add(text)
    return Extracted(text=builder.text(), format=Format.HTML, title=title)
