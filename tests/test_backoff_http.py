"""Retries end to end: Notifier.from_config with the ``http`` sink against the real
loopback ``receiver``, dead letters in a real ``file`` sink."""

from __future__ import annotations

import datetime
import email.utils
import itertools
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tidings import FAILURE_FIELD, Event, Notifier
from tidings.testing import Receiver, RecordedRequest, Reply

QUICK_RETRY = {"initial_interval": "10ms", "jitter": "none", "max_elapsed": "30s"}


def build(
    receiver: Receiver,
    *,
    retry: dict[str, Any] | None = None,
    dead_letters: Path | None = None,
    url: str | None = None,
    **options: Any,
) -> Notifier:
    endpoint: dict[str, Any] = {
        "name": "hooks",
        "sink": "http",
        "url": url or receiver.url,
        "retry": retry if retry is not None else dict(QUICK_RETRY),
        **options,
    }
    if dead_letters is not None:
        endpoint["dead_letter"] = {"sink": "file", "path": str(dead_letters)}
    return Notifier.from_config(
        {"notifier": {"close_at_exit": False}, "endpoints": [endpoint]}, environ={}
    )


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def tidings_threads() -> list[str]:
    return [
        thread.name
        for thread in threading.enumerate()
        if thread.name.startswith("tidings-queue-") and thread.is_alive()
    ]


def gaps(requests: list[RecordedRequest]) -> list[float]:
    return [
        later.received_at - earlier.received_at for earlier, later in itertools.pairwise(requests)
    ]


@pytest.fixture
def dead_letters(tmp_path: Path) -> Path:
    return tmp_path / "dead-letters.jsonl"


@pytest.fixture(autouse=True)
def _capture_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.DEBUG, logger="tidings"):
        yield


def test_two_failures_then_success_is_delivered_with_two_retries(
    receiver: Receiver, tidings_no_sleep: None
) -> None:
    receiver.script(Reply(503), Reply(503))
    event = Event(action="push", target={"repository": "library/app", "tag": "1.0"})
    with build(receiver) as notifier:
        notifier.publish(event)
        assert notifier.flush(10)
        metrics = notifier.metrics()["hooks"]
    assert (metrics.delivered, metrics.retries, metrics.errors) == (1, 2, 2)
    assert metrics.status_codes == {503: 2, 200: 1}
    assert metrics.attempts == {3: 1}
    assert (metrics.dead_lettered, metrics.lost) == (0, 0)
    assert len(receiver.requests) == 3
    assert [request.events[0]["id"] for request in receiver.requests] == [event.id] * 3
    # Every attempt carries the same idempotency key.
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 1


def test_max_retries_two_sends_three_requests_then_dead_letters_to_a_file(
    receiver: Receiver, dead_letters: Path, tidings_no_sleep: None
) -> None:
    receiver.default = Reply(503)
    event = Event(action="push")
    retry = {**QUICK_RETRY, "max_retries": 2}
    with build(receiver, retry=retry, dead_letters=dead_letters) as notifier:
        notifier.publish(event)
        assert notifier.flush(10)
        metrics = notifier.metrics()["hooks"]
    assert len(receiver.requests) == 3
    assert (metrics.dead_lettered, metrics.retries, metrics.errors) == (1, 2, 3)
    [line] = read_lines(dead_letters)
    assert line["id"] == event.id
    assert line["action"] == "push"
    info = line[FAILURE_FIELD]
    assert info["endpoint"] == "hooks"
    assert info["reason"] == "max retries"
    assert info["attempts"] == 3
    assert info["status"] == 503
    assert info["error"] == f"POST {receiver.url}: HTTP 503"
    first = datetime.datetime.fromisoformat(info["first_attempt"])
    last = datetime.datetime.fromisoformat(info["last_attempt"])
    assert info["first_attempt"].endswith("Z")
    assert info["last_attempt"].endswith("Z")
    assert first <= last
    assert Event.from_dict(line).id == event.id


def test_a_400_is_attempted_once(
    receiver: Receiver, dead_letters: Path, tidings_no_sleep: None
) -> None:
    receiver.script(Reply(400))
    with build(receiver, dead_letters=dead_letters) as notifier:
        notifier.publish(Event(action="push"))
        assert notifier.flush(10)
        metrics = notifier.metrics()["hooks"]
    assert len(receiver.requests) == 1
    assert (metrics.retries, metrics.errors, metrics.dead_lettered) == (0, 1, 1)
    info = read_lines(dead_letters)[0][FAILURE_FIELD]
    assert (info["reason"], info["attempts"], info["status"]) == ("permanent error", 1, 400)


def gap_before_the_one_retry(receiver: Receiver) -> float:
    """Publish one event that the scripted reply makes retry once; the wait between."""
    with build(receiver) as notifier:
        notifier.publish(Event(action="push"))
        assert notifier.flush(15)
        metrics = notifier.metrics()["hooks"]
    assert (metrics.delivered, metrics.retries) == (1, 1)
    [gap] = gaps(receiver.requests)
    return gap


def test_retry_after_seconds_delays_the_retry(receiver: Receiver) -> None:
    receiver.script(Reply(503, headers={"Retry-After": "2"}))
    # The policy alone would have waited 10 ms.
    assert gap_before_the_one_retry(receiver) >= 2.0


def test_retry_after_as_an_http_date_delays_the_retry(receiver: Receiver) -> None:
    def later(request: RecordedRequest) -> Reply:
        # HTTP dates have whole seconds: 4 s ahead is at least 3 s ahead.
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=4)
        return Reply(503, headers={"Retry-After": email.utils.format_datetime(when, usegmt=True)})

    receiver.script(later)
    assert gap_before_the_one_retry(receiver) >= 2.0


def test_garbage_retry_after_is_ignored(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # "²" is a digit to str.isdigit() and arrives as such (latin-1 header byte 0xB2).
    receiver.script(
        Reply(503, headers={"Retry-After": "soon"}),
        Reply(503, headers={"Retry-After": "²"}),
        Reply(503, headers={"Retry-After": "-5"}),
        Reply(429, headers={"Retry-After": "nan"}),
    )
    with build(receiver) as notifier:
        notifier.publish(Event(action="push"))
        # Each garbage header falls back to the policy's 10 ms wait.
        assert notifier.flush(10)
        metrics = notifier.metrics()["hooks"]
    assert (metrics.delivered, metrics.retries, metrics.errors) == (1, 4, 4)
    assert metrics.status_codes == {503: 3, 429: 1, 200: 1}
    # Every failure was an HTTP status, none a crash in the sink.
    assert not [record for record in caplog.records if record.exc_info]


def test_a_410_disables_the_endpoint(
    receiver: Receiver,
    dead_letters: Path,
    tidings_no_sleep: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.script(Reply(410))
    with build(receiver, dead_letters=dead_letters) as notifier:
        notifier.publish(Event(action="push"))
        assert notifier.flush(10)
        notifier.publish(Event(action="pull"), Event(action="delete"))
        assert notifier.flush(10)
        metrics = notifier.metrics()["hooks"]
    assert len(receiver.requests) == 1
    assert metrics.disabled
    assert (metrics.dead_lettered, metrics.delivered, metrics.errors) == (3, 0, 1)
    lines = read_lines(dead_letters)
    assert [line["action"] for line in lines] == ["push", "pull", "delete"]
    assert [line[FAILURE_FIELD]["reason"] for line in lines] == [
        "endpoint gone",
        "endpoint disabled",
        "endpoint disabled",
    ]
    assert lines[0][FAILURE_FIELD]["status"] == 410
    errors = [
        record.getMessage()
        for record in caplog.records
        if record.name == "tidings.backoff" and record.levelno == logging.ERROR
    ]
    assert errors == [
        f"endpoint 'hooks': the receiver says it is gone (POST {receiver.url}: HTTP 410); "
        "endpoint disabled, this and later events go to the dead-letter sink"
    ]


def test_secrets_stay_out_of_logs_and_dead_letters(
    receiver: Receiver,
    dead_letters: Path,
    tidings_no_sleep: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.default = Reply(503)
    url = f"http://robot:pa55word@127.0.0.1:{receiver.port}/hook?token=qu3rys3cret"
    retry = {**QUICK_RETRY, "max_retries": 1}
    with build(
        receiver,
        retry=retry,
        dead_letters=dead_letters,
        url=url,
        headers={"X-Api-Key": "h3ad3rs3cret"},
        signing_secret="whsec_c2lnbmluZ3NlY3JldHNpZ25pbmdzZWNyZXQ=",
    ) as notifier:
        notifier.publish(Event(action="push"))
        assert notifier.flush(10)
    headers = receiver.requests[0].headers
    assert headers["x-api-key"] == "h3ad3rs3cret"
    basic = headers["authorization"].removeprefix("Basic ")
    written = dead_letters.read_text()
    logged = "\n".join(
        record.getMessage()
        + (logging.Formatter().formatException(record.exc_info) if record.exc_info else "")
        for record in caplog.records
    )
    assert "HTTP 503" in logged
    for secret in (
        "pa55word",
        "qu3rys3cret",
        "h3ad3rs3cret",
        "c2lnbmluZ3NlY3JldHNpZ25pbmdzZWNyZXQ",
        basic,
    ):
        assert secret not in logged
        assert secret not in written


@pytest.mark.parametrize("with_dead_letters", [True, False], ids=["dead-letter", "no-dead-letter"])
def test_close_during_a_long_backoff_returns_at_once_and_accounts_for_the_event(
    receiver: Receiver, dead_letters: Path, with_dead_letters: bool
) -> None:
    receiver.default = Reply(503)
    retry = {"initial_interval": "30s", "jitter": "none", "max_elapsed": "5m"}
    notifier = build(
        receiver, retry=retry, dead_letters=dead_letters if with_dead_letters else None
    )
    event = Event(action="push")
    try:
        notifier.publish(event)
        assert receiver.wait_for(1, 10)
        # The worker is now in (or about to enter) its 30 s wait.
        deadline = time.monotonic() + 10
        while notifier.metrics()["hooks"].errors < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert notifier.metrics()["hooks"].errors == 1
    except BaseException:
        notifier.close(0)
        raise
    start = time.monotonic()
    report = notifier.close(timeout=1)
    elapsed = time.monotonic() - start
    assert elapsed < 0.5
    assert len(receiver.requests) == 1
    assert tidings_threads() == []
    hooks = report.endpoints["hooks"]
    metrics = notifier.metrics()["hooks"]
    assert metrics.pending == 0
    assert metrics.accepted == 1
    if with_dead_letters:
        assert (hooks.dead_lettered, hooks.lost) == (1, 0)
        [line] = read_lines(dead_letters)
        assert line["id"] == event.id
        info = line[FAILURE_FIELD]
        assert (info["reason"], info["attempts"], info["status"]) == ("shutdown", 1, 503)
    else:
        assert (hooks.dead_lettered, hooks.lost) == (0, 1)
    assert report.ok is with_dead_letters
