"""MinHash signatures and LSH band hashes with numpy (pure: no I/O).

A signature is `num_perm` minima of the item's shingle hashes under `num_perm` hash functions
h_i(x) = ((a_i * x + b_i) mod 2**64) >> 32 (multiply-add-shift, 2-independent for 32-bit x). The share of
equal minima between two signatures estimates the Jaccard similarity of their shingle sets.

Determinism: a_i and b_i come from BLAKE2b of (seed, i), not from a random generator, so every classify
worker, every restart and every numpy version computes the same signature for the same text; shingle
hashes are zlib.crc32 (monitor/stories/text.py). Band hashes are computed from the signature alone.

LSH: the signature is cut into `bands` bands of `rows` values; two items share a band's hash with
probability J**rows, so they become candidates with probability 1 - (1 - J**rows)**bands, an S-curve
around (1/bands)**(1/rows). Candidates are then checked with the estimated Jaccard against the threshold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CHUNK_SHINGLES = 2048  # shingles hashed per vectorised step (batch signatures)
EMPTY = np.uint32(0xFFFFFFFF)  # the minimum over no shingles: a text with no words has an all-EMPTY signature


def _params(seed: int, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    words = [hashlib.blake2b(f"finmon-minhash:{seed}:{i}".encode(), digest_size=16).digest() for i in range(num_perm)]
    a = np.array([int.from_bytes(w[:8], "little") | 1 for w in words], dtype=np.uint64)  # odd multipliers
    b = np.array([int.from_bytes(w[8:], "little") for w in words], dtype=np.uint64)
    return a, b


@dataclass(frozen=True)
class MinHasher:
    """Signatures and band hashes for one (num_perm, bands, seed) setting."""

    num_perm: int = 64
    bands: int = 16
    seed: int = 1
    _a: np.ndarray = field(init=False, repr=False, compare=False)
    _b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_perm < 1 or self.bands < 1 or self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a positive multiple of bands ({self.bands})")
        a, b = _params(self.seed, self.num_perm)
        object.__setattr__(self, "_a", a)
        object.__setattr__(self, "_b", b)

    @property
    def rows(self) -> int:
        return self.num_perm // self.bands

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """The MinHash signature (uint32, `num_perm` values) of one set of shingle hashes."""
        if len(hashes) == 0:
            return np.full(self.num_perm, EMPTY, dtype=np.uint32)
        with np.errstate(over="ignore"):
            mixed = hashes.astype(np.uint64)[:, None] * self._a[None, :] + self._b[None, :]
        return (mixed >> np.uint64(32)).min(axis=0).astype(np.uint32)

    def signatures(self, sets: Sequence[np.ndarray]) -> np.ndarray:
        """Signatures of many shingle sets, vectorised in chunks: shape (len(sets), num_perm)."""
        out = np.full((len(sets), self.num_perm), EMPTY, dtype=np.uint32)
        sizes = np.array([len(s) for s in sets], dtype=np.int64)
        ends = np.cumsum(sizes)
        start = 0
        while start < len(sets):  # chunks of ~CHUNK_SHINGLES shingles keep the hash matrix in cache
            base = ends[start] - sizes[start]
            stop = max(start + 1, int(np.searchsorted(ends, base + CHUNK_SHINGLES, side="right")))
            self._fill(out, sets, sizes, start, stop)
            start = stop
        return out

    def _fill(self, out: np.ndarray, sets: Sequence[np.ndarray], sizes: np.ndarray, lo: int, hi: int) -> None:
        rows = lo + np.flatnonzero(sizes[lo:hi])
        if len(rows) == 0:
            return
        flat = np.concatenate([sets[int(i)] for i in rows]).astype(np.uint64)
        with np.errstate(over="ignore"):
            mixed = (flat[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        starts = np.concatenate(([0], np.cumsum(sizes[rows])[:-1]))
        out[rows] = np.minimum.reduceat(mixed, starts, axis=0).astype(np.uint32)

    def band_hashes(self, signature: np.ndarray) -> list[int]:
        """One signed 64-bit hash per band (fits a BIGINT column); an empty signature has none."""
        if bool((signature == EMPTY).all()):
            return []
        return [int(h) for h in self.band_matrix(signature[None, :])[0]]

    def band_matrix(self, signatures: np.ndarray) -> np.ndarray:
        """Band hashes of many signatures, shape (n, bands), int64: a universal hash of each band's values
        (sum of value * odd constant, mod 2**64) through the SplitMix64 finaliser."""
        values = signatures.astype(np.uint64).reshape(len(signatures), self.bands, self.rows)
        with np.errstate(over="ignore"):
            h = (values * self._a[: self.rows]).sum(axis=2, dtype=np.uint64) + self._b[: self.bands]
            h ^= h >> np.uint64(30)
            h *= np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(27)
            h *= np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
        return h.view(np.int64)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two signatures (share of equal minima); 0 if either is empty."""
    if bool((a == EMPTY).all()) or bool((b == EMPTY).all()):
        return 0.0
    return float(np.count_nonzero(a == b)) / len(a)


def to_bytes(signature: np.ndarray) -> bytes:
    """A signature as stored (little-endian uint32)."""
    return signature.astype("<u4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two items of this Jaccard similarity share at least one band (the LSH S-curve)."""
    return 1.0 - (1.0 - similarity**rows) ** bands
