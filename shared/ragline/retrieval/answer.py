"""Answers with citations: retrieve with `ragline.retrieval.search`, then let an LLM write the
answer from the numbered passages, or (no LLM configured) extract the best-matching sentences
offline. Every call is recorded as a run of kind `answer`, failed calls included.

Example::

    result = answer(session, AnswerRequest(question="How does the with statement work?"))
    result.text  # "... [1] ... [2]"; result.citations[0].hit.chunk_id
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from ragline.cloud import http
from ragline.cloud.gcp.vertex import VertexAuth, check_http_url
from ragline.core.config import Settings, get_settings
from ragline.core.errors import (
    ConfigurationError,
    EmbeddingError,
    NotFoundError,
    RaglineError,
    ValidationError,
)
from ragline.db import tenancy
from ragline.db.models import Run
from ragline.retrieval import search as retrieval
from ragline.retrieval.embeddings import Embedder

__all__ = [
    "LLM",
    "NO_PASSAGES",
    "Answer",
    "AnswerParams",
    "AnswerRequest",
    "Citation",
    "GenerationError",
    "answer",
    "extract",
    "get_llm",
    "reset_llms",
]

AnswerMode = Literal["extractive", "llm"]
Generator = Literal["auto", "extractive", "llm"]

NO_PASSAGES = "No supporting passages were found for this question."
DEFAULT_SENTENCES = 3
MAX_QUOTE_CHARS = 400
#: Rank weight of a passage: 1 for the first, then 1 / (1 + RANK_DECAY * (rank - 1)).
RANK_DECAY = 0.2

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "vertex": "gemini-2.0-flash"}

SYSTEM_PROMPT = (
    "You answer questions using only the numbered passages you are given. "
    "Cite every statement with the number of its passage in square brackets, like [2]; "
    "cite several as [1][3]. If the passages do not contain the answer, say so briefly. "
    "Never cite a number that is not a passage."
)


class GenerationError(EmbeddingError):
    """The language model failed or replied with something unusable (HTTP 502).

    Subclasses EmbeddingError only to share its 502 mapping; it belongs in ragline.core.errors with
    its own STATUS_BY_ERROR entry."""

    code = "generation_failed"


# --------------------------------------------------------------------------- request


class AnswerParams(BaseModel):
    """What-if knobs. The run records the effective values, so branches can be compared."""

    model_config = ConfigDict(extra="forbid")

    mode: retrieval.Mode | None = Field(default=None, description="search mode (hybrid)")
    top_k: int | None = Field(default=None, ge=1, le=50, description="overrides top_k")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="LLM only")
    generator: Generator = Field(
        default="auto", description="auto: the LLM when one is configured, else extractive"
    )
    sentences: int | None = Field(default=None, ge=1, le=10, description="extractive only")


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=2000)
    top_k: int = Field(default=5, ge=1, le=50)
    filters: retrieval.Filters | None = None
    parent_run_id: uuid.UUID | None = None
    scenario_label: str | None = Field(default=None, max_length=200)
    params: AnswerParams = Field(default_factory=AnswerParams)

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip() or "\x00" in v:
            raise ValueError("question must be non-blank text without NUL")
        return v


# --------------------------------------------------------------------------- result


@dataclass
class Citation:
    """Passage `ref` (its [n] in the answer, = its rank in retrieval) and the quoted text."""

    ref: int
    hit: retrieval.Hit
    quote: str

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": self.ref,
            "chunk_id": str(self.hit.chunk_id),
            "document_id": str(self.hit.document_id),
            "title": self.hit.title,
            "section_label": self.hit.section_label,
            "quote": self.quote,
            "start": self.hit.start,
            "end": self.hit.end,
        }
        if self.hit.page is not None:
            out["page"] = self.hit.page
        return out


@dataclass
class Answer:
    text: str
    citations: list[Citation]
    mode: AnswerMode
    run_id: uuid.UUID
    #: Set when the call failed; the failed run is still recorded (commit, then report it).
    error: RaglineError | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "citations": [c.as_dict() for c in self.citations],
            "run_id": str(self.run_id),
            "mode": self.mode,
        }


# --------------------------------------------------------------------------- extractive

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either etc few for from further get gets had has have having he her here hers herself
    him himself his how i if in into is it its itself just let may me might more most much
    must my myself no nor not now of off on once one only or other our ours ourselves out
    over own same shall she should so some such than that the their theirs them themselves
    then there these they this those through to too under until up upon us use used using
    very via was we were what when where whether which while who whom whose why will with
    within without would yes yet you your yours yourself yourselves
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN = re.compile(r"[^\W_]+")
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(`\[A-Z0-9])")
#: Grammar rules, assignments, prompts: code, which makes a poor quoted answer.
_CODE = re.compile(r"::=|>>>|\w\s*(?<![=!<>+\-*/%&|^])=(?!=)\s*\S")
#: Score factor of a sentence that looks like code.
CODE_PENALTY = 0.5
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")


def stem(word: str) -> str:
    """A deliberately crude stemmer: calls/called/calling -> call, raise/raised -> rais."""
    if len(word) > 5 and word.endswith("ing"):
        word = word[:-3]
    elif len(word) > 4 and word.endswith("ed"):
        word = word[:-2]
    elif len(word) > 4 and word.endswith("ies"):
        word = word[:-3] + "y"
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def content_terms(text: str) -> set[str]:
    """Stemmed, lower-cased words of `text` without stopwords and one-letter tokens."""
    return {stem(w) for w in _TOKEN.findall(text.lower()) if len(w) > 1 and w not in _STOPWORDS}


def sentences(text: str) -> Iterator[str]:
    """The sentences of a passage, whitespace collapsed; fragments under three words skipped."""
    for paragraph in _PARAGRAPH.split(text):
        flat = " ".join(paragraph.split())
        for sentence in _SENTENCE_END.split(flat):
            sentence = sentence.strip()
            if len(sentence.split()) >= 3 and any(c.isalpha() for c in sentence):
                yield sentence


def _quote(sentence: str) -> str:
    if len(sentence) <= MAX_QUOTE_CHARS:
        return sentence
    return sentence[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"


@dataclass(order=True)
class _Candidate:
    sort_key: tuple[float, int, int]
    ref: int = field(compare=False)
    sentence: str = field(compare=False)


def extract(
    question: str, hits: Sequence[retrieval.Hit], limit: int = DEFAULT_SENTENCES
) -> tuple[str, list[Citation]]:
    """The `limit` sentences sharing most content words with the question, weighted by their
    passage's rank, in score order, each followed by its passage marker [n]."""
    terms = content_terms(question)
    candidates: list[_Candidate] = []
    for ref, hit in enumerate(hits, start=1):
        weight = 1.0 / (1.0 + RANK_DECAY * (ref - 1))
        for position, sentence in enumerate(sentences(hit.text)):
            words = content_terms(sentence)
            matched = len(terms & words)
            if not matched:
                continue
            # Coverage of the question dominates; density breaks ties between long and short.
            score = weight * (matched / len(terms) + 0.05 * matched / math.sqrt(len(words)))
            if _CODE.search(sentence):
                score *= CODE_PENALTY
            candidates.append(_Candidate((-score, ref, position), ref, sentence))
    candidates.sort()
    picked: list[_Candidate] = []
    seen: set[str] = set()
    for candidate in candidates:
        key = " ".join(candidate.sentence.lower().split())
        if key in seen:
            continue
        seen.add(key)
        picked.append(candidate)
        if len(picked) == limit:
            break
    if not picked:
        # No shared word (e.g. a paraphrase the vector search understood): the top passage's
        # first sentence is still the best evidence there is.
        first = next(sentences(hits[0].text), hits[0].text.strip())
        picked = [_Candidate((0.0, 1, 0), 1, first)]
    text = " ".join(f"{_quote(c.sentence)} [{c.ref}]" for c in picked)
    quotes: dict[int, list[str]] = {}
    for c in picked:
        quotes.setdefault(c.ref, []).append(_quote(c.sentence))
    citations = [Citation(ref, hits[ref - 1], " … ".join(q)) for ref, q in quotes.items()]
    return text, citations


# --------------------------------------------------------------------------- llm


class LLM(Protocol):
    """A chat model: one system instruction and one user prompt in, text out."""

    provider: str
    model: str

    def complete(self, system: str, prompt: str, *, temperature: float) -> str: ...


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str], provider: str) -> Any:
    return http.post_json(
        url, body, headers, provider=provider, kind="LLM", permanent=GenerationError
    )


class OpenAIChat:
    """Any OpenAI-compatible `POST {base}/chat/completions`, over stdlib HTTP."""

    provider = "openai"

    def __init__(self, settings: Settings) -> None:
        base = check_http_url(settings.llm_base_url or "https://api.openai.com/v1", "LLM_BASE_URL")
        self._url = base + "/chat/completions"
        self.model: str = settings.llm_model or DEFAULT_MODELS["openai"]
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
        if not key and urllib.parse.urlsplit(base).hostname == "api.openai.com":
            raise ConfigurationError("LLM_PROVIDER=openai needs LLM_API_KEY")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def complete(self, system: str, prompt: str, *, temperature: float) -> str:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": prompt},
            ],
            "temperature": temperature,
        }
        reply = _post_json(self._url, body, self._headers, self.provider)
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise GenerationError("openai LLM: unexpected reply shape") from exc
        if not isinstance(text, str) or not text.strip():
            raise GenerationError("openai LLM: empty answer")
        return text.strip()


class VertexGemini:
    """Gemini on Vertex AI via the REST `:generateContent` endpoint, authorised by ADC."""

    provider = "vertex"

    def __init__(self, settings: Settings) -> None:
        self.model: str = settings.llm_model or DEFAULT_MODELS["vertex"]
        self._vertex = VertexAuth(
            settings,
            setting="LLM_PROVIDER",
            model=self.model,
            method="generateContent",
            base_url=settings.llm_base_url,
            base_setting="LLM_BASE_URL",
        )

    def complete(self, system: str, prompt: str, *, temperature: float) -> str:
        body = {
            "systemInstruction": {"parts": [{"text": system}]},
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"temperature": temperature},
        }
        headers = {"Authorization": f"Bearer {self._vertex.token(GenerationError)}"}
        reply = _post_json(self._vertex.url, body, headers, self.provider)
        try:
            parts = reply["candidates"][0]["content"]["parts"]
            text = "".join(str(p.get("text", "")) for p in parts)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise GenerationError("vertex LLM: unexpected reply shape") from exc
        if not text.strip():
            raise GenerationError("vertex LLM: empty answer")
        return text.strip()


_llm_lock = threading.Lock()
_llms: dict[tuple[object, ...], LLM] = {}


def get_llm(settings: Settings | None = None) -> LLM | None:
    """The configured LLM (built once per process), or None for LLM_PROVIDER=none."""
    settings = settings if settings is not None else get_settings()
    if settings.llm_provider == "none":
        return None
    secret = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
    key: tuple[object, ...] = (
        settings.llm_provider,
        settings.llm_base_url,
        settings.llm_model,
        hashlib.sha256(secret.encode()).hexdigest(),  # never keep the secret in the key
        settings.vertex_project,
        settings.vertex_location,
    )
    with _llm_lock:
        llm = _llms.get(key)
        if llm is None:
            llm = (
                OpenAIChat(settings)
                if settings.llm_provider == "openai"
                else VertexGemini(settings)
            )
            _llms[key] = llm
    return llm


def reset_llms() -> None:
    """Forget every built LLM client (tests)."""
    with _llm_lock:
        _llms.clear()


def build_prompt(question: str, hits: Sequence[retrieval.Hit]) -> str:
    passages = []
    for ref, hit in enumerate(hits, start=1):
        label = f"{hit.title} — {hit.section_label}" if hit.section_label else hit.title
        passages.append(f"[{ref}] {label}\n{hit.text.strip()}")
    return "Passages:\n\n" + "\n\n".join(passages) + f"\n\nQuestion: {question}\nAnswer:"


def cited_refs(text: str, count: int) -> list[int]:
    """Passage numbers cited as [n] or [n, m] in `text`, in order of first citation, 1..count."""
    refs: list[int] = []
    for match in _MARKER.finditer(text):
        for part in re.split(r"[,;]", match.group(1)):
            ref = int(part)
            if 1 <= ref <= count and ref not in refs:
                refs.append(ref)
    return refs


def _best_quote(claim: str, hit: retrieval.Hit) -> str:
    """The sentence of `hit` sharing most words with the answer text that cites it."""
    terms = content_terms(_MARKER.sub(" ", claim))
    best, best_score = "", -1
    for sentence in sentences(hit.text):
        score = len(terms & content_terms(sentence))
        if score > best_score:
            best, best_score = sentence, score
    return _quote(best or hit.text.strip())


def generate(
    llm: LLM, question: str, hits: Sequence[retrieval.Hit], temperature: float
) -> tuple[str, list[Citation]]:
    """Ask `llm` with the passages numbered [1]..[n]; citations are the numbers it cited."""
    text = llm.complete(SYSTEM_PROMPT, build_prompt(question, hits), temperature=temperature)
    claims = re.split(r"(?<=[.!?\]])\s+", text)
    citations = []
    for ref in cited_refs(text, len(hits)):
        citing = " ".join(c for c in claims if ref in cited_refs(c, len(hits))) or text
        citations.append(Citation(ref, hits[ref - 1], _best_quote(citing, hits[ref - 1])))
    return text, citations


# --------------------------------------------------------------------------- the call


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def answer(
    session: Session,
    req: AnswerRequest,
    *,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
) -> Answer:
    """Retrieve, answer, and record the run; a provider failure is returned in `error` (with
    the failed run recorded) rather than raised, so the caller can commit the run."""
    settings = settings if settings is not None else get_settings()
    if req.parent_run_id is not None and tenancy.get(session, Run, req.parent_run_id) is None:
        raise NotFoundError(f"no run {req.parent_run_id}")
    p = req.params
    if p.generator == "llm" and settings.llm_provider == "none":
        raise ValidationError(
            "params.generator is 'llm' but no LLM is configured (LLM_PROVIDER=none)"
        )
    use_llm = p.generator != "extractive" and settings.llm_provider != "none"
    mode: AnswerMode = "llm" if use_llm else "extractive"
    params: dict[str, Any] = {
        "mode": p.mode or "hybrid",
        "top_k": p.top_k or req.top_k,
        "generator": mode,
    }
    if req.filters is not None:
        params["filters"] = req.filters.model_dump(mode="json", exclude_none=True)
    if use_llm:
        params["temperature"] = p.temperature if p.temperature is not None else 0.0
        params["model"] = settings.llm_model or DEFAULT_MODELS[settings.llm_provider]
    else:
        params["sentences"] = p.sentences or DEFAULT_SENTENCES

    started_at = datetime.now(UTC)
    state: dict[str, Any] = {"question": req.question, "params": params, "mode": mode}
    tool_log: list[dict[str, Any]] = []
    text, citations = "", list[Citation]()
    error: RaglineError | None = None
    step, step_started = "search", time.monotonic()
    try:
        result = retrieval.search(
            session,
            retrieval.SearchRequest(
                query=req.question, top_k=params["top_k"], mode=params["mode"], filters=req.filters
            ),
            embedder,
        )
        hits = result.hits
        state["retrieved"] = [str(h.chunk_id) for h in hits]
        tool_log.append(
            {
                "tool": "search",
                "ms": _ms(step_started),
                "results": len(hits),
                "complete": result.complete,
                "plan": result.plan,
            }
        )
        step, step_started = ("llm" if use_llm else "extractive"), time.monotonic()
        entry: dict[str, Any] = {"tool": step}
        llm = get_llm(settings) if use_llm else None
        if not hits:
            text = NO_PASSAGES
        elif llm is not None:
            entry["model"] = llm.model
            text, citations = generate(llm, req.question, hits, params["temperature"])
        else:
            text, citations = extract(req.question, hits, params["sentences"])
        tool_log.append({**entry, "ms": _ms(step_started), "cited": [c.ref for c in citations]})
    except RaglineError as exc:
        error = exc
        tool_log.append({"tool": step, "ms": _ms(step_started), "error": exc.code})
    state["answer"] = text if error is None else None
    state["citations"] = [c.as_dict() for c in citations]
    state.setdefault("retrieved", [])
    run = tenancy.add(
        session,
        Run(
            kind="answer",
            status="failed" if error else "succeeded",
            parent_run_id=req.parent_run_id,
            scenario_label=req.scenario_label,
            user_id=tenancy.current_user(session),
            input=req.model_dump(mode="json"),
            state=state,
            tool_log=tool_log,
            error=f"{error.code}: {error.message}"[:2000] if error else None,
            started_at=started_at,
            finished_at=datetime.now(UTC),
        ),
    )
    session.flush()
    return Answer(text, citations, mode, run.id, error)
