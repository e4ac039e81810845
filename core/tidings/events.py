"""Events in the container registry's wire format.

The registry (docker distribution and the GitLab registry) sends envelopes of the
form ``{"events": [event, ...]}`` with the media type :data:`EVENTS_MEDIA_TYPE`.
An event has an ``id``, a ``timestamp``, an ``action`` and the objects ``target``,
``request``, ``actor`` and ``source``; other top-level fields (GitLab's ``meta``,
tidings' own ``tidings_failure``) are kept as they are and round-trip.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias

import attrs

__all__ = ["EVENTS_MEDIA_TYPE", "Event", "JSONValue", "encode_envelope", "encode_json"]

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
"""The media type of the registry's event envelope."""

JSONValue: TypeAlias = Any
"""Any value that ``json.dumps`` encodes losslessly: dict, list, str, int, float, bool, None."""

_CORE_KEYS = ("id", "timestamp", "action", "target", "request", "actor", "source")
_MAPPING_KEYS = ("target", "request", "actor", "source")

# RFC 3339 with up to nine fractional digits (Go's RFC3339Nano) and Z or an offset.
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def _json_copy(value: object, path: str) -> JSONValue:
    """Return a deep copy of ``value`` after checking that it is plain JSON."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise TypeError(f"event field {path} must be a finite number, got {value!r}")
        return value
    if isinstance(value, Mapping):
        copy: dict[str, JSONValue] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"event field {path} has a non-string key {key!r}")
            copy[key] = _json_copy(item, f"{path}.{key}")
        return copy
    if isinstance(value, list | tuple):
        return [_json_copy(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise TypeError(
        f"event field {path} must hold JSON values only, got {type(value).__name__} {value!r}"
    )


def _convert_mapping(
    value: Mapping[str, JSONValue] | None, name: str
) -> dict[str, JSONValue] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"event field {name} must be a mapping, got {type(value).__name__}")
    copied: dict[str, JSONValue] = _json_copy(value, name)
    return copied


# Named converters: attrs and mypy need one function per field.
def _convert_target(value: Mapping[str, JSONValue] | None) -> dict[str, JSONValue] | None:
    return _convert_mapping(value, "target")


def _convert_request(value: Mapping[str, JSONValue] | None) -> dict[str, JSONValue] | None:
    return _convert_mapping(value, "request")


def _convert_actor(value: Mapping[str, JSONValue] | None) -> dict[str, JSONValue] | None:
    return _convert_mapping(value, "actor")


def _convert_source(value: Mapping[str, JSONValue] | None) -> dict[str, JSONValue] | None:
    return _convert_mapping(value, "source")


def _convert_extra(value: Mapping[str, JSONValue] | None) -> dict[str, JSONValue]:
    if not value:
        return {}
    clashes = [key for key in value if key in _CORE_KEYS]
    if clashes:
        raise TypeError(f"extra field {clashes[0]!r} is a core event field; pass it by name")
    copied: dict[str, JSONValue] = _json_copy(value, "extra")
    return copied


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def _check_timestamp(instance: Event, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, datetime.datetime) or value.tzinfo is None:
        raise TypeError(f"event field timestamp must be an aware datetime, got {value!r}")


def _to_utc(value: datetime.datetime) -> datetime.datetime:
    # Aware datetimes are kept in UTC; anything else is left for the validator to refuse.
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.UTC)
    return value


def _check_string(instance: Event, attribute: attrs.Attribute[Any], value: object) -> None:
    # attrs' instance_of gives a multi-part message; keep it one line naming the field.
    if not isinstance(value, str):
        raise TypeError(
            f"event field {attribute.name} must be a string, got {type(value).__name__} {value!r}"
        )


@attrs.frozen(kw_only=True)
class Event:
    """One thing that happened, in the registry's wire format.

    Build new events with keyword arguments (``id`` and ``timestamp`` are
    generated); read received ones with :meth:`from_dict`. Mapping fields are
    deep-copied and checked on construction: a value that JSON cannot encode is a
    ``TypeError`` naming the field, here and not later in a worker thread.
    ``extra`` holds any other top-level field of the wire format.
    """

    action: str = attrs.field(validator=_check_string)
    target: dict[str, JSONValue] | None = attrs.field(
        default=None, converter=_convert_target, hash=False
    )
    request: dict[str, JSONValue] | None = attrs.field(
        default=None, converter=_convert_request, hash=False
    )
    actor: dict[str, JSONValue] | None = attrs.field(
        default=None, converter=_convert_actor, hash=False
    )
    source: dict[str, JSONValue] | None = attrs.field(
        default=None, converter=_convert_source, hash=False
    )
    id: str = attrs.field(factory=_new_id, validator=_check_string)
    timestamp: datetime.datetime = attrs.field(
        factory=_now, converter=_to_utc, validator=_check_timestamp
    )
    extra: dict[str, JSONValue] = attrs.field(factory=dict, converter=_convert_extra, hash=False)
    # The timestamp exactly as received, so that a re-sent event is byte-identical.
    _timestamp_text: str | None = attrs.field(
        default=None, eq=False, repr=False, alias="_timestamp_text"
    )
    # Seconds since the epoch, for the delivery-latency histogram of every delivery.
    _epoch: float = attrs.field(init=False, eq=False, repr=False)

    @_epoch.default
    def _epoch_of_timestamp(self) -> float:
        # Runs before the validators: a bad timestamp is theirs to report.
        value = self.timestamp
        if isinstance(value, datetime.datetime) and value.tzinfo is not None:
            return value.timestamp()
        return 0.0

    @property
    def timestamp_text(self) -> str:
        """The timestamp as it goes on the wire.

        The text it was received with (the registry sends nanoseconds), or, for a
        new event, RFC 3339 UTC with microseconds: ``2026-01-02T03:04:05.123456Z``.
        """
        if self._timestamp_text is not None:
            return self._timestamp_text
        return self.timestamp.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    @property
    def media_type(self) -> str | None:
        """The target's ``mediaType``, or ``None``."""
        if self.target is None:
            return None
        value = self.target.get("mediaType")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, JSONValue]:
        """Return the event in the wire format, keys as the registry sends them.

        Only fields the event has are emitted; extra fields follow the core ones.
        The result shares no mutable state with the event.
        """
        copied: dict[str, JSONValue] = _json_copy(self.wire_view(), "event")
        return copied

    def wire_view(self) -> dict[str, JSONValue]:
        """Like :meth:`to_dict`, but the nested objects are the event's own.

        For encoders that only read it (no copy is made): never mutate the result.
        """
        result: dict[str, JSONValue] = {
            "id": self.id,
            "timestamp": self.timestamp_text,
            "action": self.action,
        }
        if self.target is not None:
            result["target"] = self.target
        if self.request is not None:
            result["request"] = self.request
        if self.actor is not None:
            result["actor"] = self.actor
        if self.source is not None:
            result["source"] = self.source
        if self.extra:
            result.update(self.extra)
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, JSONValue]) -> Event:
        """Read an event in the wire format.

        Raises ``ValueError`` naming the field when a required field (``id``,
        ``timestamp``, ``action``) is missing or malformed, or when ``target``,
        ``request``, ``actor`` or ``source`` is not an object.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"an event must be a JSON object, got {type(data).__name__}")
        for key in ("id", "timestamp", "action"):
            if key not in data:
                raise ValueError(f"event is missing the field {key!r}")
            if not isinstance(data[key], str):
                raise ValueError(
                    f"event field {key!r} must be a string, got {type(data[key]).__name__}"
                )
        for key in _MAPPING_KEYS:
            if key in data and not isinstance(data[key], Mapping):
                raise ValueError(
                    f"event field {key!r} must be an object, got {type(data[key]).__name__}"
                )
        text: str = data["timestamp"]
        try:
            timestamp = parse_timestamp(text)
        except ValueError as exc:
            raise ValueError(f"event field 'timestamp': {exc}") from None
        extra = {key: value for key, value in data.items() if key not in _CORE_KEYS}
        try:
            return cls(
                id=data["id"],
                timestamp=timestamp,
                action=data["action"],
                target=data.get("target"),
                request=data.get("request"),
                actor=data.get("actor"),
                source=data.get("source"),
                extra=extra,
                _timestamp_text=text,
            )
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def with_extra(self, **fields: JSONValue) -> Event:
        """Return a copy with top-level extra fields added (or removed, given ``None``)."""
        extra = dict(self.extra)
        for key, value in fields.items():
            if value is None:
                extra.pop(key, None)
            else:
                extra[key] = value
        return attrs.evolve(self, extra=extra)


def parse_timestamp(text: str) -> datetime.datetime:
    """Parse an RFC 3339 timestamp with up to nanosecond precision into aware UTC.

    Digits beyond microseconds are truncated (``datetime`` cannot hold them); keep
    the text to re-emit it unchanged.
    """
    match = _TIMESTAMP.match(text)
    if match is None:
        raise ValueError(
            f"expected an RFC 3339 timestamp such as 2026-01-02T03:04:05Z, got {text!r}"
        )
    date, clock, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    offset = "+00:00" if zone in ("Z", "z") else zone
    try:
        parsed = datetime.datetime.fromisoformat(f"{date}T{clock}.{micros}{offset}")
    except ValueError as exc:
        # Well-formed but impossible (month 13, hour 24): say which text was refused.
        raise ValueError(f"{text!r} is not a valid date and time: {exc}") from None
    return parsed.astimezone(datetime.UTC)


# Characters json.dumps(ensure_ascii=False) leaves raw that str.splitlines() and
# JavaScript treat as line breaks: escaped, so that a JSON line stays one line.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def encode_json(value: JSONValue) -> bytes:
    """Compact UTF-8 JSON, as every transport and the spool write it.

    Line-break characters other than ``\\n`` are escaped, so the result is always
    one line; a string holding a lone surrogate (JSON allows ``"\\ud800"``, UTF-8
    has no form for it) makes the whole value ASCII-escaped instead of failing.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Searching is far cheaper than translating, and these characters are rare.
    if "\u2028" in text or "\u2029" in text or "\x85" in text:
        text = text.translate(_LINE_BREAKS)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def encode_envelope(events: Iterable[Event]) -> bytes:
    """Encode events as the registry's envelope ``{"events": [...]}`` in UTF-8 JSON."""
    return encode_json({"events": [event.wire_view() for event in events]})
