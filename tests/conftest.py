"""Shared fixtures: a real Tansu broker process, SQLite and PostgreSQL stores, per-test settings.

Every test gets its own topics and consumer groups on the one session broker, so tests never see each
other's records. PostgreSQL tests use a fresh database each, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from monitor.config import Settings, load_settings
from monitor.kafka.broker import EmbeddedBroker

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
PG_ADMIN_URL = os.environ.get("FINMON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as embedded:
        yield embedded


def _pg_database() -> Iterator[str]:
    name = f"finmon_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is required for store tests ({exc}); start it "
            "(make services) or set FINMON_TEST_PG"
        )
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'finmon.db'}"
    else:
        yield from _pg_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'finmon.db'}"


def make_settings(bootstrap: str, store_url: str, partitions: int = 4, **extra: object) -> Settings:
    """Settings with topics and groups unique to one test."""
    tag = uuid.uuid4().hex[:8]
    topics = {name: f"t{tag}.{name}" for name in ("raw", "scored", "windows", "stories", "alerts", "deadletter")}
    kafka = {"topics": topics, "partitions": partitions, "group_prefix": f"g{tag}", "connect_retry_s": 30}
    return load_settings(None, bootstrap=bootstrap, store_url=store_url, kafka=kafka, **extra)


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a `finmon` child process use exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINMON_")}
    env.update(
        FINMON_BOOTSTRAP=settings.bootstrap,
        FINMON_STORE_URL=settings.store_url,
        FINMON_KAFKA__GROUP_PREFIX=settings.kafka.group_prefix,
        FINMON_KAFKA__PARTITIONS=str(settings.kafka.partitions),
        PYTHONUNBUFFERED="1",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    for name, value in settings.kafka.topics.model_dump().items():
        env[f"FINMON_KAFKA__TOPICS__{name.upper()}"] = value
    return env
