"""A local cross-encoder (e.g. ms-marco-MiniLM-L-6-v2 exported to ONNX) run by onnxruntime +
tokenizers, no torch. `RERANK_ONNX_PATH` is a folder with `model.onnx` and `tokenizer.json`;
the model takes `input_ids`, `attention_mask` (and `token_type_ids` if it declares them) and
returns one logit per pair (the last column when it returns several)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError

MAX_TOKENS = 512
BATCH = 16


class OnnxCrossEncoder:
    def __init__(self, settings: Settings) -> None:
        folder = settings.rerank_onnx_path
        if folder is None:
            raise ConfigurationError("RERANK_PROVIDER=onnx needs RERANK_ONNX_PATH")
        model, tokenizer_file = Path(folder) / "model.onnx", Path(folder) / "tokenizer.json"
        for path in (model, tokenizer_file):
            if not path.is_file():
                raise ConfigurationError(f"RERANK_ONNX_PATH: {path} is missing")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ConfigurationError(
                "RERANK_PROVIDER=onnx needs onnxruntime and tokenizers"
            ) from exc
        self.name: str = settings.rerank_model or Path(folder).name
        self._tokenizer: Any = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        self._session: Any = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        import numpy as np

        scores: list[float] = []
        for start in range(0, len(passages), BATCH):
            pairs = [(query, p) for p in passages[start : start + BATCH]]
            encoded = self._tokenizer.encode_batch(pairs)
            feed: dict[str, Any] = {
                "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            }
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
            logits = np.asarray(self._session.run(None, feed)[0], dtype=np.float64)
            column = logits.reshape(len(pairs), -1)[:, -1]
            scores.extend(float(x) for x in column)
        return scores
