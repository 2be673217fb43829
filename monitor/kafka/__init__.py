"""Kafka I/O: the embedded broker, configured clients, and the stage loop (consume, process, produce, commit)."""

from monitor.kafka.broker import EmbeddedBroker, find_tansu, free_port
from monitor.kafka.client import ensure_topics, group_name, highwaters, make_consumer, make_producer
from monitor.kafka.stage import OutMessage, Processor, StageRunner, dead_letter_message

__all__ = [
    "EmbeddedBroker",
    "OutMessage",
    "Processor",
    "StageRunner",
    "dead_letter_message",
    "ensure_topics",
    "find_tansu",
    "free_port",
    "group_name",
    "highwaters",
    "make_consumer",
    "make_producer",
]
