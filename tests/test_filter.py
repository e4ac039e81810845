"""FilterSink: the ignore lists (each works alone, distribution#2916) and a predicate."""

from __future__ import annotations

import tidings
from tidings.testing import CaptureSink

MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def _event(action: str, media_type: str | None = None, repository: str = "app") -> tidings.Event:
    target: dict[str, str] = {"repository": repository}
    if media_type is not None:
        target["mediaType"] = media_type
    return tidings.Event(action=action, target=target)


def test_ignore_actions_alone_filters_by_action(capture_sink: CaptureSink) -> None:
    stats = tidings.EndpointStats("hooks")
    sink = tidings.FilterSink(capture_sink, ignore_actions=["pull"], stats=stats)
    push, pull, delete = _event("push", MANIFEST), _event("pull", MANIFEST), _event("delete")

    sink.write([push, pull, delete])

    assert capture_sink.batches == [[push, delete]]
    assert stats.snapshot().filtered == 1
    assert not sink.is_passthrough


def test_ignore_media_types_alone_filters_by_media_type(capture_sink: CaptureSink) -> None:
    stats = tidings.EndpointStats("hooks")
    sink = tidings.FilterSink(capture_sink, ignore_media_types=[LAYER], stats=stats)
    manifest, layer, untyped = _event("push", MANIFEST), _event("push", LAYER), _event("pull")

    sink.write([manifest, layer, untyped])

    # An event without a target media type is never ignored by the media type list.
    assert capture_sink.batches == [[manifest, untyped]]
    assert stats.snapshot().filtered == 1


def test_both_lists_ignore_either_match(capture_sink: CaptureSink) -> None:
    stats = tidings.EndpointStats("hooks")
    sink = tidings.FilterSink(
        capture_sink, ignore_actions=["pull"], ignore_media_types=[LAYER], stats=stats
    )
    kept = _event("push", MANIFEST)
    events = [_event("pull", MANIFEST), kept, _event("push", LAYER), _event("pull", LAYER)]

    sink.write(events)

    assert capture_sink.batches == [[kept]]
    assert stats.snapshot().filtered == 3


def test_predicate_keeps_the_events_it_returns_true_for(capture_sink: CaptureSink) -> None:
    stats = tidings.EndpointStats("hooks")
    sink = tidings.FilterSink(
        capture_sink,
        predicate=lambda event: (event.target or {}).get("repository") == "app",
        stats=stats,
    )
    mine, theirs = _event("push", repository="app"), _event("push", repository="other")

    sink.write([theirs, mine, theirs])

    assert capture_sink.batches == [[mine]]
    assert stats.snapshot().filtered == 2
    assert sink.wants(mine)
    assert not sink.wants(theirs)


def test_predicate_combines_with_the_ignore_lists(capture_sink: CaptureSink) -> None:
    sink = tidings.FilterSink(
        capture_sink,
        ignore_actions=["delete"],
        predicate=lambda event: (event.target or {}).get("repository") != "secret",
    )
    kept = _event("push", repository="app")

    sink.write([kept, _event("delete", repository="app"), _event("push", repository="secret")])

    assert capture_sink.batches == [[kept]]
    assert sink.stats.snapshot().filtered == 2


def test_filtered_counts_add_up_over_many_batches(capture_sink: CaptureSink) -> None:
    stats = tidings.EndpointStats("hooks")
    sink = tidings.FilterSink(capture_sink, ignore_actions=["pull"], stats=stats)
    actions = ["push", "pull", "pull", "delete", "pull"] * 20

    for start in range(0, len(actions), 7):
        sink.write([_event(action) for action in actions[start : start + 7]])

    assert stats.snapshot().filtered == actions.count("pull")
    assert [event.action for event in capture_sink.events] == [
        action for action in actions if action != "pull"
    ]


def test_a_batch_with_nothing_left_is_not_written(capture_sink: CaptureSink) -> None:
    stats = tidings.EndpointStats("hooks")
    sink = tidings.FilterSink(capture_sink, ignore_actions=["pull"], stats=stats)

    sink.write([_event("pull"), _event("pull")])

    assert capture_sink.attempts == 0
    assert capture_sink.batches == []
    assert stats.snapshot().filtered == 2


def test_a_filter_that_ignores_nothing_passes_the_batch_through(
    capture_sink: CaptureSink,
) -> None:
    sink = tidings.FilterSink(capture_sink)
    batch = [_event("pull"), _event("push", LAYER)]

    sink.write(batch)

    assert sink.is_passthrough
    assert capture_sink.batches == [batch]
    assert sink.stats.snapshot().filtered == 0


def test_close_closes_the_wrapped_sink(capture_sink: CaptureSink) -> None:
    sink = tidings.FilterSink(capture_sink, ignore_actions=["pull"])

    sink.close()

    assert capture_sink.closed
    assert sink.sink is capture_sink
