"""Unit tests of ragline.ingest.chunking: structure, budget, overlap, offsets and coverage."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragline.ingest.chunking import MIN_MAX_TOKENS, Chunk, count_tokens, split_document

_ADORNMENT_LINE_RE = re.compile(r"([=\-*~^])\1{2,}")


def check_invariants(text: str, chunks: list[Chunk], max_tokens: int, overlap: int) -> None:
    """What every result must satisfy, whatever the input."""
    assert [chunk.ord for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text == text[chunk.start : chunk.end]
        assert chunk.text and chunk.text == chunk.text.strip()
        assert chunk.token_count == count_tokens(chunk.text) <= max_tokens
    for previous, chunk in pairwise(chunks):
        assert chunk.start > previous.start
        if chunk.start < previous.end:  # an overlap: a tail of the previous chunk
            assert chunk.section_label == previous.section_label
            assert count_tokens(text[chunk.start : previous.end]) <= overlap


def uncovered(text: str, chunks: list[Chunk]) -> list[tuple[int, str]]:
    """Non-space characters in no chunk, except on lines that look like heading adornments."""
    covered = bytearray(len(text) + 1)
    for chunk in chunks:
        covered[chunk.start : chunk.end] = b"\x01" * (chunk.end - chunk.start)
    missing: list[tuple[int, str]] = []
    offset = 0
    for line in text.split("\n"):
        if not _ADORNMENT_LINE_RE.fullmatch(line.strip()):
            missing.extend(
                (offset + i, char)
                for i, char in enumerate(line)
                if not char.isspace() and not covered[offset + i]
            )
        offset += len(line) + 1
    return missing


def labels(chunks: list[Chunk]) -> list[str | None]:
    out: list[str | None] = []
    for chunk in chunks:
        if not out or out[-1] != chunk.section_label:
            out.append(chunk.section_label)
    return out


# --- count_tokens --------------------------------------------------------------------------------


def test_count_tokens_splits_words_and_punctuation() -> None:
    assert count_tokens("Hello, world!") == 4  # Hello , world !
    assert count_tokens("") == 0
    assert count_tokens(" \n\t ") == 0
    assert count_tokens("...") == 3  # BERT splits every punctuation character


# Real counts: the all-MiniLM-L6-v2 tokenizer (tokenizers 0.23), without [CLS]/[SEP].
ENGLISH_SAMPLES = [
    (
        "The quick brown fox jumps over the lazy dog. Meanwhile, the committee postponed its "
        "decision until further notice, citing unexpected complications in the preliminary "
        "environmental assessment.",
        30,
    ),
    (
        "An assignment statement evaluates the expression list (remember that this can be a "
        "single expression or a comma-separated list, the latter yielding a tuple) and assigns "
        "the single resulting object to each of the target lists, from left to right.",
        50,
    ),
    (
        "Retrieval-augmented generation combines a search index with a language model: "
        "documents are split into chunks, embedded, and stored; at query time the most similar "
        "chunks are retrieved and passed to the model as context.",
        41,
    ),
    (
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
        'software and associated documentation files (the "Software"), to deal in the Software '
        "without restriction, including without limitation the rights to use, copy, modify, "
        "merge, publish, distribute, sublicense, and/or sell copies of the Software.",
        69,
    ),
]


@pytest.mark.parametrize(("text", "real"), ENGLISH_SAMPLES)
def test_count_tokens_errs_high_on_english_prose(text: str, real: int) -> None:
    assert real <= count_tokens(text) <= 1.4 * real


@given(st.text(max_size=60), st.text(max_size=60), st.sampled_from([" ", "\n", "\t", "  \n "]))
def test_count_tokens_is_additive_over_whitespace(left: str, right: str, space: str) -> None:
    assert count_tokens(left + space + right) == count_tokens(left) + count_tokens(right)


# --- options and trivial input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_tokens", "overlap_tokens"),
    [(MIN_MAX_TOKENS - 1, 0), (0, 0), (50, 50), (50, 60), (50, -1)],
)
def test_invalid_options_raise(max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError):
        split_document("Some text.", max_tokens=max_tokens, overlap_tokens=overlap_tokens)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t \n", "\r\n\u00a0\u2003"])
def test_whitespace_only_gives_no_chunks(text: str) -> None:
    assert split_document(text) == []


def test_small_document_is_one_stripped_chunk() -> None:
    text = "\n\n  Just one short paragraph.\n\n"
    [chunk] = split_document(text)
    assert chunk == Chunk(
        ord=0,
        text="Just one short paragraph.",
        section_label=None,
        token_count=count_tokens("Just one short paragraph."),
        start=4,
        end=29,
    )


# --- headings ------------------------------------------------------------------------------------

ATX_DOC = """Preamble before any heading.

# Guide

Intro text.

## Installation

Install it.

### Linux

Use apt.

## Usage

Run it.

# Appendix
"""


def test_atx_headings_give_nested_labels() -> None:
    chunks = split_document(ATX_DOC)
    assert labels(chunks) == [
        None,
        "Guide",
        "Guide > Installation",
        "Guide > Installation > Linux",
        "Guide > Usage",
        "Appendix",
    ]
    # The heading line starts the first chunk of its section; chunks never cross sections.
    assert [chunk.text.split("\n")[0] for chunk in chunks] == [
        "Preamble before any heading.",
        "# Guide",
        "## Installation",
        "### Linux",
        "## Usage",
        "# Appendix",
    ]
    assert all(chunk.text.count("#") <= 3 for chunk in chunks)


def test_atx_heading_variants() -> None:
    text = "## Closed heading ##\n\ntext\n\n#NotAHeading\n\n   # indented comment\n\n#\n\nafter"
    chunks = split_document(text)
    assert labels(chunks) == ["Closed heading", None]
    assert chunks[-1].text.startswith("#\n\nafter")


def test_setext_headings() -> None:
    text = "Title\n=====\n\nIntro.\n\nSection A\n---\n\nBody A.\n\nSection B\n---------\n\nBody B."
    chunks = split_document(text)
    assert labels(chunks) == ["Title", "Title > Section A", "Title > Section B"]
    assert chunks[1].text == "Section A\n---\n\nBody A."


def test_setext_after_atx_keeps_markdown_levels() -> None:
    text = "# Top\n\nx\n\nSub\n---\n\ny\n\nOther top\n=========\n\nz"
    assert labels(split_document(text)) == ["Top", "Top > Sub", "Other top"]


def test_pydoc_style_underlines_follow_first_seen_order() -> None:
    text = (
        "Data model\n**********\n\nIntro.\n\n"
        "Objects, values and types\n=========================\n\nObjects are.\n\n"
        "Details\n-------\n\nDeeper.\n\n"
        "Nested\n~~~~~~\n\nDeepest.\n\n"
        "The standard type hierarchy\n===========================\n\nTypes."
    )
    assert labels(split_document(text)) == [
        "Data model",
        "Data model > Objects, values and types",
        "Data model > Objects, values and types > Details",
        "Data model > Objects, values and types > Details > Nested",
        "Data model > The standard type hierarchy",
    ]


def test_overlined_title_starts_chunk_at_title() -> None:
    text = "*************\n  Changelog\n*************\n\nVersion 1.\n\nCaveats\n=======\n\nNone."
    chunks = split_document(text)
    assert labels(chunks) == ["Changelog", "Changelog > Caveats"]
    assert chunks[0].text == "Changelog\n*************\n\nVersion 1."
    assert not uncovered(text, chunks)


@pytest.mark.parametrize(
    "text",
    [
        "A paragraph that\nends here\n---\n",  # "---" under the second line of a paragraph
        "Paragraph.\n\n---\n\nMore.",  # a thematic break
        "A rather long line of text here\n***\n",  # "***" far shorter than the line
        "Short\n^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n",  # far longer
        "====\n----\n",  # an adornment is no title
        "A longer title\n~~~\ncode\n~~~\n",  # a fence, not a "~" underline
    ],
)
def test_lines_that_are_not_headings(text: str) -> None:
    assert labels(split_document(text)) == [None]


def test_crlf_line_endings() -> None:
    text = "# Title\r\n\r\nSome text.\r\n\r\nSub\r\n---\r\n\r\nMore.\r\n"
    chunks = split_document(text)
    assert labels(chunks) == ["Title", "Title > Sub"]
    check_invariants(text, chunks, 200, 40)


# --- code, sentences, words ----------------------------------------------------------------------


def prose(count: int, start: int = 0) -> str:
    return " ".join(
        f"Sentence number {i} says something about topic {i % 7} here." for i in range(start, count)
    )


def test_fenced_code_block_is_kept_whole() -> None:
    code = (
        "```python\n# not a heading\ndef f(x):\n\n    return x + 1\n\n"
        + ("value = f(1)\n" * 12)
        + "```"
    )
    other = "~~~\nTitle\n=====\n~~~"
    text = f"# Code\n\n{prose(12)}\n\n{code}\n\n{prose(24, 12)}\n\n{other}\n"
    assert 60 < count_tokens(code) < 100
    chunks = split_document(text, max_tokens=100, overlap_tokens=20)
    check_invariants(text, chunks, 100, 20)
    assert labels(chunks) == ["Code"]
    assert any(code in chunk.text for chunk in chunks)
    assert any(other in chunk.text for chunk in chunks)
    # Prose is never cut inside the block: a chunk holds all of it or none.
    block = text.index(code)
    for chunk in chunks:
        if chunk.start < block + len(code) and block < chunk.end:
            assert chunk.start <= block and block + len(code) <= chunk.end


def test_oversized_code_block_is_split_by_lines() -> None:
    lines = [f"print('line {i}', {i} * {i})" for i in range(80)]
    code = "```\n" + "\n".join(lines) + "\n```"
    chunks = split_document(code, max_tokens=60, overlap_tokens=10)
    check_invariants(code, chunks, 60, 10)
    assert len(chunks) > 5
    for chunk in chunks:
        assert code[chunk.start - 1] == "\n" or chunk.start == 0
        assert chunk.end == len(code) or code[chunk.end] == "\n"


def test_long_paragraph_splits_on_sentences_not_abbreviations() -> None:
    sentences = [
        "Use a scripting language, e.g. Python or Ruby, for glue code in most projects.",
        "Mr. Smith measured pi as 3.14 and then rounded it to three for simplicity.",
        "Packages such as numpy, scipy, etc. are installed by the platform team today.",
        '"Quoted sentences start here," she said, and the meeting ended quite early.',
        "42 is the answer, i.e. the number that everybody is quoting in these docs.",
    ]
    text = " ".join(sentences)
    chunks = split_document(text, max_tokens=25, overlap_tokens=0)
    check_invariants(text, chunks, 25, 0)
    assert [chunk.text for chunk in chunks] == sentences


def test_long_sentence_splits_on_words() -> None:
    text = " ".join(f"word{i}" for i in range(300))
    chunks = split_document(text, max_tokens=40, overlap_tokens=8)
    check_invariants(text, chunks, 40, 8)
    assert all(re.fullmatch(r"word\d+", word) for chunk in chunks for word in chunk.text.split())
    assert not uncovered(text, chunks)


def test_huge_word_is_hard_split_without_overlap() -> None:
    word = "abcdefghij" * 400
    text = f"Before the blob. {word} After the blob."
    chunks = split_document(text, max_tokens=30, overlap_tokens=10)
    check_invariants(text, chunks, 30, 10)
    assert not uncovered(text, chunks)
    start, end = text.index(word), text.index(word) + len(word)
    inside = [chunk for chunk in chunks if start < chunk.start < end]
    assert len(inside) > 10
    for chunk in inside:  # a piece continuing the word never repeats the previous one
        assert chunks[chunk.ord - 1].end == chunk.start


# --- overlap -------------------------------------------------------------------------------------


def test_overlap_is_whole_sentences_and_bounded() -> None:
    text = "# Notes\n\n" + prose(60)
    chunks = split_document(text, max_tokens=60, overlap_tokens=15)
    check_invariants(text, chunks, 60, 15)
    assert len(chunks) > 5
    for previous, chunk in pairwise(chunks):
        shared = text[chunk.start : previous.end]
        assert chunk.start < previous.end, "each later chunk starts with the previous tail"
        assert 0 < count_tokens(shared) <= 15
        assert shared.startswith("Sentence number") and shared.endswith(".")


def test_overlap_falls_back_to_words() -> None:
    text = " ".join(f"term{i}" for i in range(100)) + "."  # one long sentence
    chunks = split_document(text, max_tokens=30, overlap_tokens=6)
    for previous, chunk in pairwise(chunks):
        assert 0 < count_tokens(text[chunk.start : previous.end]) <= 6


def test_zero_overlap_gives_disjoint_chunks() -> None:
    text = prose(40)
    chunks = split_document(text, max_tokens=50, overlap_tokens=0)
    for previous, chunk in pairwise(chunks):
        assert previous.end < chunk.start


def test_chunks_never_overlap_across_sections() -> None:
    text = f"# One\n\n{prose(20)}\n\n# Two\n\n{prose(20)}"
    chunks = split_document(text, max_tokens=50, overlap_tokens=20)
    first_two = next(chunk for chunk in chunks if chunk.section_label == "Two")
    assert first_two.text.startswith("# Two")
    assert all(chunk.end < first_two.start for chunk in chunks[: first_two.ord])


# --- properties ----------------------------------------------------------------------------------

WORDS = st.sampled_from(
    [
        "the", "data", "model", "Python", "e.g.", "i.e.", "etc.", "Mr.", "3.14", "v2", "x",
        "snake_case", "CamelCase", "HTTP", "naïve", "日本語", "Привет", "—", "(see", "note)",
        "*emph*", "`code`", "a" * 40, "##", "#", "===", "---", "***", "~~~", "```", "😀",
    ]
)  # fmt: skip


@st.composite
def sentences(draw: st.DrawFn) -> str:
    words = draw(st.lists(WORDS, min_size=1, max_size=15))
    return " ".join(words) + draw(st.sampled_from([".", "!", "?", "", ":"]))


@st.composite
def markdownish(draw: st.DrawFn) -> str:
    """Headings of every kind, paragraphs, fences and lists, with random spacing."""
    blocks: list[str] = []
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.integers(0, 8))
        title = draw(sentences()).rstrip(".!?:")
        char = draw(st.sampled_from("=-*~^"))
        if kind == 0:
            blocks.append("#" * draw(st.integers(1, 6)) + " " + title)
        elif kind == 1:
            blocks.append(f"{title}\n{char * max(3, len(title))}")
        elif kind == 2:
            blocks.append(f"{char * (len(title) + 2)}\n {title}\n{char * (len(title) + 2)}")
        elif kind == 3:
            fence = draw(st.sampled_from(["```", "~~~", "````"]))
            body = "\n".join(draw(st.lists(sentences(), max_size=6)))
            closed = draw(st.booleans())
            blocks.append(f"{fence}py\n{body}\n{fence if closed else ''}")
        elif kind == 4:
            items = draw(st.lists(sentences(), min_size=1, max_size=5))
            blocks.append("\n".join("* " + item for item in items))
        elif kind == 5:
            blocks.append("    " + "\n    ".join(draw(st.lists(sentences(), max_size=4))))
        else:
            sep = draw(st.sampled_from([" ", "\n", "  \n"]))
            blocks.append(sep.join(draw(st.lists(sentences(), min_size=1, max_size=15))))
    seps = st.sampled_from(["\n\n", "\n", "\n\n\n", "\n \n", "\r\n\r\n"])
    return "".join(block + draw(seps) for block in blocks)


BUDGETS = st.tuples(st.integers(MIN_MAX_TOKENS, 80), st.floats(0, 0.9)).map(
    lambda pair: (pair[0], min(pair[0] - 1, int(pair[0] * pair[1])))
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdownish(), BUDGETS)
def test_markdownish_documents(text: str, budget: tuple[int, int]) -> None:
    max_tokens, overlap = budget
    chunks = split_document(text, max_tokens=max_tokens, overlap_tokens=overlap)
    check_invariants(text, chunks, max_tokens, overlap)
    assert not uncovered(text, chunks)
    assert split_document(text, max_tokens=max_tokens, overlap_tokens=overlap) == chunks


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab C.!?#=-*~^`_ \n\t\r\u00e9\u65e5")), max_size=600))
def test_arbitrary_text(text: str) -> None:
    chunks = split_document(text, max_tokens=MIN_MAX_TOKENS, overlap_tokens=3)
    check_invariants(text, chunks, MIN_MAX_TOKENS, 3)
    assert not uncovered(text, chunks)
    assert (chunks == []) == (text.strip() == "")


@given(st.text(max_size=300))
def test_any_unicode(text: str) -> None:
    chunks = split_document(text, max_tokens=20, overlap_tokens=5)
    check_invariants(text, chunks, 20, 5)
    assert not uncovered(text, chunks)


# --- real documents: Python's pydoc topics -------------------------------------------------------


def test_pydoc_topics() -> None:
    from pydoc_data.topics import topics

    results = {name: split_document(text) for name, text in topics.items()}

    total_chars = sum(len(text) for text in topics.values())
    total_chunks = sum(len(chunks) for chunks in results.values())
    # ~4-5 characters per token and ~160-200 tokens per chunk.
    assert total_chars / 1000 < total_chunks < total_chars / 300
    for name, chunks in results.items():
        text = topics[name]
        check_invariants(text, chunks, 200, 40)
        assert not uncovered(text, chunks)
        title = text.strip().split("\n")[0].strip()
        assert chunks[0].section_label == title
        assert all(
            chunk.section_label == title or (chunk.section_label or "").startswith(title + " > ")
            for chunk in chunks
        )


def test_breaks_end_chunks_and_overlaps_at_page_starts() -> None:
    pages = [" ".join(f"Page {p} sentence {i} is here." for i in range(12)) for p in range(1, 4)]
    text = "\n\n".join(pages)
    starts = [text.index(page) for page in pages]
    chunks = split_document(text, max_tokens=200, overlap_tokens=40, breaks=starts[1:])
    for chunk in chunks:
        owner = max(i for i, s in enumerate(starts) if s <= chunk.start)
        end_of_page = starts[owner] + len(pages[owner])
        assert chunk.end <= end_of_page, "a chunk crosses a page start"
    assert {c.text.split()[1] for c in chunks} == {"1", "2", "3"}
    # Without breaks the same text packs across pages.
    assert len(split_document(text, max_tokens=200, overlap_tokens=40)) < len(chunks)
