"""The production compose file: valid for `docker-compose config`, every service's command is a real
`finmon` subcommand, every published port bound to 127.0.0.1, and .env.example is a complete settings file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click
import pytest
import yaml

from monitor.config import load_settings
from pipelines.cli import cli
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"


def _services() -> dict[str, dict[str, object]]:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_file_validates(tmp_path: Path) -> None:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("Debian's docker-compose is needed to validate the compose file: `make test` installs it")
    for name in ("docker-compose.yml", "Dockerfile", "feeds.example.yaml"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, tmp_path / name)
    shutil.copy(REPO / ".env.example", tmp_path / ".env")
    for profile in ("gpu", "cpu"):
        proc = subprocess.run(
            [tool, "--profile", profile, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr


def _resolve(group: click.Group, args: list[str], parent: click.Context | None = None) -> click.Command:
    """Parse `args` the way `finmon` would (choices, required options) without running anything."""
    ctx = group.make_context(group.name or "finmon", args, parent=parent)
    name, command, rest = group.resolve_command(ctx, [*ctx.protected_args, *ctx.args])
    assert command is not None, f"unknown subcommand {name!r}"
    if isinstance(command, click.Group):
        return _resolve(command, rest, ctx)
    command.make_context(name or "", rest, parent=ctx)
    return command


@pytest.mark.parametrize("service", [s for s, spec in _services().items() if "command" in spec])
def test_service_command_is_a_real_finmon_subcommand(service: str) -> None:
    command = [str(part) for part in _services()[service]["command"]]  # type: ignore[union-attr]
    # Paths mounted into the container exist in the repo under their example names.
    command = [str(REPO / "feeds.example.yaml") if part.startswith("/etc/finmon/") else part for part in command]
    try:
        _resolve(cli, command)
    except click.ClickException as exc:
        pytest.fail(f"`finmon {' '.join(command)}` is not a valid command: {exc.format_message()}")


def test_published_ports_bind_to_loopback() -> None:
    for name, spec in _services().items():
        for port in spec.get("ports", []):  # type: ignore[union-attr]
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_env_example_is_a_valid_settings_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.startswith("FINMON_") and "=" in line:
            key, value = line.split("=", 1)
            monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.kafka.partitions == 8
    assert settings.store_url.startswith("postgresql+psycopg://")
