"""The HNSW miss check's arithmetic (issue 14); its sample statement and cache run against
Postgres in tests/integration/test_search.py."""

from __future__ import annotations

import struct
import uuid

import numpy as np

from ragline.retrieval import hnswcheck


def blob(vector: list[float]) -> bytes:
    """pgvector's binary form (`vector_send`): int16 dimension, int16 unused, float4 BE."""
    return struct.pack(f">hh{len(vector)}f", len(vector), 0, *vector)


IDS = [uuid.UUID(int=i + 1) for i in range(4)]
VECTORS = [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]]


def make_sample(rows: list[tuple[uuid.UUID, list[float]]]) -> hnswcheck.Sample:
    ids, vectors = hnswcheck._unit_rows([(i, blob(v)) for i, v in rows])
    return hnswcheck.Sample(ids, vectors, expires=float("inf"))


def test_rows_are_decoded_and_normalised_and_zero_vectors_dropped() -> None:
    found = make_sample(list(zip(IDS, VECTORS, strict=True)))
    assert found.ids == tuple(IDS[:3])  # the zero vector has no cosine distance
    assert found.vectors.dtype == np.float32
    np.testing.assert_allclose(found.vectors, np.eye(3), atol=1e-7)


def test_a_closer_sampled_row_missing_from_the_result_is_a_miss() -> None:
    found = make_sample(list(zip(IDS, VECTORS, strict=True)))
    query = [0.9, 0.1, 0.0]  # nearest: IDS[0] (distance ~0.006)
    # The result's worst row is at distance 0.5: IDS[0] is closer and not in it.
    assert hnswcheck.missed(found, query, [IDS[1]], worst=0.5)
    # With IDS[0] in the result nothing closer is left out.
    assert not hnswcheck.missed(found, query, [IDS[0], IDS[1]], worst=0.5)
    # Nothing in the sample is closer than a result that reaches 0.001.
    assert not hnswcheck.missed(found, query, [IDS[2]], worst=0.001)


def test_a_row_as_far_as_the_worst_result_is_no_miss() -> None:
    """Duplicates of a result row (boilerplate chunks) sit at the same distance; float32
    rounding here and in pgvector must not make them look closer."""
    found = make_sample([(IDS[0], [1.0, 0.0, 0.0])])
    query = [0.6, 0.8, 0.0]
    exact = 1.0 - 0.6  # cosine distance of IDS[0]
    assert not hnswcheck.missed(found, query, [IDS[1]], worst=exact - 1e-7)
    assert hnswcheck.missed(found, query, [IDS[1]], worst=exact + 1e-3)


def test_empty_samples_and_zero_queries_never_alarm() -> None:
    assert not hnswcheck.missed(make_sample([]), [1.0, 0.0], [], worst=2.0)
    found = make_sample([(IDS[0], [1.0, 0.0])])
    assert not hnswcheck.missed(found, [0.0, 0.0], [], worst=2.0)
    assert not hnswcheck.missed(found, [1.0, 0.0, 0.0], [], worst=2.0)  # other dimension
