"""Stories on the wire (issue #13): every settled item's story reaches `news.stories`, at least once.

- The aggregate stage publishes one `SettledStory` per item the story pass settles (keyed by story id), with
  the story id and novelty the store holds; joined to the item's news.scored record by id.
- A worker that stops after settling but before the broker acknowledged sends those stories again on its
  next start; once acknowledged, a restart sends nothing again. Publishing can be turned off.
- Scored records carry `story_id` and `novelty` when known; records without them still decode.
(The same on a real broker with a SIGKILLed worker: tests/test_aggregate_pipeline.py.)
"""

from __future__ import annotations

import json
import random
from collections import namedtuple
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from monitor.clock import ManualClock
from monitor.config import load_settings
from monitor.errors import RecordError
from monitor.records import SettledStory, decode_scored, decode_settled_story, encode
from monitor.stages.aggregate import AggregateProcessor
from monitor.store import Store
from monitor.store.schema import aggregate_items
from tests.test_story_windows import HOUR, marks_for, near_duplicate_feed, scored

Record = namedtuple("Record", "topic partition offset key value")
NOW = datetime(2025, 6, 4, tzinfo=UTC)


def records(items: list, idle: bool = True) -> list[Record]:
    """The items as news.scored records, then the source marks that follow them (idle: everything settles)."""
    out = [Record("scored", 0, i, None, encode(s)) for i, s in enumerate(items)]
    marks = [m for _, m in marks_for(items, idle)]
    return out + [Record("scored", 0, len(out) + i, None, encode(m)) for i, m in enumerate(marks)]


def stories_in(processor: AggregateProcessor, out: list) -> list[SettledStory]:
    return [decode_settled_story(m.value) for m in out if m.topic == processor.settings.kafka.topics.stories]


def stored_stories(store: Store) -> dict[str, tuple[str, int, bool | None]]:
    with store.engine.connect() as conn:
        return {r.item_id: (r.story_id, r.novelty, r.story_sent) for r in conn.execute(aggregate_items.select())}


def test_settled_stories_are_published_and_resent_until_acknowledged(store_url: str) -> None:
    items = near_duplicate_feed(random.Random(3))
    store = Store(store_url)
    store.create_schema()
    settings = load_settings(None, store_url=store_url)
    first = AggregateProcessor(settings, store, ManualClock(NOW))
    out = first.process(records(items))
    published = stories_in(first, out)
    assert sorted(s.id for s in published) == sorted(s.item.id for s in items)  # each once, all settled
    stored = stored_stories(store)
    assert {s.id: (s.story_id, s.novelty) for s in published} == {i: v[:2] for i, v in stored.items()}
    assert len({s.story_id for s in published}) < len(published)  # copies share a story
    by_story = {m.key: decode_settled_story(m.value).story_id for m in out if m.topic == "news.stories"}
    assert all(key.decode() == story for key, story in by_story.items())  # keyed by story id
    assert {v[2] for v in stored.values()} == {False}  # not acknowledged yet

    # the worker stops before the broker acknowledged: the next one sends them again, first thing
    second = AggregateProcessor(settings, store, ManualClock(NOW))
    again = stories_in(second, second.process([]))
    assert sorted((s.id, s.story_id, s.novelty) for s in again) == sorted(
        (s.id, s.story_id, s.novelty) for s in published)
    second.sent([])
    assert {v[2] for v in stored_stories(store).values()} == {True}
    third = AggregateProcessor(settings, store, ManualClock(NOW))
    assert stories_in(third, third.process([])) == []  # acknowledged: not sent again

    # join: a news.scored record and its settled story
    story = {s.id: s for s in published}
    joined = decode_scored(encode(items[0])).with_story(story[items[0].item.id])
    assert (joined.story_id, joined.novelty) == (story[items[0].item.id].story_id, story[items[0].item.id].novelty)
    assert decode_scored(encode(joined)) == joined
    with pytest.raises(ValueError, match="given to item"):
        decode_scored(encode(items[1])).with_story(story[items[0].item.id])
    store.dispose()


def test_stories_wait_for_stream_time_and_late_items_get_none(sqlite_url: str) -> None:
    items = near_duplicate_feed(random.Random(4))
    late = scored("late-one", "Acme recalls its widgets", HOUR, "ACME", offset=999)
    store = Store(sqlite_url)
    store.create_schema()
    processor = AggregateProcessor(load_settings(None, store_url=sqlite_url), store, ManualClock(NOW))
    late_record = Record("scored", 1, 0, None, encode(replace(late, late=True)))
    out = processor.process([*records(items, idle=False), late_record])
    published = {s.id for s in stories_in(processor, out)}
    stored = stored_stories(store)
    assert 0 < len(published) < len(items)  # only those behind stream time
    assert published == {i for i, (story, _, _) in stored.items() if story}
    assert stored["late-one"] == ("", None, None)  # in no window: no story, nothing to publish
    store.dispose()


def test_publishing_can_be_turned_off(sqlite_url: str) -> None:
    items = near_duplicate_feed(random.Random(5))
    store = Store(sqlite_url)
    store.create_schema()
    settings = load_settings(None, store_url=sqlite_url, stories={"publish": False})
    processor = AggregateProcessor(settings, store, ManualClock(NOW))
    assert stories_in(processor, processor.process(records(items))) == []
    stored = stored_stories(store)
    assert all(story and sent is None for story, _, sent in stored.values())  # settled, never to be sent
    store.dispose()


def test_story_fields_on_the_wire_and_older_records() -> None:
    item = scored("a1", "Acme wins a contract", HOUR, "ACME")
    assert decode_scored(encode(item)).story_id is None  # as classify publishes it: not settled yet
    wire = item.to_wire()
    for name in ("story_id", "novelty"):
        wire.pop(name)
    old = decode_scored(json.dumps(wire).encode())  # a record from before the story fields
    assert (old.story_id, old.novelty) == (None, None)
    settled = SettledStory("a1", "s" * 16, 100, HOUR, "wire", ("ACME",), NOW)
    assert decode_settled_story(encode(settled)) == settled
    with pytest.raises(RecordError, match="novelty"):
        decode_settled_story(encode(settled).replace(b'"novelty":100', b'"novelty":170'))
    with pytest.raises(RecordError) as exc:
        decode_settled_story(encode(item))
    assert exc.value.reason == "not_a_story"
