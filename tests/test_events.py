"""Events: construction, the registry's wire format, validation and isolation."""

from __future__ import annotations

import copy
import datetime
import json
import re
import uuid
from typing import Any

import attrs
import pytest

import tidings
from tidings import EVENTS_MEDIA_TYPE, Event, encode_envelope

# A pull event as docker distribution sends it (its notifications documentation),
# nanosecond timestamp with an offset included.
REGISTRY_PULL: dict[str, Any] = {
    "id": "320678d8-ca14-430f-8bb6-4ca139cd83f7",
    "timestamp": "2016-03-09T14:44:26.402973972-08:00",
    "action": "pull",
    "target": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "size": 708,
        "digest": "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
        "length": 708,
        "repository": "hello-world",
        "url": "http://192.168.100.227:5000/v2/hello-world/manifests/"
        "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf",
        "tag": "latest",
    },
    "request": {
        "id": "6df24a34-0959-4923-81ca-14f09767db19",
        "addr": "192.168.64.11:42961",
        "host": "192.168.100.227:5000",
        "method": "GET",
        "useragent": "curl/7.38.0",
    },
    "actor": {},
    "source": {
        "addr": "xtal.local:5000",
        "instanceID": "a53db899-3b4b-4a62-a067-8dd013beaca4",
    },
}

# A push as the GitLab registry sends it: a Z timestamp with nanoseconds, an image
# index with references, a named actor, and GitLab's top-level "meta".
GITLAB_PUSH: dict[str, Any] = {
    "id": "b1a1a5b3-4b50-4c38-9fbc-1e3c0f9e8c11",
    "timestamp": "2024-05-17T08:01:02.123456789Z",
    "action": "push",
    "target": {
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": "sha256:0f8e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "size": 1024,
        "length": 1024,
        "repository": "group/project/app",
        "url": "https://registry.example/v2/group/project/app/manifests/"
        "sha256:0f8e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "tag": "v1.2.3",
        "references": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:aaaa",
                "size": 512,
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:bbbb",
                "size": 498,
            },
        ],
    },
    "request": {
        "id": "01HXYZ",
        "addr": "10.0.0.7:51234",
        "host": "registry.example",
        "method": "PUT",
        "useragent": "docker/26.1.1 go/go1.21.9",
    },
    "actor": {"name": "root"},
    "source": {"addr": "registry-0:5000", "instanceID": "9c1d2e3f-0000-4000-8000-000000000001"},
    "meta": {"project_id": 42, "project_path": "group/project", "namespace_id": 7},
}

MICROS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


# -- new events -------------------------------------------------------------------


def test_a_new_event_gets_a_uuid_and_an_aware_utc_timestamp() -> None:
    before = datetime.datetime.now(datetime.UTC)
    event = Event(action="push")
    after = datetime.datetime.now(datetime.UTC)

    assert str(uuid.UUID(event.id)) == event.id
    assert event.timestamp.tzinfo is not None
    assert event.timestamp.utcoffset() == datetime.timedelta(0)
    assert before <= event.timestamp <= after
    assert MICROS_Z.fullmatch(event.timestamp_text)
    assert event.timestamp_text == event.timestamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert Event(action="push").id != event.id


def test_a_new_event_renders_microseconds_and_z() -> None:
    when = datetime.datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=datetime.UTC)
    event = Event(action="delete", id="fixed", timestamp=when)

    assert event.to_dict() == {
        "id": "fixed",
        "timestamp": "2026-01-02T03:04:05.120000Z",
        "action": "delete",
    }


def test_a_timestamp_with_an_offset_is_kept_in_utc() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    event = Event(action="push", timestamp=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=plus_two))

    assert event.timestamp == datetime.datetime(2026, 1, 2, 1, 4, 5, tzinfo=datetime.UTC)
    assert event.timestamp.tzinfo is datetime.UTC
    assert event.timestamp_text == "2026-01-02T01:04:05.000000Z"


def test_to_dict_of_a_new_event_has_only_the_fields_it_was_given() -> None:
    event = Event(action="push", target={"repository": "app"}, actor={"name": "ci"})

    assert list(event.to_dict()) == ["id", "timestamp", "action", "target", "actor"]
    assert event.media_type is None
    assert Event(action="push", target={"mediaType": "x/y"}).media_type == "x/y"


# -- the wire format -----------------------------------------------------------------


@pytest.mark.parametrize("wire", [REGISTRY_PULL, GITLAB_PUSH], ids=["distribution", "gitlab"])
def test_from_dict_to_dict_round_trips_key_for_key(wire: dict[str, Any]) -> None:
    original = copy.deepcopy(wire)

    result = Event.from_dict(wire).to_dict()

    assert result == original
    assert list(result) == list(original)
    for key in ("target", "request", "actor", "source"):
        assert list(result[key]) == list(original[key])
    assert wire == original  # the input was not touched


def test_a_nanosecond_timestamp_is_read_to_utc_and_re_emitted_unchanged() -> None:
    event = Event.from_dict(REGISTRY_PULL)

    assert event.timestamp == datetime.datetime(2016, 3, 9, 22, 44, 26, 402973, tzinfo=datetime.UTC)
    assert event.timestamp_text == "2016-03-09T14:44:26.402973972-08:00"
    assert event.to_dict()["timestamp"] == "2016-03-09T14:44:26.402973972-08:00"


def test_a_z_timestamp_without_fraction_round_trips() -> None:
    wire = {"id": "e1", "timestamp": "2016-03-09T22:44:26Z", "action": "mount"}

    event = Event.from_dict(wire)

    assert event.timestamp == datetime.datetime(2016, 3, 9, 22, 44, 26, tzinfo=datetime.UTC)
    assert event.to_dict() == wire


def test_the_fields_of_a_registry_event_are_readable() -> None:
    event = Event.from_dict(GITLAB_PUSH)

    assert event.id == "b1a1a5b3-4b50-4c38-9fbc-1e3c0f9e8c11"
    assert event.action == "push"
    assert event.media_type == "application/vnd.oci.image.index.v1+json"
    assert event.target is not None
    assert event.target["references"][1]["digest"] == "sha256:bbbb"
    assert event.request is not None
    assert event.request["useragent"] == "docker/26.1.1 go/go1.21.9"
    assert event.actor == {"name": "root"}
    assert event.source == {
        "addr": "registry-0:5000",
        "instanceID": "9c1d2e3f-0000-4000-8000-000000000001",
    }
    assert event.extra == {
        "meta": {"project_id": 42, "project_path": "group/project", "namespace_id": 7}
    }


def test_to_dict_never_invents_keys_the_input_lacked() -> None:
    wire = {"id": "e2", "timestamp": "2020-01-01T00:00:00.5+01:00", "action": "pull"}

    assert Event.from_dict(wire).to_dict() == wire
    with_target_only = {**wire, "target": {"repository": "app"}}
    assert Event.from_dict(with_target_only).to_dict() == with_target_only


def test_encode_envelope_parses_as_the_registry_envelope() -> None:
    events = [Event.from_dict(REGISTRY_PULL), Event.from_dict(GITLAB_PUSH)]

    body = encode_envelope(events)

    assert isinstance(body, bytes)
    assert json.loads(body) == {"events": [REGISTRY_PULL, GITLAB_PUSH]}
    assert json.loads(encode_envelope([])) == {"events": []}


def test_encode_envelope_writes_utf8_text() -> None:
    event = Event(action="push", id="u", target={"repository": "café/straße"})

    body = encode_envelope([event])

    assert "café/straße".encode() in body
    assert json.loads(body.decode("utf-8"))["events"][0]["target"] == {"repository": "café/straße"}


def test_the_events_media_type() -> None:
    assert EVENTS_MEDIA_TYPE == "application/vnd.docker.distribution.events.v1+json"
    assert tidings.EVENTS_MEDIA_TYPE is EVENTS_MEDIA_TYPE


# -- malformed input -----------------------------------------------------------------

VALID = {"id": "e3", "timestamp": "2016-03-09T22:44:26Z", "action": "push"}


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (
            {"timestamp": "2016-03-09T22:44:26Z", "action": "push"},
            "event is missing the field 'id'",
        ),
        ({"id": "e3", "action": "push"}, "event is missing the field 'timestamp'"),
        ({"id": "e3", "timestamp": "2016-03-09T22:44:26Z"}, "event is missing the field 'action'"),
        ({**VALID, "id": 17}, "event field 'id' must be a string, got int"),
        ({**VALID, "action": None}, "event field 'action' must be a string, got NoneType"),
        (
            {**VALID, "timestamp": 1457563466},
            "event field 'timestamp' must be a string, got int",
        ),
        (
            {**VALID, "timestamp": "yesterday"},
            "event field 'timestamp': expected an RFC 3339 timestamp such as "
            "2026-01-02T03:04:05Z, got 'yesterday'",
        ),
        (
            {**VALID, "timestamp": "2016-03-09T22:44:26"},
            "event field 'timestamp': expected an RFC 3339 timestamp such as "
            "2026-01-02T03:04:05Z, got '2016-03-09T22:44:26'",
        ),
        (
            {**VALID, "timestamp": "2016-03-09T22:44:26.1234567890Z"},
            "event field 'timestamp': expected an RFC 3339 timestamp such as "
            "2026-01-02T03:04:05Z, got '2016-03-09T22:44:26.1234567890Z'",
        ),
        (
            {**VALID, "timestamp": "2016-13-09T22:44:26Z"},
            "event field 'timestamp': '2016-13-09T22:44:26Z' is not a valid date and time: "
            "month must be in 1..12",
        ),
        ({**VALID, "target": ["app"]}, "event field 'target' must be an object, got list"),
        ({**VALID, "request": "GET"}, "event field 'request' must be an object, got str"),
        ({**VALID, "actor": None}, "event field 'actor' must be an object, got NoneType"),
        ({**VALID, "source": 5}, "event field 'source' must be an object, got int"),
        (
            {**VALID, "target": {"size": float("nan")}},
            "event field target.size must be a finite number, got nan",
        ),
    ],
)
def test_from_dict_refuses_malformed_input_naming_the_field(
    wire: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Event.from_dict(wire)


def test_from_dict_refuses_a_non_object() -> None:
    with pytest.raises(ValueError, match=r"^an event must be a JSON object, got list$"):
        Event.from_dict([VALID])  # type: ignore[arg-type]


# -- values JSON cannot encode ---------------------------------------------------------


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"target": {"tags": {"a"}}},
            "event field target.tags must hold JSON values only, got set {'a'}",
        ),
        (
            {"request": {"client": Opaque()}},
            "event field request.client must hold JSON values only, got Opaque <Opaque>",
        ),
        (
            {"target": {"references": [{"size": 1}, {"size": float("nan")}]}},
            "event field target.references[1].size must be a finite number, got nan",
        ),
        (
            {"source": {"load": float("inf")}},
            "event field source.load must be a finite number, got inf",
        ),
        ({"actor": {1: "root"}}, "event field actor has a non-string key 1"),
        (
            {"extra": {"meta": {"when": datetime.date(2026, 1, 2)}}},
            "event field extra.meta.when must hold JSON values only, "
            "got date datetime.date(2026, 1, 2)",
        ),
        ({"target": ["app"]}, "event field target must be a mapping, got list"),
        ({"extra": {"id": "x"}}, "extra field 'id' is a core event field; pass it by name"),
        ({"action": 3}, "event field action must be a string, got int 3"),
        ({"id": None}, "event field id must be a string, got NoneType None"),
    ],
)
def test_construction_refuses_non_json_values_naming_the_path(
    fields: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"action": "push", **fields}
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        Event(**arguments)


@pytest.mark.parametrize(
    ("timestamp", "shown"),
    [
        (datetime.datetime(2026, 1, 2, 3, 4, 5), "datetime.datetime(2026, 1, 2, 3, 4, 5)"),
        (datetime.datetime(1, 1, 1), "datetime.datetime(1, 1, 1, 0, 0)"),
        ("2026-01-02T03:04:05Z", "'2026-01-02T03:04:05Z'"),
        (None, "None"),
    ],
    ids=["naive", "naive year 1", "text", "none"],
)
def test_construction_refuses_a_timestamp_that_is_not_an_aware_datetime(
    timestamp: object, shown: str
) -> None:
    with pytest.raises(
        TypeError,
        match=re.escape(f"event field timestamp must be an aware datetime, got {shown}") + "$",
    ):
        Event(action="push", timestamp=timestamp)  # type: ignore[arg-type]


# -- isolation ---------------------------------------------------------------------------


def test_mutating_the_input_after_construction_does_not_change_the_event() -> None:
    wire = copy.deepcopy(GITLAB_PUSH)
    event = Event.from_dict(wire)

    wire["target"]["tag"] = "hijacked"
    wire["target"]["references"].append({"digest": "sha256:cccc"})
    wire["meta"]["project_id"] = 0
    wire["actor"]["name"] = "mallory"

    assert event.to_dict() == GITLAB_PUSH


def test_mutating_a_constructor_argument_does_not_change_the_event() -> None:
    target = {"repository": "app", "references": [{"digest": "sha256:aaaa"}]}
    event = Event(action="push", target=target)

    target["repository"] = "other"
    target["references"][0]["digest"] = "sha256:ffff"  # type: ignore[index]

    assert event.target == {"repository": "app", "references": [{"digest": "sha256:aaaa"}]}


def test_mutating_the_to_dict_result_does_not_change_the_event() -> None:
    event = Event.from_dict(GITLAB_PUSH)

    first = event.to_dict()
    first["target"]["references"][0]["size"] = 1
    first["meta"]["project_path"] = "elsewhere"
    first["request"].clear()
    first["action"] = "delete"

    assert event.to_dict() == GITLAB_PUSH


# -- extra fields ------------------------------------------------------------------------


def test_with_extra_adds_and_removes_top_level_fields() -> None:
    event = Event.from_dict(REGISTRY_PULL)

    marked = event.with_extra(tidings_failure={"reason": "deadline", "attempts": 3})

    assert marked.to_dict() == {
        **REGISTRY_PULL,
        "tidings_failure": {"reason": "deadline", "attempts": 3},
    }
    assert event.to_dict() == REGISTRY_PULL  # the original is unchanged
    assert marked.id == event.id
    assert marked.timestamp_text == "2016-03-09T14:44:26.402973972-08:00"
    assert marked.with_extra(tidings_failure=None).to_dict() == REGISTRY_PULL
    assert marked.with_extra(not_there=None).to_dict() == marked.to_dict()


def test_with_extra_refuses_a_core_field_and_non_json_values() -> None:
    event = Event(action="push")

    with pytest.raises(
        TypeError, match=r"^extra field 'action' is a core event field; pass it by name$"
    ):
        event.with_extra(action="pull")
    with pytest.raises(
        TypeError, match=r"^event field extra.note must hold JSON values only, got bytes b'x'$"
    ):
        event.with_extra(note=b"x")


def test_a_gitlab_meta_can_be_replaced_with_with_extra() -> None:
    event = Event.from_dict(GITLAB_PUSH).with_extra(meta={"project_id": 1})

    assert event.to_dict()["meta"] == {"project_id": 1}
    assert list(event.to_dict())[-1] == "meta"


# -- equality and hashing ------------------------------------------------------------------


def test_events_read_from_the_same_wire_are_equal_and_hash_alike() -> None:
    first = Event.from_dict(GITLAB_PUSH)
    second = Event.from_dict(copy.deepcopy(GITLAB_PUSH))

    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


def test_events_that_differ_in_any_field_are_not_equal() -> None:
    base = Event.from_dict(GITLAB_PUSH)
    changed_target = Event.from_dict(
        {**GITLAB_PUSH, "target": {**GITLAB_PUSH["target"], "tag": "v2"}}
    )
    changed_meta = base.with_extra(meta={"project_id": 43})
    changed_action = Event.from_dict({**GITLAB_PUSH, "action": "delete"})

    for other in (changed_target, changed_meta, changed_action):
        assert base != other
    assert len({base, changed_target, changed_meta, changed_action}) == 4
    assert Event(action="push") != Event(action="push")  # each gets its own id


def test_events_are_frozen() -> None:
    event = Event(action="push")

    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.action = "pull"  # type: ignore[misc]
    assert event.action == "push"
