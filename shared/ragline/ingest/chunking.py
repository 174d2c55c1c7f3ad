"""Structure-aware splitting of Markdown and plain-text documents into token-bounded chunks.

A document is cut into sections at its headings: Markdown ATX headings (``#`` .. ``######`` at
column 0), setext headings (a line underlined with ``===`` or ``---``) and reStructuredText-style
titles (a line underlined, optionally also overlined, with a run of ``= - * ~ ^`` about as long
as the title, as in Python's pydoc topics). ATX levels are the number of ``#``. If
the only underlines are ``=`` and ``-`` (Markdown), they are levels 1 and 2; otherwise
underline styles follow reStructuredText: the first style seen is level 1, the next new one
level 2, and so on. A section's label is its heading path joined by " > "; text before any
heading has no label.

Within a section, blocks (paragraphs, fenced code blocks) are packed greedily up to
``max_tokens``. A block too large for a chunk is split at the finest boundary needed:
paragraphs at sentences, then words, then inside the word; fenced code blocks (kept whole
whenever they fit in ``max_tokens``) and indented literal blocks at lines. Each chunk after the
first of a section starts with the tail of the previous chunk, whole sentences where possible,
else words, of at most ``overlap_tokens``. Prose is split so that a full overlap always fits;
a fenced code block that only fits alone gets a shorter overlap, or none.

Every chunk's text is an exact slice ``text[start:end]`` of the input, stripped, so offsets can
be used for citations. A heading's underline is part of the first chunk of its section (the
slice must be contiguous); a title's overline is left out.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from ragline.core.errors import TooManyChunksError

__all__ = ["MIN_MAX_TOKENS", "Chunk", "count_tokens", "split_document"]

MIN_MAX_TOKENS = 8
"""The smallest accepted `max_tokens`."""


@dataclass(frozen=True)
class Chunk:
    """A piece of a document: an exact slice of it plus its section label and token count."""

    ord: int  # 0..n-1 in document order
    text: str  # == document[start:end], stripped, never empty
    section_label: str | None  # heading path, "Installation > Linux"; None before any heading
    token_count: int  # count_tokens(text) <= max_tokens
    start: int  # character offsets into the document; consecutive chunks may overlap
    end: int


# --- token counting ------------------------------------------------------------------------------

# Letter runs, digit runs, and every other non-space character alone: BERT's basic tokenizer
# splits on whitespace and makes each punctuation character a token of its own.
_TOKEN_RUN_RE = re.compile(r"[^\W\d_]+|\d+|\S")
_CAMEL_HUMP_RE = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_VOWEL_RE = re.compile(r"[aeiouyAEIOUY]")
# Latin-1 and Latin Extended-A/B letters lose their accents in the uncased vocabulary.
_LAST_LATIN = 0x24F


def _word_pieces(length: int) -> int:
    """WordPiece pieces of a plain word: common words up to 7 letters are in the vocabulary."""
    return 1 if length <= 7 else 1 + (length - 4) // 4  # 1 + ceil((length - 7) / 4)


def _ascii_word_pieces(run: str, text: str, start: int, end: int) -> int:
    size = len(run)
    if run[1:].islower():
        pieces = _word_pieces(size)
    elif run.isupper():
        # Acronyms (POSIX, UTF) are rarely whole vocabulary entries.
        pieces = _word_pieces(size) + (1 if 3 <= size <= 5 else 0)
    else:
        # camelCase / PascalCase identifiers split at least at each hump.
        pieces = sum(_word_pieces(len(hump)) for hump in _CAMEL_HUMP_RE.findall(run)) + 1
    if size >= 3 and _VOWEL_RE.search(run) is None:
        # Vowel-less abbreviations (stmt, nswp) fall apart into 1-2 letter pieces.
        pieces = max(pieces, (size + 1) // 2)
    if size >= 3 and (
        (start > 0 and text[start - 1] == "_") or (end < len(text) and text[end] == "_")
    ):
        # Parts of snake_case identifiers are often abbreviations (ru_maxrss, st_mtime).
        pieces += 1
    return pieces


def count_tokens(text: str) -> int:
    """Estimate the WordPiece token count of `text` for an uncased BERT vocabulary (MiniLM).

    No vocabulary is loaded; the estimate mimics what the tokenizer does:

    * every punctuation or symbol character is one token (BERT splits each one off, so
      ``"..."`` is 3 tokens and ``"Hello, world!"`` is 4);
    * a run of digits is 1 token up to 2 digits, else ``ceil(0.6 * digits)``;
    * a word of up to 7 letters is 1 token, a longer one ``1 + ceil((letters - 7) / 4)``;
      camelCase words count each hump plus 1, short all-caps words and parts of snake_case
      identifiers 1 more, vowel-less words at least one token per 2 letters;
    * accented Latin words count like plain ones; other scripts (CJK, Cyrillic, Greek, ...)
      count one token per character.

    Measured against the real all-MiniLM-L6-v2 tokenizer on ~1.3 MB of English text (pydoc
    topics, stdlib docstrings, licence texts) in windows of about 200 tokens, the estimate is
    on average 5-15% high; 1% of windows undercount by more than 7% (identifier-heavy text),
    the worst by 24%. The count is additive over whitespace: counting the parts of a text
    split at whitespace gives the count of the whole.
    """
    total = 0
    for match in _TOKEN_RUN_RE.finditer(text):
        run = match.group()
        size = len(run)
        if size == 1:
            total += 1
        elif run[0].isdecimal():
            total += 1 if size <= 2 else -(-size * 3 // 5)
        elif run.isascii():
            total += _ascii_word_pieces(run, text, match.start(), match.end())
        elif all(ord(char) <= _LAST_LATIN for char in run):
            total += _word_pieces(size)
        else:
            total += size
    return total


# --- document structure --------------------------------------------------------------------------

_PROSE = "prose"  # a paragraph
_HEADING = "heading"  # a heading line with its underline
_SENTENCE = "sentence"
_PRE = "pre"  # an indented literal block
_CODE = "code"  # a fenced code block
_LINE = "line"  # one line of a code or literal block
_WORD = "word"
_PIECE = "piece"  # part of a word too long for any chunk

_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ATX_RE = re.compile(r"(#{1,6})(?:[ \t]|$)")
_ADORNMENT_CHARS = frozenset("=-*~^")
_SETEXT_CHARS = frozenset("=-")
_SETEXT_STYLES = {("=", False): 1, ("-", False): 2}
_NON_SPACE_RE = re.compile(r"\S+")
# Linear on any input: a match may start only at the first mark of a run (the lookbehind), and
# possessive quantifiers never give back what they took, so a run of n marks is scanned once,
# not n times (issue 11, finding 2: "." * 64 KB took 88 s with backtracking).
_SENTENCE_END_RE = re.compile(r"(?<![.!?])([.!?]++[\"'\u201d\u2019)\]]*+)(\s++)")
_SENTENCE_OPENERS = frozenset("\"'\u201c\u2018([`*_")
_WORD_OPENERS = "\"'\u201c\u2018(["
_DOTTED_ABBREVIATION_RE = re.compile(r"(?:[a-z]\.)+[a-z]")
# Words whose trailing "." does not end a sentence (lower case, inner dots kept).
_ABBREVIATION_WORDS = (
    "al approx apr aug cf co corp dec dept dr e.g eg etc feb fig figs i.e ie inc jan jr jul jun"
    " ltd mar mr mrs ms mt no nos nov oct p pp prof sec sep sept sr st vol vols vs"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())


@dataclass(frozen=True, slots=True)
class _Span:
    """A stripped, non-empty range of the text with its token count.

    `glued` marks a piece that continues the previous one without whitespace between them:
    token counts only add up across whitespace, so such spans never share a chunk.
    """

    start: int
    end: int
    count: int
    kind: str
    glued: bool = False


def _span(text: str, start: int, end: int, kind: str) -> _Span | None:
    segment = text[start:end]
    stripped = segment.strip()
    if not stripped:
        return None
    start += len(segment) - len(segment.lstrip())
    return _Span(start, start + len(stripped), count_tokens(stripped), kind)


def _indent_width(line: str) -> int:
    body = line.lstrip(" \t")
    return len(line[: len(line) - len(body)].expandtabs(4))


def _adornment_char(line: str) -> str | None:
    """The character of a heading adornment line (``=====``, ``*****``, ...), if it is one."""
    if _indent_width(line) > 3:
        return None
    body = line.strip()
    if len(body) < 3 or body[0] not in _ADORNMENT_CHARS or body.count(body[0]) != len(body):
        return None
    return body[0]


def _is_underline(char: str, underline: str, title: str) -> bool:
    if _adornment_char(title) is not None or _indent_width(title) > 3:
        return False
    if char in _SETEXT_CHARS:
        return True  # Markdown setext: any length
    size, title_size = len(underline.strip()), len(title.strip())
    # "About the title's length"; a short "~~~" under a line is rather a code fence.
    minimum = title_size if char == "~" else (title_size + 1) // 2
    return minimum <= size <= 2 * title_size + 3


@dataclass
class _Section:
    heading: tuple[tuple[str, bool], str] | None  # (style, title); style is (adornment, overlined)
    spans: list[_Span]
    label: str | None = None


class _Lines:
    """The lines of a text, made on demand from an array of their start offsets (8 bytes a
    line, instead of a list of strings: a megabyte of blank lines used hundreds of MB)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = array("q", [0])
        find = text.find
        position = find("\n")
        while position >= 0:
            self.starts.append(position + 1)
            position = find("\n", position + 1)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> str:
        start = self.starts[index]
        end = self.starts[index + 1] - 1 if index + 1 < len(self.starts) else len(self.text)
        return self.text[start:end]


class _Parser:
    """Line-based pass: headings, fenced code blocks and paragraphs, grouped into sections."""

    def __init__(self, text: str, max_sections: int | None = None) -> None:
        self.text = text
        self.max_sections = max_sections
        self.lines = _Lines(text)
        self.starts = self.lines.starts
        self.sections = [_Section(None, [])]
        self.para_first = -1
        self.para_last = -1
        self.para_indent = 0
        self.after_colon = False

    def end_of(self, index: int) -> int:
        return self.starts[index] + len(self.lines[index])

    def parse(self) -> list[_Section]:
        lines = self.lines
        index = 0
        while index < len(lines):
            line = lines[index]
            if not line.strip():
                self.close_paragraph()
                index += 1
                continue
            fence = _FENCE_RE.match(line)
            if fence and not (fence.group(1)[0] == "`" and "`" in line[fence.end() :]):
                self.close_paragraph()
                index = self.code_block(index, fence.group(1))
                continue
            atx = _heading_atx(line)
            if atx is not None:
                self.close_paragraph()
                self.heading(index, index, ("#" * atx[0], False), atx[1])
                index += 1
                continue
            if self.para_first < 0:
                consumed = self.underlined_heading(index)
                if consumed:
                    index += consumed
                    continue
                self.para_first, self.para_indent = index, _indent_width(line)
            self.para_last = index
            self.para_indent = min(self.para_indent, _indent_width(line))
            index += 1
        self.close_paragraph()
        _label_sections(self.sections)
        return [section for section in self.sections if section.spans]

    def code_block(self, index: int, marker: str) -> int:
        """Add the fenced block opening at line `index`; return the line after it."""
        close = index + 1
        while close < len(self.lines):
            line = self.lines[close]
            body = line.strip()
            if (
                _indent_width(line) <= 3
                and len(body) >= len(marker)
                and body.count(marker[0]) == len(body)
            ):
                break
            close += 1
        last = min(close, len(self.lines) - 1)  # an unclosed fence runs to the end
        span = _span(self.text, self.starts[index], self.end_of(last), _CODE)
        if span is not None:
            self.sections[-1].spans.append(span)
        self.after_colon = False
        return last + 1

    def underlined_heading(self, index: int) -> int:
        """Add a heading underlined (or over- and underlined) at line `index`; return its lines."""
        lines = self.lines
        char = _adornment_char(lines[index])
        if char is not None and index + 2 < len(lines):
            title, under = lines[index + 1], lines[index + 2]
            if (
                under.strip() == lines[index].strip()
                and title.strip()
                and _adornment_char(title) is None
                and len(title.strip()) <= len(under.strip())
            ):
                self.heading(index + 1, index + 2, (char, True), lines[index + 1])
                return 3
        if index + 1 < len(lines):
            char = _adornment_char(lines[index + 1])
            if char is not None and _is_underline(char, lines[index + 1], lines[index]):
                self.heading(index, index + 1, (char, False), lines[index])
                return 2
        return 0

    def heading(self, first: int, last: int, style: tuple[str, bool], title: str) -> None:
        """Start a section at the heading on lines `first`..`last` (title and underline)."""
        span = _span(self.text, self.starts[first], self.end_of(last), _HEADING)
        self.sections.append(_Section((style, title), [] if span is None else [span]))
        if self.max_sections is not None and len(self.sections) > self.max_sections + 1:
            # Every section with text is at least one chunk: stop before holding them all.
            raise TooManyChunksError(
                f"the document has more than {self.max_sections} sections, each at least one "
                "chunk: over the limit per document"
            )
        self.after_colon = False

    def close_paragraph(self) -> None:
        if self.para_first < 0:
            return
        # Indented blocks are literal (Markdown: 4+ columns; reST/pydoc: 3 after a colon).
        literal = self.para_indent >= 4 or (self.para_indent >= 3 and self.after_colon)
        span = _span(
            self.text,
            self.starts[self.para_first],
            self.end_of(self.para_last),
            _PRE if literal else _PROSE,
        )
        if span is not None:
            self.sections[-1].spans.append(span)
            self.after_colon = self.text[span.end - 1] == ":"
        self.para_first = -1


def _label_sections(sections: list[_Section]) -> None:
    """Set each section's label from its heading path (levels: see the module docstring)."""
    styles = {section.heading[0] for section in sections if section.heading is not None}
    # Only "=" and "-" underlines (and ATX): Markdown's fixed setext levels; else reST order.
    markdown = all(style[0][0] == "#" or style in _SETEXT_STYLES for style in styles)
    levels: dict[tuple[str, bool], int] = {}
    path: list[tuple[int, str]] = []
    for section in sections:
        if section.heading is None:
            continue
        style, title = section.heading
        if style[0][0] == "#":
            level = len(style[0])
        elif markdown:
            level = _SETEXT_STYLES[style]
        else:
            level = levels.setdefault(style, len(levels) + 1)
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, " ".join(title.split())))
        section.label = " > ".join(name for _, name in path if name) or None


def _heading_atx(line: str) -> tuple[int, str] | None:
    """Level and title of an ATX heading line; only at column 0, unlike CommonMark, because
    plain-text documents indent code (pydoc uses 3 spaces) and comments start with "# "."""
    if not line.startswith("#"):
        return None
    body = line.rstrip()
    match = _ATX_RE.match(body)
    if match is None:
        return None
    return len(match.group(1)), _strip_closing_hashes(body[match.end() :].strip())


def _strip_closing_hashes(title: str) -> str:
    """CommonMark's optional closing sequence (`## Title ##`): trailing #s preceded by a blank
    or making up the whole title. String operations, not a regex: `(?:^|[ \t]+)#+$` rescans a
    run of blanks from every position (quadratic on one long line; issue 11)."""
    bare = title.rstrip("#")
    if bare != title and (not bare or bare[-1] in " \t"):
        return bare.rstrip(" \t")
    return title


# --- splitting -----------------------------------------------------------------------------------


def _is_abbreviation(text: str, start: int, dot: int) -> bool:
    word_start = dot
    while word_start > start and not text[word_start - 1].isspace():
        word_start -= 1
    stem = text[word_start:dot].lstrip(_WORD_OPENERS)
    if len(stem) == 1 and stem.isupper():
        return True  # an initial: "J. Smith"
    stem = stem.lower()
    return stem in _ABBREVIATIONS or _DOTTED_ABBREVIATION_RE.fullmatch(stem) is not None


def _sentences(text: str, span: _Span) -> list[_Span]:
    """Split at ., ! or ? followed by whitespace and a capital, digit or quote."""
    out: list[_Span] = []
    first = span.start
    for match in _SENTENCE_END_RE.finditer(text, span.start, span.end):
        following = text[match.end()]  # spans are stripped, so a non-space follows
        if not (following.isupper() or following.isdigit() or following in _SENTENCE_OPENERS):
            continue
        marks = match.group(1)
        if (
            marks.startswith(".")
            and not marks.startswith("..")
            and _is_abbreviation(text, first, match.start())
        ):
            continue
        end = match.end(1)
        out.append(_Span(first, end, count_tokens(text[first:end]), _SENTENCE))
        first = match.end()
    if not out:
        return [_Span(span.start, span.end, span.count, _SENTENCE)]
    out.append(_Span(first, span.end, count_tokens(text[first : span.end]), _SENTENCE))
    return out


@lru_cache(maxsize=8192)
def _count_word(word: str) -> int:
    # Only hot in pathological input (a paragraph without sentence ends); words repeat a lot.
    return count_tokens(word)


def _words(text: str, span: _Span) -> list[_Span]:
    return [
        _Span(match.start(), match.end(), _count_word(match.group()), _WORD)
        for match in _NON_SPACE_RE.finditer(text, span.start, span.end)
    ]


def _lines(text: str, span: _Span) -> list[_Span]:
    out: list[_Span] = []
    start = span.start
    while start < span.end:
        newline = text.find("\n", start, span.end)
        end = span.end if newline < 0 else newline
        line = _span(text, start, end, _LINE)
        if line is not None:
            out.append(line)
        start = end + 1
    return out


def _pieces(text: str, span: _Span, budget: int) -> list[_Span]:
    """Cut one word into the longest prefixes that fit `budget` (binary search per piece)."""
    out: list[_Span] = []
    start = span.start
    while start < span.end:
        # Any text counts about 1 token per 4 characters or more, so 8 per token overflows
        # (and if it does not, the window is still a piece that fits).
        high = min(span.end, start + 8 * budget + 8)
        count = count_tokens(text[start:high])
        if count <= budget:
            end = high
        else:
            low = start + 1  # invariant: text[start:low] fits, text[start:high] does not
            while high - low > 1:
                middle = (low + high) // 2
                if count_tokens(text[start:middle]) <= budget:
                    low = middle
                else:
                    high = middle
            end = low
            count = count_tokens(text[start:end])
        out.append(_Span(start, end, count, _PIECE, glued=start > span.start))
        start = end
    return out


def _refine(
    text: str, span: _Span, budget: int, max_tokens: int, out: list[_Span], max_chars: int
) -> None:
    """Append `span` to `out`, split into smaller spans until each fits its limits (tokens,
    and characters: whitespace counts no tokens, so a run of blanks is bounded by length)."""
    whole_block = span.kind in (_CODE, _LINE)
    fits_chars = span.end - span.start <= max_chars
    if span.count <= (max_tokens if whole_block else budget) and fits_chars:
        out.append(span)
        return
    if span.kind == _WORD:
        out.extend(_pieces(text, span, budget))
        return
    parts: list[_Span] = []
    if span.kind == _PROSE:
        parts = _sentences(text, span)
    elif span.kind in (_CODE, _PRE):
        parts = _lines(text, span)
    if len(parts) <= 1:
        parts = _words(text, span)
    for part in parts:
        _refine(text, part, budget, max_tokens, out, max_chars)


def _tail(text: str, spans: list[_Span], limit: int) -> list[_Span]:
    """The last whole sentences (else words) of `spans` totalling at most `limit` tokens."""
    if limit <= 0:
        return []
    taken: list[_Span] = []
    total = 0
    for span in reversed(spans):
        if span.kind == _PIECE:
            break
        units = _sentences(text, span) if span.kind == _PROSE else [span]
        for unit in reversed(units):
            if total + unit.count > limit:
                break
            taken.append(unit)
            total += unit.count
        else:
            continue
        break
    if not taken and spans[-1].kind in (_PROSE, _SENTENCE):
        last = spans[-1]
        sentence = _sentences(text, last)[-1] if last.kind == _PROSE else last
        for word in reversed(_words(text, sentence)):
            if total + word.count > limit:
                break
            taken.append(word)
            total += word.count
    taken.reverse()
    return taken


def _pack(
    text: str,
    spans: list[_Span],
    max_tokens: int,
    overlap_tokens: int,
    max_chars: int,
    breaks: Sequence[int] = (),
) -> Iterator[tuple[int, int, int]]:
    """Greedily fill chunks with `spans`; yield (start, end, token count) of each. No chunk,
    overlap included, holds text from both sides of an offset in `breaks` (sorted)."""
    current: list[_Span] = []
    total = 0
    next_break = 0
    for span in spans:
        first = current[0].start if current else span.start
        while next_break < len(breaks) and breaks[next_break] <= first:
            next_break += 1
        crosses = next_break < len(breaks) and span.start >= breaks[next_break]
        too_long = bool(current) and span.end - current[0].start > max_chars
        if current and (span.glued or total + span.count > max_tokens or too_long or crosses):
            yield current[0].start, current[-1].end, total
            cut = span.glued or too_long or crosses
            limit = 0 if cut else min(overlap_tokens, max_tokens - span.count)
            current = _tail(text, current, limit)
            total = sum(unit.count for unit in current)
        current.append(span)
        total += span.count
    if current:
        yield current[0].start, current[-1].end, total


#: A chunk spans at most this many characters per token of `max_tokens` (whitespace and long
#: words count few tokens: without a bound a run of blanks made megabyte chunks).
CHARS_PER_TOKEN_MAX = 16


def split_document(
    text: str,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    max_chunks: int | None = None,
    breaks: Sequence[int] = (),
) -> list[Chunk]:
    """Split `text` into chunks of at most `max_tokens` tokens that never cross a section,
    nor one of the offsets in `breaks` (page starts: a chunk's page is then unambiguous).

    Raises ValueError if `max_tokens` < MIN_MAX_TOKENS or `overlap_tokens` is not in
    ``[0, max_tokens)``, and TooManyChunksError as soon as a chunk past `max_chunks` is made
    (the rest of the text is not split). See the module docstring for the rules.
    """
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(
            f"overlap_tokens must be in [0, max_tokens={max_tokens}), got {overlap_tokens}"
        )
    budget = max_tokens - overlap_tokens
    max_chars = CHARS_PER_TOKEN_MAX * max_tokens
    if max_chunks is not None and count_tokens(text) > max_chunks * max_tokens:
        # No chunk holds more than `max_tokens` tokens: the cap is certain to be exceeded, so
        # refuse before parsing (linear time, constant memory).
        raise TooManyChunksError(
            f"the document splits into more than {max_chunks} chunks, the limit per document"
        )
    chunks: list[Chunk] = []
    for section in _Parser(text, max_chunks).parse():
        spans: list[_Span] = []
        for span in section.spans:
            _refine(text, span, budget, max_tokens, spans, max_chars)
        for start, end, count in _pack(
            text, spans, max_tokens, overlap_tokens, max_chars, sorted(breaks)
        ):
            if max_chunks is not None and len(chunks) >= max_chunks:
                raise TooManyChunksError(
                    f"the document splits into more than {max_chunks} chunks, "
                    "the limit per document"
                )
            chunks.append(
                Chunk(
                    ord=len(chunks),
                    text=text[start:end],
                    section_label=section.label,
                    token_count=count,
                    start=start,
                    end=end,
                )
            )
    return chunks
