"""Text embedders behind one protocol; each provider imports its heavy SDK only when built.

Example::

    embedder = get_embedder()  # provider from EMBEDDING_PROVIDER, loaded once per process
    vectors = embedder.embed(["first chunk", "second chunk"])
    query = embedder.embed(["what is in the chunks?"], kind="query")[0]
"""

from __future__ import annotations

import hashlib
import importlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

__all__ = ["PROVIDERS", "EmbedKind", "Embedder", "for_org", "get_embedder", "reset_embedders"]

EmbedKind = Literal["document", "query"]


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


def for_org(session: Session, settings: Settings | None = None) -> Embedder:
    """The embedder whose vectors the session's org already stores, else the configured one.

    One org's vectors come from one MiniLM variant: an org with `all-MiniLM-L6-v2` (int8)
    vectors keeps embedding documents and queries with int8 after the default moved on, so its
    searches still compare like with like (the stored model name says which variant)."""
    settings = settings if settings is not None else get_settings()
    if settings.embedding_provider != "minilm":
        return get_embedder(settings)
    import sqlalchemy as sa

    from ragline.db import tenancy
    from ragline.db.models import Chunk
    from ragline.retrieval.embeddings.minilm import MINILM_VARIANTS

    variants = {name: variant for variant, name in MINILM_VARIANTS.items()}
    stored = session.scalar(
        sa.select(Chunk.embedding_model)
        .where(
            Chunk.org_id == tenancy.current_org(session),
            Chunk.embedding_model.in_(list(variants)),
        )
        .limit(1)
    )
    variant = variants.get(stored or "", settings.minilm_variant)
    if variant == settings.minilm_variant:
        return get_embedder(settings)
    return get_embedder(settings.model_copy(update={"minilm_variant": variant}))


def reset_embedders() -> None:
    """Forget every built embedder (tests; the next `get_embedder` builds afresh)."""
    with _lock:
        _embedders.clear()


def _cache_key(settings: Settings) -> tuple[object, ...]:
    provider = settings.embedding_provider
    common: tuple[object, ...] = (provider, settings.embedding_dim, settings.embedding_batch_size)
    if provider == "minilm":
        return (
            *common,
            settings.minilm_tokenizer_path,
            settings.minilm_variant,
            settings.minilm_model_dir,
        )
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


#: EMBEDDING_PROVIDER → "module:class". One module per provider, imported only when chosen;
#: a new provider is a new module and a line here. `hashing` lives with the test helpers and is
#: refused outside ENVIRONMENT=test.
PROVIDERS: dict[str, str] = {
    "minilm": "ragline.retrieval.embeddings.minilm:MiniLMEmbedder",
    "openai": "ragline.retrieval.embeddings.openai:OpenAIEmbedder",
    "vertex": "ragline.retrieval.embeddings.vertex:VertexEmbedder",
    "hashing": "ragline.testing.hashing:HashingEmbedder",
}


def _build(settings: Settings) -> Embedder:
    provider = settings.embedding_provider
    if provider not in PROVIDERS:
        raise ConfigurationError(f"unknown EMBEDDING_PROVIDER {provider!r}")
    if provider == "hashing" and settings.environment != "test":
        raise ConfigurationError(
            "EMBEDDING_PROVIDER=hashing is a test double (it cannot rank): ENVIRONMENT=test only"
        )
    module_name, _, class_name = PROVIDERS[provider].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # ragline.testing is not packaged into functions
        raise ConfigurationError(f"embedding provider {provider!r} is not installed") from exc
    factory = getattr(module, class_name)
    embedder: Embedder = factory(settings)
    return embedder
