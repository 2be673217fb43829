"""`finmon topics create|list`: the one-shot topic initialiser of a deployment (partitions and retention come
from the settings), and a quick look at what exists."""

from __future__ import annotations

import json

import click
from kafka import KafkaAdminClient

from monitor.config import Settings
from monitor.kafka.client import ensure_topics, with_retry


@click.group("topics")
def command() -> None:
    """Create or list the pipeline's Kafka topics."""


@command.command("create")
@click.pass_obj
def create(settings: Settings) -> None:
    """Create every missing pipeline topic (idempotent; safe to run on each deploy)."""
    created = ensure_topics(settings)
    names = settings.kafka.topics.model_dump().values()
    click.echo(json.dumps({"created": created, "existing": sorted(set(names) - set(created)),
                           "partitions": settings.kafka.partitions}))


@command.command("list")
@click.pass_obj
def list_topics(settings: Settings) -> None:
    """Topics on the broker with their partition counts."""
    admin = with_retry("admin", lambda: KafkaAdminClient(bootstrap_servers=settings.bootstrap), settings)
    try:
        described = admin.describe_topics(sorted(admin.list_topics()))
    finally:
        admin.close()
    click.echo(json.dumps({t["name"]: len(t["partitions"]) for t in described}, sort_keys=True))
