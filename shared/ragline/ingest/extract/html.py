"""HTML with selectolax (MIT; the lexbor HTML5 parser in C) and a structure walk of our own:
the page's main content as Markdown-style text, headings as `#` lines, list items as `- `,
table rows as `| a | b |`, `<pre>` as fenced code; the title from `<title>`.

Main content: `<main>` (or `[role=main]`, or the only `<article>`) when there is one, else
`<body>`; scripts, styles, templates, navigation, asides, footers, forms, hidden elements and
site chrome named by id or class (`nav`, `menu`, `sidebar`, `breadcrumb`, `cookie…`) are left
out. trafilatura's heuristics remove more boilerplate but dropped every heading of pages
without `<main>`/`<article>` (docs/documents.md), and headings are what label sections.
"""

from __future__ import annotations

import re
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
    escape_headings,
    fail,
    heading_line,
)
from ragline.ingest.extract.text import decode

_DROP_TAGS = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "math",
        "iframe",
        "object",
        "embed",
        "canvas",
        "nav",
        "aside",
        "footer",
        "form",
        "button",
        "select",
        "dialog",
        "head",
        "title",
        "meta",
        "link",
        "-comment",
    }
)
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "blockquote",
        "dl",
        "dt",
        "dd",
        "ul",
        "ol",
        "figure",
        "figcaption",
        "address",
        "details",
        "summary",
        "hr",
        "body",
        "center",
        "caption",
    }
)
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_CHROME_RE = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|menu|sidebar|breadcrumbs?|cookies?|cookie-banner|"
    r"skip-link|site-header|site-footer|masthead)(?:$|[\s_-])",
    re.IGNORECASE,
)
_META_CHARSET_RE = re.compile(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?([A-Za-z0-9_.:-]{1,40})", re.I
)
_CHECK_EVERY = 4096  # nodes between deadline checks
# A start or end tag; possessive quantifiers and `[^<>]` keep the scan linear on any input.
_TAG_RE = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*+)[^<>]*+>")
# Tags that open no nesting level: void elements, and elements a sibling of the same kind
# closes implicitly (`<p>a<p>b`, `<li>`, table cells and rows).
_FLAT_TAGS = frozenset(
    {
        *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"),
        *("param", "source", "track", "wbr", "p", "li", "dt", "dd", "option", "optgroup"),
        *("tr", "td", "th", "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt"),
        "rp",
    }
)


def _meta_charset(data: bytes) -> str | None:
    match = _META_CHARSET_RE.search(data[:2048])
    return match.group(1).decode("ascii") if match else None


def _check_depth(html: str, limits: Limits) -> None:
    """Refuse markup nested deeper than `max_markup_depth` before lexbor parses it: each
    block element opened (`<div>`, `<ul>`) makes the parser scan its stack of open elements,
    so 1 MiB of `<div>`s took minutes, inside one call no deadline can interrupt. The depth
    is estimated from the tags (script text included: an over-estimate, never an under)."""
    depth = 0
    for match in _TAG_RE.finditer(html):
        closing, name = match.group(1), match.group(2).lower()
        if name in _FLAT_TAGS or match.group(0).endswith("/>"):
            continue
        if closing:
            depth = max(0, depth - 1)
            continue
        depth += 1
        if depth > limits.max_markup_depth:
            raise fail(
                Reason.TOO_LARGE,
                f"the HTML nests elements deeper than {limits.max_markup_depth} levels",
                max_markup_depth=limits.max_markup_depth,
            )


def _hidden(attributes: dict[str, str | None]) -> bool:
    if "hidden" in attributes or attributes.get("aria-hidden") == "true":
        return True
    role = attributes.get("role")
    if role in ("navigation", "banner", "contentinfo", "complementary", "search"):
        return True
    names = f"{attributes.get('id') or ''} {attributes.get('class') or ''}"
    return bool(names.strip()) and _CHROME_RE.search(names) is not None


def _main(tree: Any) -> Any:
    for selector in ("main", "[role=main]"):
        found = tree.css_first(selector)
        if found is not None:
            return found
    articles = tree.css("article")
    if len(articles) == 1:
        return articles[0]
    return tree.body


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


class _Walker:
    """Depth-first over the tree with an explicit stack (deep nesting cannot overflow)."""

    def __init__(self, builder: TextBuilder, deadline: Deadline) -> None:
        self.builder = builder
        self.deadline = deadline
        self.words: list[str] = []  # inline text of the current block
        self.lines: list[str] = []  # finished lines of the current block (<br>)
        self.bullet = ""

    def flush(self) -> None:
        self.lines.append(_one_line("".join(self.words)))
        self.words = []
        text = "\n".join(line for line in self.lines if line)
        self.lines = []
        if text:
            self.builder.add(self.bullet + escape_headings(text))
            self.bullet = ""

    def walk(self, root: Any) -> None:
        stack: list[tuple[Any, bool]] = [(root, False)]
        seen = 0
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self.flush()
                continue
            seen += 1
            if seen % _CHECK_EVERY == 0:
                self.deadline.check(f"node {seen}")
            tag = node.tag
            if tag == "-text":
                self.words.append(node.text_content or "")
                continue
            if tag in _DROP_TAGS or _hidden(node.attributes):
                continue
            if tag in _HEADINGS:
                self.flush()
                title = _one_line(node.text(deep=True, separator=" "))
                if title:
                    self.builder.add(heading_line(_HEADINGS[tag], title))
                continue
            if tag == "pre":
                self.flush()
                code = clean(node.text(deep=True)).strip("\n")
                if code.strip():
                    self.builder.add(f"```\n{code}\n```")
                continue
            if tag == "table":
                self.flush()
                self.table(node)
                continue
            if tag == "br":
                self.lines.append(_one_line("".join(self.words)))
                self.words = []
                continue
            if tag == "li":
                self.flush()
                self.bullet = "- "
            elif tag in _BLOCK_TAGS:
                self.flush()
            else:
                self.words.append(" " if tag in ("td", "th", "img") else "")
                stack.extend(self.children(node))
                continue
            stack.append((node, True))
            stack.extend(self.children(node))

    @staticmethod
    def children(node: Any) -> list[tuple[Any, bool]]:
        kids: list[tuple[Any, bool]] = []
        child = node.child
        while child is not None:
            kids.append((child, False))
            child = child.next
        kids.reverse()
        return kids

    def table(self, table: Any) -> None:
        rows: list[str] = []
        for row in table.css("tr"):
            cells = [_one_line(cell.text(deep=True, separator=" ")) for cell in row.css("td, th")]
            if any(cells):
                rows.append("| " + " | ".join(cells) + " |")
        if rows:
            self.builder.add("\n".join(rows))


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
    from selectolax.lexbor import LexborHTMLParser

    # Decoded here: BOM, then the Content-Type charset, then <meta charset>, UTF-8, cp1252.
    html = decode(data, charset or _meta_charset(data))
    _check_depth(html, limits)
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = clean_title(title_node.text(deep=True) if title_node is not None else None)
    deadline.check("parsed")
    builder = TextBuilder(limits.max_chars)
    root = _main(tree)
    if root is not None:
        walker = _Walker(builder, deadline)
        walker.walk(root)
        walker.flush()
    text = clean(builder.text())
    if not any(char.isalnum() for char in text):
        raise fail(Reason.NO_TEXT, "the HTML has no readable text (only markup or scripts)")
    return Extracted(text=text, format=Format.HTML, title=title)
