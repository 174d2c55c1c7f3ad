"""The hashing embedder: word unigram + bigram feature hashing, 1 500+ chunks/s and
deterministic across processes. Plumbing for tests only (it finds the right document for 1
in 6 paraphrased queries): `EMBEDDING_PROVIDER=hashing` is refused outside ENVIRONMENT=test."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError
from ragline.retrieval.embeddings import EmbedKind
from ragline.retrieval.embeddings.common import normalise

HASHING_NAME = "hashing-v1"
_WORD = re.compile(r"\w+")


class HashingEmbedder:
    """Word unigram + bigram feature hashing: deterministic plumbing for tests, not search."""

    name: str = HASHING_NAME

    def __init__(self, settings_or_dim: Settings | int) -> None:
        dim = settings_or_dim if isinstance(settings_or_dim, int) else settings_or_dim.embedding_dim
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
        return normalise(vector)
