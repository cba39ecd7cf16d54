"""Embeddings as data: float32 vectors stored as bytes, and an in-memory index of them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


def encode_vector(vector: NDArray[np.float32] | list[float]) -> bytes:
    """little-endian float32 bytes: both stores keep them as they are, and a load reads
    them without decoding text."""
    return np.asarray(vector, dtype="<f4").tobytes()


def decode_vector(data: bytes) -> NDArray[np.float32]:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def decode_vectors(blobs: Sequence[bytes | memoryview]) -> NDArray[np.float32]:
    """Vectors of one length as the rows of one (writable) matrix: their bytes joined and
    read once, instead of an array per vector."""
    if len({len(data) for data in blobs}) > 1:
        raise ValueError("the vectors differ in length")
    if not blobs:
        return np.zeros((0, 0), dtype=np.float32)
    matrix = np.frombuffer(bytearray().join(blobs), dtype="<f4").reshape(len(blobs), -1)
    return matrix.astype(np.float32, copy=False)


class VectorIndex:
    """Unit vectors of one collection in one matrix, so a search is one matmul.

    Rows grow by doubling and a removal moves the last row into the hole, so
    loading or adding n vectors costs O(n) copies, not O(n^2).
    """

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._rows: dict[str, int] = {}
        self._data = np.zeros((0, 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, record_id: str, vector: NDArray[np.float32]) -> None:
        row = np.asarray(vector, dtype=np.float32).ravel()
        if record_id in self._rows:
            self._data[self._rows[record_id]] = row
            return
        count = len(self.ids)
        if count == self._data.shape[0]:
            grown = np.zeros((max(16, 2 * count), row.size), dtype=np.float32)
            if count:
                grown[:count] = self._data[:count]
            self._data = grown
        self._data[count] = row
        self._rows[record_id] = count
        self.ids.append(record_id)

    def add_many(self, ids: Sequence[str], rows: NDArray[np.float32]) -> None:
        """``rows[i]`` under ``ids[i]``. Into an empty index (a load), ``rows`` (one row per
        id) becomes its storage as it is when it is a writable float32 matrix, and else a
        copy of it: 10,000 vectors are not held twice."""
        if not ids:
            return
        if self.ids or len(set(ids)) != len(ids):
            for record_id, row in zip(ids, rows, strict=True):
                self.add(record_id, row)
            return
        if len(ids) != len(rows):
            raise ValueError(f"{len(ids)} ids for {len(rows)} vectors")
        self._data = np.require(rows, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])
        self.ids = list(ids)
        self._rows = {record_id: row for row, record_id in enumerate(self.ids)}

    def remove(self, record_id: str) -> None:
        index = self._rows.pop(record_id, None)
        if index is None:
            return
        last = len(self.ids) - 1
        if index != last:
            moved = self.ids[last]
            self._data[index] = self._data[last]
            self.ids[index] = moved
            self._rows[moved] = index
        self.ids.pop()

    def nearest(
        self, query: NDArray[np.float32], k: int, among: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """The k most similar ids with their cosine (vectors are normalised)."""
        if not self.ids:
            return []
        scores = self._data[: len(self.ids)] @ np.asarray(query, dtype=np.float32)
        if among is not None:
            allowed = np.array([record_id in among for record_id in self.ids])
            scores = np.where(allowed, scores, -np.inf)
        k = min(k, len(self.ids))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        return [(self.ids[int(i)], float(scores[i])) for i in top if np.isfinite(scores[i])]
