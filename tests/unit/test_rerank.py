"""Rerankers: the Cohere-style HTTP and Vertex ranking providers against local fake servers,
and the ONNX cross-encoder with a tiny model built here with `onnx` (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError, RerankError
from ragline.retrieval import rerank
from ragline.retrieval.rerank.cross_encoder import OnnxCrossEncoder
from ragline.retrieval.rerank.http_api import HttpReranker
from ragline.retrieval.rerank.vertex import VertexReranker

from .test_embeddings import FakeCredentials, FakeServer, fake_adc, fake_server

__all__ = ["fake_adc", "fake_server"]  # fixtures, used by name

PASSAGES = ["a widget", "nothing here", "widget widget widget", "widget gadget"]


def test_no_provider_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="RERANK_PROVIDER"):
        rerank.get_reranker(Settings(rerank_provider="none"))


def test_http_cohere_style(fake_server: FakeServer) -> None:
    fake_server.default = lambda body: {
        "results": [
            {"index": i, "relevance_score": float(d.count("widget"))}
            for i, d in reversed(list(enumerate(body["documents"])))
        ]
    }
    reranker = HttpReranker(
        Settings(
            rerank_provider="http",
            rerank_base_url=fake_server.url,
            rerank_model="rerank-v3",
            rerank_api_key="sk-test",
        )
    )
    assert reranker.score("widget", PASSAGES) == [1.0, 0.0, 3.0, 1.0]
    sent = fake_server.requests[0]
    assert sent["path"] == "/rerank"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["body"] == {
        "model": "rerank-v3",
        "query": "widget",
        "documents": PASSAGES,
        "top_n": 4,
    }


def test_http_tei_style_and_errors(fake_server: FakeServer) -> None:
    settings = Settings(rerank_provider="http", rerank_base_url=fake_server.url)
    reranker = HttpReranker(settings)
    fake_server.replies = [(200, [{"index": 1, "score": 0.5}, {"index": 0, "score": 0.9}])]
    assert reranker.score("q", ["x", "y"]) == [0.9, 0.5]
    fake_server.replies = [(200, {"results": [{"nope": 1}]})]
    with pytest.raises(RerankError, match="unexpected reply"):
        reranker.score("q", ["x"])
    fake_server.replies = [(400, {"message": "bad model"})]
    with pytest.raises(RerankError, match="HTTP 400"):
        reranker.score("q", ["x"])
    with pytest.raises(ConfigurationError, match="RERANK_BASE_URL"):
        HttpReranker(Settings(rerank_provider="http"))


def test_vertex_ranking_api(fake_server: FakeServer, fake_adc: FakeCredentials) -> None:
    fake_server.default = lambda body: {
        "records": [
            {"id": r["id"], "score": len(r["content"]) / 100} for r in reversed(body["records"])
        ]
    }
    reranker = VertexReranker(
        Settings(rerank_provider="vertex", vertex_project="proj-1"), base_url=fake_server.url
    )
    scores = reranker.score("widget", PASSAGES)
    assert scores == [len(p) / 100 for p in PASSAGES]
    sent = fake_server.requests[0]
    assert sent["path"] == (
        "/v1/projects/proj-1/locations/global/rankingConfigs/default_ranking_config:rank"
    )
    assert sent["headers"]["Authorization"] == "Bearer ya29.fake-1"
    assert sent["body"]["model"] == "semantic-ranker-default@latest"
    assert [r["content"] for r in sent["body"]["records"]] == PASSAGES


def build_tiny_cross_encoder(folder: Path, liked: str = "widget") -> Path:
    """A word-level tokenizer and a model whose logit counts `liked` in (query, passage)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[PAD]", "[UNK]", "a", "widget", "nothing", "here", "gadget", "what", "is"]
    words += [] if liked in words else [liked]
    vocab = {w: i for i, w in enumerate(words)}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(folder / "tokenizer.json"))

    weights = [[1.0 if w == liked else 0.0] for w in words]
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["weights", "input_ids"], ["per_token"]),  # [b, s, 1]
            helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
            helper.make_node("Mul", ["per_token", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "axis1"], ["logits"], keepdims=0),
        ],
        "tiny_cross_encoder",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1])],
        initializer=[
            helper.make_tensor(
                "weights", TensorProto.FLOAT, [len(words), 1], [w[0] for w in weights]
            ),
            helper.make_tensor("axis2", TensorProto.INT64, [1], [2]),
            helper.make_tensor("axis1", TensorProto.INT64, [1], [1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    return folder


def test_onnx_cross_encoder_scores_pairs(tmp_path: Path) -> None:
    folder = build_tiny_cross_encoder(tmp_path)
    settings = Settings(rerank_provider="onnx", rerank_onnx_path=folder)
    encoder = OnnxCrossEncoder(settings)
    # The query's own "widget" counts once in every pair; passages add theirs.
    scores = encoder.score("what is a widget", PASSAGES)
    assert scores == [2.0, 1.0, 4.0, 2.0]
    many = encoder.score("gadget", ["widget"] * 40)  # more than one batch
    assert many == [1.0] * 40
    rerank.reset_rerankers()
    assert isinstance(rerank.get_reranker(settings), OnnxCrossEncoder)
    rerank.reset_rerankers()


def test_onnx_cross_encoder_needs_its_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="RERANK_ONNX_PATH"):
        OnnxCrossEncoder(Settings(rerank_provider="onnx"))
    with pytest.raises(ConfigurationError, match=r"model\.onnx is missing"):
        OnnxCrossEncoder(Settings(rerank_provider="onnx", rerank_onnx_path=tmp_path))
