"""The HNSW miss check: is an approximate top-k the exact one? Compared, in this process,
with a fixed sample of the org's vectors.

An HNSW walk under the tenant filter can stay in the wrong region of the graph (seen on
clustered data at a million rows, issue 14): it then returns k rows that are not the k
nearest, and nothing in the result says so. A sample of the org's vectors does: if it holds a
vector closer to the query than the worst result, and the result lacks it, the walk missed.
Certain to notice a walk that found the wrong region (every sampled vector of the right one
is closer); a partial miss is noticed only when the sample holds one of the missing rows.

The sample is ~`SAMPLE_PERCENT` of the table's pages (`TABLESAMPLE SYSTEM ... REPEATABLE`,
so every process draws the same one), at most `SAMPLE_ROWS` vectors, read once per
`SAMPLE_TTL_S` per (org, vectors searched, principals) and kept in a bounded LRU: the check
itself is one matrix-vector product (~0.1 ms), where reading the sample in SQL on every
search cost 1.5 ms at 111 110 rows and grew with the table. A stale sample only lowers the
check's power (rows added since are not in it) or raises a false alarm (a sampled row since
deleted, or of a document not yet ready), which costs the caller a retry, never a result:
the sample is never returned to anyone.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Share of the table's pages read for a sample (~1 100 rows of a 100 000-chunk org in a
#: 111 110-row table: enough to meet, with ~99 % odds, one of the query's topic among 256).
SAMPLE_PERCENT = 1.0
#: Most vectors kept per sample (3 MB at 384 dimensions).
SAMPLE_ROWS = 2_048
#: Seconds a sample is reused.
SAMPLE_TTL_S = 300.0
#: Samples kept per process (least recently used dropped first).
MAX_SAMPLES = 16
#: Relative slack on distances: float32 arithmetic here and in pgvector differ in the last
#: bits, and a duplicate of a result row must not look closer than it.
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Sample:
    ids: tuple[uuid.UUID, ...]
    #: float32, one unit-length row per id (numpy array).
    vectors: Any
    expires: float


_samples: OrderedDict[Hashable, Sample] = OrderedDict()
_lock = threading.Lock()


def sample(key: Hashable, read: Callable[[], Sequence[Any]]) -> Sample:
    """The sample for `key`, read by `read` (in the caller's tenant transaction: rows of `id`
    and `v`, the vector as pgvector's binary form, `vector_send`) when missing or expired."""
    now = time.monotonic()
    with _lock:
        found = _samples.get(key)
        if found is not None and found.expires > now:
            _samples.move_to_end(key)
            return found
    ids, vectors = _unit_rows([(row.id, bytes(row.v)) for row in read()])
    made = Sample(ids, vectors, now + SAMPLE_TTL_S)
    with _lock:
        _samples[key] = made
        _samples.move_to_end(key)
        while len(_samples) > MAX_SAMPLES:
            _samples.popitem(last=False)
    return made


def missed(found: Sample, query: list[float], ids: Iterable[uuid.UUID], worst: float) -> bool:
    """Whether the sample holds a vector closer to `query` (cosine distance) than `worst`,
    the result's largest distance, that is not among the result's `ids`."""
    import numpy as np

    q = np.asarray(query, dtype=np.float32)
    if not found.ids or found.vectors.shape[1] != q.shape[0]:
        return False  # nothing to compare with (another dimension: a space being replaced)
    norm = float(np.linalg.norm(q))
    if norm == 0.0:
        return False
    distances = 1.0 - found.vectors @ (q / norm)
    closer = np.flatnonzero(distances < worst - TOLERANCE * max(1.0, abs(worst)))
    if not len(closer):
        return False
    have = set(ids)
    return any(found.ids[i] not in have for i in closer)


def clear() -> None:
    """Forget every sample (tests)."""
    with _lock:
        _samples.clear()


def _unit_rows(rows: list[tuple[uuid.UUID, bytes]]) -> tuple[tuple[uuid.UUID, ...], Any]:
    """pgvector's binary vectors (int16 dimension, int16 unused, float4 big-endian each) as
    a float32 matrix of unit rows, with their ids; zero vectors (no direction, no cosine
    distance) are left out."""
    import numpy as np

    if not rows:
        return (), np.zeros((0, 0), dtype=np.float32)
    matrix = np.vstack([np.frombuffer(blob, dtype=">f4", offset=4) for _, blob in rows])
    matrix = matrix.astype(np.float32)
    norms = np.linalg.norm(matrix, axis=1)
    keep = np.flatnonzero(norms > 0.0)
    return tuple(rows[i][0] for i in keep), matrix[keep] / norms[keep, None]
