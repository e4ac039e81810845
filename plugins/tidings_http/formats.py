"""Request bodies: the registry envelope, or CloudEvents in JSON."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Sequence

import tidings

__all__ = ["FORMATS", "cloudevents_body", "envelope_body", "message_id"]

FORMATS = ("envelope", "cloudevents")

CLOUDEVENTS_MEDIA_TYPE = "application/cloudevents+json"
CLOUDEVENTS_BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"


def message_id(events: Sequence[tidings.Event]) -> str:
    """A stable idempotency key: the event id, or ``batch_`` + sha256 of the ids."""
    if len(events) == 1:
        return events[0].id
    digest = hashlib.sha256("\n".join(event.id for event in events).encode()).hexdigest()
    return f"batch_{digest}"


def envelope_body(events: Sequence[tidings.Event]) -> bytes:
    """The registry's envelope ``{"events": [...]}``."""
    return tidings.encode_envelope(events)


def _cloudevent(event: tidings.Event, *, source: str | None, type_prefix: str) -> dict[str, object]:
    event_source = source
    if event_source is None and event.source is not None:
        addr = event.source.get("addr")
        if isinstance(addr, str) and addr:
            event_source = addr
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": event_source or f"tidings://{socket.gethostname()}",
        "type": f"{type_prefix}.{event.action}",
        "time": event.timestamp_text,
        "datacontenttype": "application/json",
        "data": event.wire_view(),
    }


def cloudevents_body(
    events: Sequence[tidings.Event], *, source: str | None, type_prefix: str
) -> tuple[bytes, str]:
    """Structured mode for one event, batched mode for several: (body, content type)."""
    rendered = [_cloudevent(event, source=source, type_prefix=type_prefix) for event in events]
    if len(rendered) == 1:
        payload: object = rendered[0]
        media_type = CLOUDEVENTS_MEDIA_TYPE
    else:
        payload = rendered
        media_type = CLOUDEVENTS_BATCH_MEDIA_TYPE
    body = tidings.encode_json(payload)
    return body, media_type
