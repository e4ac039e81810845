"""The ``http`` transport against real loopback servers (``tidings.testing.Receiver``).

Status classification, Retry-After, timeouts, deadline, abort on close, broken
connections, redirects, Standard Webhooks signatures, webhook-id, the envelope and
CloudEvents formats, keep-alive, User-Agent, redaction of secrets and the option
errors. TLS lives in test_http_tls.py.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured
from cloudevents.core.formats.json import JSONFormat
from standardwebhooks.webhooks import WebhookVerificationError

import tidings
from tidings.testing import Receiver, RecordedRequest, Reply
from tidings_http import HttpSink

WAIT = 10.0
"""The bound of every wait for something that should happen at once."""

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""A Standard Webhooks secret (base64 of 24 bytes)."""

HEADER_SECRET = "hdr-value-4f1c9a7e"
"""A header value that must never show in repr, errors or logs."""

MakeSink = Callable[..., HttpSink]


@pytest.fixture
def statuses() -> list[int]:
    """The statuses the sink records through its context."""
    return []


@pytest.fixture
def make_sink(statuses: list[int]) -> Iterator[MakeSink]:
    """Build sinks through the real factory; every one is closed after the test."""
    made: list[HttpSink] = []

    def make(url: str, **options: Any) -> HttpSink:
        context = tidings.SinkContext("hooks", record_status=statuses.append)
        sink = HttpSink.from_options(context, url=url, **options)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def event(action: str = "push", **fields: Any) -> tidings.Event:
    return tidings.Event(
        action=action,
        target={"repository": "library/app", "tag": "1.0", "mediaType": "application/json"},
        **fields,
    )


def delivery_error(sink: HttpSink, events: list[tidings.Event]) -> tidings.DeliveryError:
    """The error ``sink.write(events)`` raises (the test fails if it does not)."""
    with pytest.raises(tidings.DeliveryError) as caught:
        sink.write(events)
    return caught.value


def closed_port() -> int:
    """A loopback port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- status classification ---------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered_and_recorded(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int], status: int
) -> None:
    receiver.script(Reply(status))
    sink = make_sink(receiver.url)
    first = event()
    sink.write([first])
    assert statuses == [status]
    assert [e["id"] for e in receiver.events] == [first.id]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, tidings.PermanentDeliveryError),
        (401, tidings.PermanentDeliveryError),
        (404, tidings.PermanentDeliveryError),
        (408, tidings.DeliveryError),
        (410, tidings.EndpointGoneError),
        (413, tidings.PermanentDeliveryError),
        (425, tidings.DeliveryError),
        (429, tidings.DeliveryError),
        (500, tidings.DeliveryError),
        (501, tidings.PermanentDeliveryError),
        (502, tidings.DeliveryError),
        (503, tidings.DeliveryError),
        (504, tidings.DeliveryError),
        (505, tidings.PermanentDeliveryError),
        (599, tidings.DeliveryError),
        (600, tidings.PermanentDeliveryError),
        (999, tidings.PermanentDeliveryError),
    ],
)
def test_error_statuses_are_classified(
    receiver: Receiver,
    make_sink: MakeSink,
    statuses: list[int],
    status: int,
    error_type: type[tidings.DeliveryError],
) -> None:
    receiver.script(Reply(status))
    sink = make_sink(receiver.url)
    error = delivery_error(sink, [event()])
    assert type(error) is error_type
    assert str(error) == f"POST {receiver.url}: HTTP {status}"
    assert error.status == status
    assert statuses == [status]


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
def test_3xx_is_permanent_when_redirects_are_not_followed(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int], status: int
) -> None:
    receiver.script(Reply(status, headers={"Location": "/moved?token=abc"}))
    sink = make_sink(receiver.url)
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.PermanentDeliveryError
    assert str(error) == (
        f"POST {receiver.url}: HTTP {status} to http://127.0.0.1:{receiver.port}/moved?token=*** "
        "(redirects are not followed unless follow_redirects = true)"
    )
    assert error.status == status
    assert statuses == [status]
    assert len(receiver.requests) == 1


def test_an_interim_1xx_answer_alone_is_no_answer(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int]
) -> None:
    # HTTP/1.1 clients treat 1xx as interim and wait for the final response, so
    # a server that only sends 199 has not answered: the attempt times out.
    receiver.script(Reply(199))
    sink = make_sink(receiver.url, timeout="200ms")
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.DeliveryError
    assert str(error) == f"POST {receiver.url}: timed out after 0.2s waiting for the response"
    assert error.status is None
    assert statuses == []


def test_retry_after_seconds(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.script(Reply(503, headers={"Retry-After": "7"}))
    error = delivery_error(make_sink(receiver.url), [event()])
    assert error.retry_after == 7.0
    assert error.status == 503


def test_retry_after_http_date(receiver: Receiver, make_sink: MakeSink) -> None:
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=120)
    receiver.script(Reply(429, headers={"Retry-After": email.utils.format_datetime(when, True)}))
    error = delivery_error(make_sink(receiver.url), [event()])
    assert error.retry_after is not None
    # The date has whole seconds and the clock moved on a little.
    assert 100.0 <= error.retry_after <= 120.0


def test_retry_after_date_in_the_past_is_zero(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.script(Reply(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    error = delivery_error(make_sink(receiver.url), [event()])
    assert error.retry_after == 0.0


def test_retry_after_garbage_and_permanent_statuses_carry_none(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    receiver.script(
        Reply(503, headers={"Retry-After": "soon"}),
        Reply(400, headers={"Retry-After": "30"}),
    )
    sink = make_sink(receiver.url)
    assert delivery_error(sink, [event()]).retry_after is None
    permanent = delivery_error(sink, [event()])
    assert type(permanent) is tidings.PermanentDeliveryError
    assert permanent.retry_after is None


# -- timeouts, deadline, abort, broken connections ----------------------------------


def test_a_server_slower_than_the_timeout(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.script(Reply(200, delay=5.0))
    sink = make_sink(receiver.url, timeout="250ms")
    started = time.monotonic()
    error = delivery_error(sink, [event()])
    assert time.monotonic() - started < 4.0
    assert type(error) is tidings.DeliveryError
    assert str(error) == f"POST {receiver.url}: timed out after 0.25s waiting for the response"


def test_deadline_bounds_the_whole_request(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.script(Reply(200, delay=5.0))
    # The per-operation timeout alone would wait 5 s.
    sink = make_sink(receiver.url, timeout="5s", deadline="300ms")
    started = time.monotonic()
    error = delivery_error(sink, [event()])
    assert time.monotonic() - started < 4.0
    assert type(error) is tidings.DeliveryError
    assert str(error) == f"POST {receiver.url}: no complete answer within the deadline of 0.3s"
    # The sink stays usable: the next write gets a new connection and its answer.
    second = event()
    sink.write([second])
    assert receiver.requests[-1].json()["events"][0]["id"] == second.id


def test_deadline_longer_than_the_answer_changes_nothing(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int]
) -> None:
    receiver.script(Reply(200, delay=0.05))
    sink = make_sink(receiver.url, deadline="5s")
    sink.write([event()])
    sink.write([event()])
    assert statuses == [200, 200]
    assert receiver.connections == 1


def test_close_aborts_a_request_the_server_never_answers(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    receiver.script(Reply(action="hang"))
    sink = make_sink(receiver.url, timeout="30s")
    outcome: list[BaseException] = []
    finished = threading.Event()

    def send() -> None:
        try:
            sink.write([event()])
        except BaseException as exc:
            outcome.append(exc)
        finished.set()

    writer = threading.Thread(target=send, daemon=True)
    writer.start()
    assert receiver.wait_for(1, WAIT)
    closed_at = time.monotonic()
    sink.close()
    assert finished.wait(WAIT)
    assert time.monotonic() - closed_at < 0.5
    writer.join(WAIT)
    [error] = outcome
    assert type(error) is tidings.DeliveryError
    assert str(error) == f"POST {receiver.url}: aborted, the sink is closing"


def test_write_after_close(receiver: Receiver, make_sink: MakeSink) -> None:
    sink = make_sink(receiver.url)
    sink.close()
    sink.close()  # idempotent
    error = delivery_error(sink, [event()])
    assert str(error) == f"POST {receiver.url}: the sink is closed"
    assert receiver.requests == []


def test_connection_refused(make_sink: MakeSink, statuses: list[int]) -> None:
    port = closed_port()
    sink = make_sink(f"http://127.0.0.1:{port}/hook")
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.DeliveryError
    assert str(error) == (
        f"POST http://127.0.0.1:{port}/hook: cannot connect: [Errno 111] Connection refused"
    )
    assert error.status is None
    assert statuses == []


def test_connection_dropped_without_an_answer(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int]
) -> None:
    receiver.script(Reply(action="drop"))
    error = delivery_error(make_sink(receiver.url), [event()])
    assert type(error) is tidings.DeliveryError
    assert str(error) == (
        f"POST {receiver.url}: connection broken: Server disconnected without sending a response."
    )
    assert statuses == []


def test_connection_dropped_mid_response(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int]
) -> None:
    # The head says 200 but the body is cut off: the attempt fails (at least
    # once; the receiver deduplicates by webhook-id).
    receiver.script(Reply(action="truncate"))
    sink = make_sink(receiver.url)
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.DeliveryError
    assert str(error) == (
        f"POST {receiver.url}: connection broken: peer closed connection without sending "
        "complete message body (received 7 bytes, expected 100)"
    )
    assert statuses == []
    sink.write([event()])
    assert receiver.connections == 2


def test_a_large_response_body_is_not_kept(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int]
) -> None:
    receiver.script(Reply(200, body=b"x" * (1024 * 1024)), Reply(200, body=b"ok"))
    sink = make_sink(receiver.url)
    sink.write([event()])
    sink.write([event()])
    assert statuses == [200, 200]
    # A body beyond 64 KiB is not read to the end, so its connection is closed.
    assert receiver.connections == 2


# -- redirects ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_followed_redirects_repeat_the_post(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int], status: int
) -> None:
    receiver.script(Reply(status, headers={"Location": "/final"}), Reply(200))
    sink = make_sink(receiver.url, follow_redirects=True, headers={"X-Token": HEADER_SECRET})
    sink.write([event()])
    first, second = receiver.requests
    assert (second.method, second.path) == ("POST", "/final")
    assert second.body == first.body
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.headers["x-token"] == HEADER_SECRET  # same origin
    assert statuses == [200]


def test_followed_redirect_to_a_failing_target(
    receiver: Receiver, make_sink: MakeSink, statuses: list[int]
) -> None:
    receiver.script(Reply(307, headers={"Location": "/final"}), Reply(503))
    sink = make_sink(receiver.url, follow_redirects=True)
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.DeliveryError
    assert str(error) == f"POST {receiver.url} (redirected): HTTP 503"
    assert statuses == [503]


def test_redirect_to_another_origin_drops_the_configured_headers(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    with Receiver() as other:
        receiver.script(Reply(308, headers={"Location": other.url}))
        sink = make_sink(
            receiver.url,
            follow_redirects=True,
            headers={"X-Token": HEADER_SECRET},
            signing_secret=SECRET,
        )
        sink.write([event()])
        [moved] = other.requests
        assert "x-token" not in moved.headers
        other.verify(moved, SECRET)
    assert receiver.requests[0].headers["x-token"] == HEADER_SECRET


def test_303_is_not_followed(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.script(Reply(303, headers={"Location": "/result"}))
    sink = make_sink(receiver.url, follow_redirects=True)
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.PermanentDeliveryError
    assert str(error) == (
        f"POST {receiver.url}: HTTP 303 to http://127.0.0.1:{receiver.port}/result "
        "(303 See Other is not followed: it would turn the POST into a GET)"
    )
    assert len(receiver.requests) == 1


def test_redirect_loop(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.default = Reply(307, headers={"Location": "/hook"})
    sink = make_sink(receiver.url, follow_redirects=True)
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.PermanentDeliveryError
    assert str(error) == f"POST {receiver.url}: more than 5 redirects"
    assert len(receiver.requests) == 6


def test_redirect_without_a_usable_location(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.script(Reply(307), Reply(308, headers={"Location": "ftp://example.com/x?k=v"}))
    sink = make_sink(receiver.url, follow_redirects=True)
    error = delivery_error(sink, [event()])
    assert type(error) is tidings.PermanentDeliveryError
    assert str(error) == (f"POST {receiver.url}: HTTP 307 (not followed: no Location header)")
    assert str(delivery_error(sink, [event()])) == (
        f"POST {receiver.url}: HTTP 308 to ftp://example.com/x?k=*** "
        "(not followed: the Location is not an http(s) URL)"
    )
    assert len(receiver.requests) == 2


# -- signatures and webhook-id ------------------------------------------------------


def test_signature_verifies_with_standardwebhooks(receiver: Receiver, make_sink: MakeSink) -> None:
    sink = make_sink(receiver.url, signing_secret=SECRET)
    first = event()
    sink.write([first])
    [request] = receiver.requests
    assert request.headers["webhook-id"] == first.id
    assert re.fullmatch(r"[0-9]+", request.headers["webhook-timestamp"])
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert re.fullmatch(r"v1,[A-Za-z0-9+/]{43}=", request.headers["webhook-signature"])
    assert receiver.verify(request, SECRET) == {"events": [first.to_dict()]}


def test_signature_with_gzip_covers_the_uncompressed_body(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    sink = make_sink(receiver.url, signing_secret=SECRET, compression="gzip")
    first = event()
    sink.write([first])
    [request] = receiver.requests
    assert request.headers["content-encoding"] == "gzip"
    assert request.raw_body[:2] == b"\x1f\x8b"
    assert request.raw_body != request.body
    assert receiver.verify(request, SECRET) == {"events": [first.to_dict()]}


def test_signature_with_the_wrong_secret_does_not_verify(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    make_sink(receiver.url, signing_secret=SECRET).write([event()])
    other_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    with pytest.raises(WebhookVerificationError):
        receiver.verify(receiver.requests[0], other_secret)


def test_signature_does_not_verify_for_a_changed_body(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    make_sink(receiver.url, signing_secret=SECRET).write([event()])
    request = receiver.requests[0]
    tampered = RecordedRequest(
        method=request.method,
        path=request.path,
        headers=request.headers,
        body=request.body.replace(b"push", b"pull"),
        raw_body=request.raw_body,
        received_at=request.received_at,
    )
    with pytest.raises(WebhookVerificationError):
        receiver.verify(tampered, SECRET)


def test_unsigned_requests_carry_only_webhook_id(receiver: Receiver, make_sink: MakeSink) -> None:
    first = event()
    make_sink(receiver.url).write([first])
    headers = receiver.requests[0].headers
    assert headers["webhook-id"] == first.id
    assert "webhook-timestamp" not in headers
    assert "webhook-signature" not in headers


def test_webhook_id_is_stable_across_retries_through_the_notifier(
    receiver: Receiver, tidings_no_sleep: None
) -> None:
    receiver.script(Reply(503), Reply(500))
    config = {
        "endpoints": [
            {
                "name": "hooks",
                "sink": "http",
                "url": receiver.url,
                "signing_secret": SECRET,
                "retry": {"max_retries": 3},
            }
        ]
    }
    published = event()
    with tidings.Notifier.from_config(config) as notifier:
        notifier.publish(published)
        assert notifier.flush(WAIT)
        metrics = notifier.metrics()["hooks"]
    assert metrics.delivered == 1
    assert metrics.retries == 2
    assert dict(metrics.status_codes) == {503: 1, 500: 1, 200: 1}
    assert [request.headers["webhook-id"] for request in receiver.requests] == [published.id] * 3
    for request in receiver.requests:
        receiver.verify(request, SECRET)


def test_batch_webhook_id(receiver: Receiver, make_sink: MakeSink) -> None:
    batch = [event(), event("pull"), event("delete")]
    sink = make_sink(receiver.url)
    receiver.script(Reply(503))
    delivery_error(sink, batch)
    sink.write(batch)
    expected = "batch_" + hashlib.sha256("\n".join(e.id for e in batch).encode()).hexdigest()
    assert [request.headers["webhook-id"] for request in receiver.requests] == [expected] * 2
    # Another order is another batch.
    sink.write(batch[::-1])
    assert receiver.requests[-1].headers["webhook-id"] != expected
    assert re.fullmatch(r"batch_[0-9a-f]{64}", receiver.requests[-1].headers["webhook-id"])


# -- formats -----------------------------------------------------------------------


def test_envelope_single_and_batch(receiver: Receiver, make_sink: MakeSink) -> None:
    sink = make_sink(receiver.url)
    single = event()
    batch = [event(), event("pull"), event("delete")]
    sink.write([single])
    sink.write(batch)
    first, second = receiver.requests
    for request in (first, second):
        assert request.method == "POST"
        assert request.path == "/hook"
        assert request.headers["content-type"] == tidings.EVENTS_MEDIA_TYPE
        assert "content-encoding" not in request.headers
    assert first.json() == {"events": [single.to_dict()]}
    assert second.json() == {"events": [e.to_dict() for e in batch]}


def test_envelope_keeps_registry_timestamps_and_extra_fields(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    wire = {
        "id": "7f3a1c2e-0000-4000-8000-000000000001",
        "timestamp": "2026-01-02T03:04:05.123456789Z",
        "action": "push",
        "target": {"repository": "library/app"},
        "tidings_failure": {"endpoint": "other", "attempts": 3},
    }
    make_sink(receiver.url).write([tidings.Event.from_dict(wire)])
    assert receiver.requests[0].json() == {"events": [wire]}


def test_media_type_overrides_the_envelope_content_type(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    make_sink(receiver.url, media_type="application/json").write([event()])
    assert receiver.requests[0].headers["content-type"] == "application/json"


def test_gzip_compression(receiver: Receiver, make_sink: MakeSink) -> None:
    batch = [event() for _ in range(20)]
    make_sink(receiver.url, compression="gzip").write(batch)
    [request] = receiver.requests
    assert request.headers["content-encoding"] == "gzip"
    assert int(request.headers["content-length"]) == len(request.raw_body)
    assert len(request.raw_body) < len(request.body)
    assert request.json() == {"events": [e.to_dict() for e in batch]}


def read_cloudevent(body: bytes, content_type: str) -> Any:
    """Parse one structured-mode CloudEvent with the official SDK."""
    message = HTTPMessage(headers={"content-type": content_type}, body=body)
    return from_structured(message, JSONFormat())


def test_cloudevents_single_event_in_structured_mode(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    sent = event(source={"addr": "registry-1:5000", "instanceID": "abc"})
    make_sink(receiver.url, format="cloudevents").write([sent])
    [request] = receiver.requests
    content_type = request.headers["content-type"]
    assert content_type == "application/cloudevents+json"
    parsed = read_cloudevent(request.body, content_type)
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == sent.id
    assert parsed.get_source() == "registry-1:5000"
    assert parsed.get_type() == "io.tidings.push"
    assert parsed.get_time() == sent.timestamp
    assert parsed.get_datacontenttype() == "application/json"
    assert parsed.get_data() == sent.to_dict()
    assert request.headers["webhook-id"] == sent.id


def test_cloudevents_batch_mode(receiver: Receiver, make_sink: MakeSink) -> None:
    batch = [event(), event("pull"), event("delete")]
    make_sink(
        receiver.url, format="cloudevents", source="/registry/eu", type_prefix="com.example"
    ).write(batch)
    [request] = receiver.requests
    assert request.headers["content-type"] == "application/cloudevents-batch+json"
    items = request.json()
    assert isinstance(items, list)
    parsed = [
        read_cloudevent(json.dumps(item).encode(), "application/cloudevents+json") for item in items
    ]
    assert [p.get_id() for p in parsed] == [e.id for e in batch]
    assert [p.get_type() for p in parsed] == [
        "com.example.push",
        "com.example.pull",
        "com.example.delete",
    ]
    assert {p.get_source() for p in parsed} == {"/registry/eu"}
    assert [p.get_data() for p in parsed] == [e.to_dict() for e in batch]


def test_cloudevents_source_falls_back_to_the_host_name(
    receiver: Receiver, make_sink: MakeSink
) -> None:
    wire = {
        "id": "7f3a1c2e-0000-4000-8000-000000000002",
        "timestamp": "2026-01-02T03:04:05.123456789Z",
        "action": "delete",
    }
    make_sink(receiver.url, format="cloudevents", compression="gzip").write(
        [tidings.Event.from_dict(wire)]
    )
    [request] = receiver.requests
    parsed = read_cloudevent(request.body, request.headers["content-type"])
    assert parsed.get_source() == f"tidings://{socket.gethostname()}"
    assert parsed.get_time() == datetime.datetime(2026, 1, 2, 3, 4, 5, 123456, datetime.UTC)
    assert request.json()["time"] == "2026-01-02T03:04:05.123456789Z"
    assert parsed.get_data() == wire


def test_empty_batch_sends_nothing(receiver: Receiver, make_sink: MakeSink) -> None:
    make_sink(receiver.url).write([])
    assert receiver.requests == []


# -- connection and headers --------------------------------------------------------


def test_keep_alive_reuses_one_connection(receiver: Receiver, make_sink: MakeSink) -> None:
    sink = make_sink(receiver.url)
    for _ in range(5):
        sink.write([event()])
    assert len(receiver.requests) == 5
    assert receiver.connections == 1
    assert len({request.client_port for request in receiver.requests}) == 1


def test_keep_alive_survives_error_statuses(receiver: Receiver, make_sink: MakeSink) -> None:
    receiver.script(Reply(503, body=b"busy"), Reply(400, body=b"bad"))
    sink = make_sink(receiver.url)
    delivery_error(sink, [event()])
    delivery_error(sink, [event()])
    sink.write([event()])
    assert receiver.connections == 1


def test_user_agent(receiver: Receiver, make_sink: MakeSink) -> None:
    make_sink(receiver.url).write([event()])
    user_agents = [v for k, v in receiver.requests[0].header_items if k.lower() == "user-agent"]
    assert user_agents == [f"tidings/{tidings.__version__}"]


def test_configured_headers_single_and_list_values(receiver: Receiver, make_sink: MakeSink) -> None:
    sink = make_sink(
        receiver.url,
        headers={
            "Authorization": "Bearer " + HEADER_SECRET,
            "X-Tag": ["blue", "green"],
            "User-Agent": "registry-notifier/2",
        },
    )
    sink.write([event()])
    items = receiver.requests[0].header_items
    assert ("Authorization", "Bearer " + HEADER_SECRET) in items
    assert [v for k, v in items if k == "X-Tag"] == ["blue", "green"]
    assert [v for k, v in items if k.lower() == "user-agent"] == ["registry-notifier/2"]


def test_timeout_is_applied_to_every_phase(make_sink: MakeSink) -> None:
    sink = make_sink("http://127.0.0.1:9/hook", timeout="1m30s")
    timeout = sink.client.timeout
    assert (timeout.connect, timeout.read, timeout.write, timeout.pool) == (90.0,) * 4
    default = make_sink("http://127.0.0.1:9/hook").client.timeout
    assert (default.connect, default.read, default.write, default.pool) == (5.0,) * 4


# -- secrets -----------------------------------------------------------------------


def test_header_values_are_not_in_repr_or_errors(receiver: Receiver, make_sink: MakeSink) -> None:
    sink = make_sink(
        receiver.url,
        headers={"Authorization": "Bearer " + HEADER_SECRET, "X-Keys": [HEADER_SECRET, "k2"]},
        signing_secret=SECRET,
        timeout="200ms",
    )
    assert repr(sink) == (
        f"HttpSink('{receiver.url}', headers={{'Authorization': '***', 'X-Keys': '***'}}, "
        "format='envelope', signed)"
    )
    assert str(sink) == repr(sink)
    receiver.script(Reply(500), Reply(200, delay=3.0), Reply(action="drop"))
    messages = [str(delivery_error(sink, [event()])) for _ in range(3)]
    assert messages == [
        f"POST {receiver.url}: HTTP 500",
        f"POST {receiver.url}: timed out after 0.2s waiting for the response",
        f"POST {receiver.url}: connection broken: Server disconnected without sending a response.",
    ]
    for text in [repr(sink), *messages]:
        assert HEADER_SECRET not in text
        assert SECRET not in text


def test_url_credentials_and_query_are_redacted(receiver: Receiver, make_sink: MakeSink) -> None:
    url = f"http://user:pa55word@127.0.0.1:{receiver.port}/hook?token=tok-3c1d9e&region=eu"
    shown = f"http://127.0.0.1:{receiver.port}/hook?token=***&region=***"
    sink = make_sink(url)
    receiver.script(Reply(404))
    error = delivery_error(sink, [event()])
    assert str(error) == f"POST {shown}: HTTP 404"
    assert repr(sink) == f"HttpSink('{shown}', headers={{}}, format='envelope')"
    # The request itself carries them.
    [request] = receiver.requests
    assert request.path == "/hook?token=tok-3c1d9e&region=eu"
    assert request.headers["authorization"] == "Basic dXNlcjpwYTU1d29yZA=="
    port = closed_port()
    refused = make_sink(f"http://user:pa55word@127.0.0.1:{port}/hook?token=tok-3c1d9e")
    assert str(delivery_error(refused, [event()])) == (
        f"POST http://127.0.0.1:{port}/hook?token=***: cannot connect: "
        "[Errno 111] Connection refused"
    )


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (  # Slack: the last segment is the secret
            "/services/T0AB12CD3/B0ABC1DEF2/aB3dE5fG7hJ9kL1mN3pQ5rS7",
            "/services/T0AB12CD3/B0ABC1DEF2/***",
        ),
        (  # Discord: a numeric id, then the token
            "/api/webhooks/123456789012345678/abcDEF_ghi-JKL123mnoPQR456stuVWX789yz",
            "/api/webhooks/123456789012345678/***",
        ),
        ("/registry/events-v2", "/registry/events-v2"),  # nothing token-like
    ],
    ids=["slack", "discord", "plain"],
)
def test_token_like_path_segments_are_redacted(
    receiver: Receiver,
    make_sink: MakeSink,
    caplog: pytest.LogCaptureFixture,
    path: str,
    shown: str,
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    base = f"http://127.0.0.1:{receiver.port}"
    sink = make_sink(base + path)
    receiver.script(Reply(500))
    error = delivery_error(sink, [event()])
    assert str(error) == f"POST {base}{shown}: HTTP 500"
    assert repr(sink) == f"HttpSink('{base}{shown}', headers={{}}, format='envelope')"
    assert f"HTTP Request: POST {base}{shown} " in caplog.text
    [request] = receiver.requests
    assert request.path == path, "the request itself carries the whole path"
    if shown != path:
        assert path.rsplit("/", 1)[1] not in caplog.text


def test_httpx_request_log_shows_the_url_redacted(
    receiver: Receiver, make_sink: MakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    url = f"http://user:pa55word@127.0.0.1:{receiver.port}/hook?token=tok-3c1d9e"
    make_sink(url).write([event()])
    # Another httpx user in the same process is left alone.
    with httpx.Client() as client:
        client.get(f"{receiver.url}?page=2")
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines == [
        f'HTTP Request: POST http://127.0.0.1:{receiver.port}/hook?token=*** "HTTP/1.1 200 OK"',
        f'HTTP Request: GET {receiver.url}?page=2 "HTTP/1.1 200 OK"',
    ]
    assert "tok-3c1d9e" not in caplog.text
    assert "pa55word" not in caplog.text


# -- injection ---------------------------------------------------------------------


def test_an_injected_transport_is_used(receiver: Receiver) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    statuses: list[int] = []
    sink = HttpSink(
        "http://hooks.invalid/hook",
        transport=httpx.MockTransport(answer),
        context=tidings.SinkContext("hooks", record_status=statuses.append),
    )
    sink.write([event()])
    sink.close()
    [request] = seen
    assert request.headers["user-agent"] == f"tidings/{tidings.__version__}"
    assert statuses == [202]


def test_an_injected_client_is_used_and_left_open(receiver: Receiver) -> None:
    with httpx.Client() as client:
        sink = HttpSink(receiver.url, client=client)
        sink.write([event()])
        sink.close()
        assert not client.is_closed
        client.get(receiver.url)
    assert [request.method for request in receiver.requests] == ["POST", "GET"]


def test_deadline_needs_the_sinks_own_transport() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    with pytest.raises(
        ValueError, match=r"^deadline needs the sink's own transport, not an injected one$"
    ):
        HttpSink("http://hooks.invalid/", deadline=1.0, transport=transport)


# -- options -----------------------------------------------------------------------


def from_options(**options: Any) -> HttpSink:
    return HttpSink.from_options(tidings.SinkContext("hooks"), **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"url": "ftp://user:pw@example.com/x?token=t"},
            'endpoint "hooks": url must be an http:// or https:// URL with a host, '
            'got "ftp://example.com/x?token=***"',
        ),
        (
            {"url": "localhost:8080/hook"},
            'endpoint "hooks": url must be an http:// or https:// URL with a host, '
            'got "localhost:8080/hook" (no scheme)',
        ),
        (
            {"url": "http:///hook"},
            'endpoint "hooks": url must be an http:// or https:// URL with a host, '
            'got "http:///hook"',
        ),
        ({"url": 8080}, 'endpoint "hooks": url must be a string, got int'),
        (
            {"url": "http://example.com", "format": "xml"},
            'endpoint "hooks": format must be one of "envelope", "cloudevents", got "xml"',
        ),
        (
            {"url": "http://example.com", "compression": "br"},
            'endpoint "hooks": compression must be "gzip" or absent, got "br"',
        ),
        (
            {"url": "http://example.com", "timeout": "5"},
            'endpoint "hooks": timeout must be a duration such as "250ms", "2s" or "1m30s", '
            'got "5" (a unit is required: "5s" or "5ms")',
        ),
        (
            {"url": "http://example.com", "timeout": "0s"},
            'endpoint "hooks": timeout must be greater than 0, got "0s"',
        ),
        (
            {"url": "http://example.com", "timeout": -1},
            'endpoint "hooks": timeout must be a finite duration >= 0, got -1',
        ),
        (
            {"url": "http://example.com", "deadline": 0},
            'endpoint "hooks": deadline must be greater than 0, got 0',
        ),
        (
            {"url": "http://example.com", "signing_secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
            'endpoint "hooks": signing_secret must be a Standard Webhooks secret '
            '"whsec_<base64>"; it does not start with "whsec_"',
        ),
        (
            {"url": "http://example.com", "signing_secret": "whsec_not base64!"},
            'endpoint "hooks": signing_secret must be a Standard Webhooks secret '
            '"whsec_<base64>"; what follows "whsec_" is not base64',
        ),
        (
            {"url": "http://example.com", "signing_secret": "whsec_c2hvcnQ="},
            'endpoint "hooks": signing_secret must hold a key of at least 16 bytes, got 5',
        ),
        (
            {"url": "http://example.com", "signing_secret": 12},
            'endpoint "hooks": signing_secret must be a string "whsec_<base64>", got int',
        ),
        (
            {"url": "http://example.com", "verify": "/no/such/ca.pem"},
            'endpoint "hooks": verify: no CA bundle at "/no/such/ca.pem" '
            "(no such file or directory)",
        ),
        (
            {"url": "http://example.com", "verify": "yes"},
            'endpoint "hooks": verify: no CA bundle at "yes" (no such file or directory)',
        ),
        (
            {"url": "http://example.com", "verify": 1},
            'endpoint "hooks": verify must be true, false or the path of a CA bundle, got 1',
        ),
        (
            {"url": "http://example.com", "follow_redirects": "yes"},
            'endpoint "hooks": follow_redirects must be true or false, got "yes"',
        ),
        (
            {"url": "http://example.com", "format": "cloudevents", "media_type": "text/plain"},
            'endpoint "hooks": media_type applies to format "envelope" only '
            "(CloudEvents have their own media types)",
        ),
        (
            {"url": "http://example.com", "media_type": ""},
            'endpoint "hooks": media_type must be a non-empty string, got ""',
        ),
        (
            {"url": "http://example.com", "type_prefix": ""},
            'endpoint "hooks": type_prefix must be a non-empty string, got ""',
        ),
        (
            {"url": "http://example.com", "source": 5},
            'endpoint "hooks": source must be a non-empty string, got 5',
        ),
        (
            {"url": "http://example.com", "headers": ["X-Token: " + HEADER_SECRET]},
            'endpoint "hooks": headers must be a table of header names to strings or '
            "lists of strings, got list",
        ),
        (
            {"url": "http://example.com", "headers": {"X-Token": 5}},
            'endpoint "hooks": headers.X-Token must be a string or a list of strings, got int',
        ),
        (
            {"url": "http://example.com", "headers": {"X-Token": HEADER_SECRET + "\r\nX-Evil: 1"}},
            'endpoint "hooks": headers.X-Token must be printable ASCII without line breaks '
            "(the value is not shown: it may be a secret)",
        ),
        (
            {"url": "http://example.com", "headers": {"Bad Name": "v"}},
            'endpoint "hooks": headers: "Bad Name" is not a valid header name',
        ),
        (
            {"url": "http://example.com", "headers": {"Content-Type": "text/plain"}},
            'endpoint "hooks": headers.Content-Type cannot be configured: use media_type',
        ),
        (
            {"url": "http://example.com", "headers": {"webhook-signature": "v1,x"}},
            'endpoint "hooks": headers.webhook-signature cannot be configured: use signing_secret',
        ),
    ],
)
def test_option_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(tidings.ConfigError) as caught:
        from_options(**options)
    assert str(caught.value) == message
    assert HEADER_SECRET not in str(caught.value)


def test_option_errors_through_the_notifier_config() -> None:
    config = {"endpoints": [{"name": "hooks", "sink": "http", "url": "ftp://example.com/x"}]}
    with pytest.raises(tidings.ConfigError) as caught:
        tidings.Notifier.from_config(config)
    assert str(caught.value) == (
        'endpoint "hooks": url must be an http:// or https:// URL with a host, '
        'got "ftp://example.com/x"'
    )


def test_defaults(receiver: Receiver) -> None:
    sink = from_options(url=receiver.url)
    try:
        assert sink.timeout == 5.0
        assert sink.deadline is None
        assert sink.follow_redirects is False
        assert sink.format == "envelope"
        assert sink.media_type == tidings.EVENTS_MEDIA_TYPE
        assert sink.compression is None
        assert sink.type_prefix == "io.tidings"
        assert sink.source is None
    finally:
        sink.close()
