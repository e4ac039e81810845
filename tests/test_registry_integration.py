"""Compatibility with the real container registry (docker distribution 2.8).

These tests run Debian's ``docker-registry`` (docker distribution 2.8.2) and
``skopeo``, installed by ``.ci/install-registry``; without them every test here
fails and says how to install them. Everything runs on 127.0.0.1 with ports
from the OS, in ``tmp_path``, and is stopped by the tests.

One registry run (a module fixture) gives its notifications two endpoints: a
``tidings listen`` subprocess (``--out`` file) and a :class:`tidings.testing.Receiver`
in the test process. skopeo pushes an OCI image the test builds itself (one
gzip layer, a config, an OCI manifest), inspects it, pulls it back and deletes
it. What that proves:

- the registry's real push, pull and delete events, from both endpoints, parse
  with :meth:`tidings.Event.from_dict` and come back from :meth:`~tidings.Event.to_dict`
  key for key and in the same key order, including the registry's timestamp
  text (nanoseconds, Go's RFC3339Nano, here with a +05:30 offset because the
  registry runs with a local time zone), ``actor: {}`` and the manifest's
  ``references``; re-encoded the way the registry encodes them they are the
  same bytes;
- the envelope and its media type header are :data:`tidings.EVENTS_MEDIA_TYPE`;
- the registry's own ``config.yml`` loads in tidings unchanged
  (``Notifier.from_file`` and ``tidings check``) with the same endpoints and URLs;
- tidings, configured by that same file, delivers the captured events to the
  same endpoints as the same JSON with the same configured headers (a drop-in);
- ``tidings send`` delivers a real captured envelope as the same JSON object.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import tidings
from tidings.registry import RegistryConfigWarning
from tidings.testing import Receiver, RecordedRequest

INSTALL_HINT = "run .ci/install-registry as root (apt-get install docker-registry skopeo)"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
BLOB_MEDIA_TYPE = "application/octet-stream"  # what the registry reports for blobs
REPOSITORY = "demo/app"
TAG = "v1"
TOKEN = "Bearer registry-token"
HOPS = ("first", "second")  # one header configured with two values
# The registry stamps events in its local time zone; run it in one with an offset.
ZONE_OFFSET = datetime.timedelta(hours=5, minutes=30)
WAIT = 20.0  # seconds: the bound of every wait for a process or an event


# -- tools ---------------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else "")
    if not path:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}", pytrace=False)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(done: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.05)
    return done()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} was not written)"
    return "\n".join(text.splitlines()[-lines:])


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _fixed_zone(offset: datetime.timedelta, abbreviation: str) -> bytes:
    """A TZif (version 1) file for one fixed UTC offset, so the test needs no tzdata."""
    designations = abbreviation.encode() + b"\0"
    # isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
    header = b"TZif" + bytes(16) + struct.pack(">6l", 0, 0, 0, 0, 1, len(designations))
    return header + struct.pack(">lBB", int(offset.total_seconds()), 0, 0) + designations


# -- the image --------------------------------------------------------------------------


@attrs.frozen
class Blob:
    digest: str
    size: int


@attrs.frozen
class Image:
    layout: Path
    layer: Blob
    config: Blob
    manifest: Blob
    layer_bytes: bytes


def _build_image(layout: Path) -> Image:
    """An OCI image layout with one gzip layer holding one small file."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def store(data: bytes) -> Blob:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return Blob(f"sha256:{digest}", len(data))

    archive = io.BytesIO()
    content = b"hello from tidings\n"
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    layer_tar = archive.getvalue()
    layer_bytes = gzip.compress(layer_tar, mtime=0)
    layer = store(layer_bytes)
    config = store(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [f"sha256:{hashlib.sha256(layer_tar).hexdigest()}"],
                },
            }
        ).encode()
    )
    manifest = store(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size}],
            }
        ).encode()
    )
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest.digest,
                "size": manifest.size,
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return Image(layout, layer, config, manifest, layer_bytes)


# -- the registry run ---------------------------------------------------------------------

REGISTRY_CONFIG = """\
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
notifications:
  events:
    includereferences: true
  endpoints:
    - name: listen
      url: {listen_url}
      headers:
        Authorization: [{token}]
      timeout: 2s
      threshold: 5
      backoff: 100ms
    - name: receiver
      url: {receiver_url}
      headers:
        Authorization: [{token}]
        X-Registry-Hop: [{hops}]
      timeout: 2s
      threshold: 5
      backoff: 100ms
      ignore:
        mediatypes: []
        actions: []
"""


@attrs.frozen
class RegistryRun:
    config: Path
    image: Image
    pulled: Path
    receiver: Receiver
    listen_out: Path
    registry_log: Path
    requests: list[RecordedRequest]  # what the registry sent the receiver
    listen_bodies: list[dict[str, Any]]  # what it sent `tidings listen`

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for request in self.requests for event in request.events]

    @property
    def listen_events(self) -> list[dict[str, Any]]:
        return [event for body in self.listen_bodies for event in body["events"]]


def _read_bodies(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # A line still being written has no newline yet: leave it for the next look.
    lines = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def _start_listen(tmp: Path, out: Path) -> tuple[subprocess.Popen[bytes], str]:
    stdout = tmp / "listen.stdout"
    with stdout.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tidings.cli", "listen", "--port", "0", "--out", str(out)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    pattern = re.compile(r"listening on (http://127\.0\.0\.1:\d+)\n")
    if not _wait_until(lambda: pattern.match(stdout.read_text()) is not None):
        _stop(process)
        pytest.fail(f"tidings listen did not start:\n{_tail(stdout)}", pytrace=False)
    match = pattern.match(stdout.read_text())
    assert match is not None
    return process, match.group(1)


def _registry_answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _skopeo(skopeo: str, tmp: Path, log: Path, *args: str) -> str:
    policy = tmp / "policy.json"
    if not policy.exists():
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    command = [skopeo, "--policy", str(policy), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}\n"
            f"registry log ({log}):\n{_tail(log)}",
            pytrace=False,
        )
    return result.stdout


def _has(events: list[dict[str, Any]], action: str, **target: Any) -> bool:
    return any(
        event["action"] == action
        and all(event.get("target", {}).get(key) == value for key, value in target.items())
        for event in events
    )


@pytest.fixture(scope="module")
def registry_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryRun]:
    """Push, inspect, pull and delete an image through a real registry."""
    registry = _tool("docker-registry")
    skopeo = _tool("skopeo")
    tmp = tmp_path_factory.mktemp("registry")
    image = _build_image(tmp / "image")
    zone = tmp / "zone"
    zone.write_bytes(_fixed_zone(ZONE_OFFSET, "IST"))
    listen_out = tmp / "listen.jsonl"
    registry_log = tmp / "registry.log"
    port = _free_port()
    processes: list[subprocess.Popen[bytes]] = []
    with Receiver() as receiver, contextlib.ExitStack() as stack:

        def stop_all() -> None:
            for process in reversed(processes):
                _stop(process)

        stack.callback(stop_all)
        listen, listen_url = _start_listen(tmp, listen_out)
        processes.append(listen)
        config = tmp / "config.yml"
        config.write_text(
            REGISTRY_CONFIG.format(
                storage=tmp / "storage",
                port=port,
                listen_url=f"{listen_url}/events",
                receiver_url=receiver.url,
                token=TOKEN,
                hops=", ".join(HOPS),
            )
        )
        with registry_log.open("wb") as log:
            # TZ as an absolute path: Go reads that zone file; "local time" is +05:30.
            environment = {**os.environ, "TZ": str(zone)}
            processes.append(
                subprocess.Popen(
                    [registry, "serve", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            )
        if not _wait_until(lambda: processes[-1].poll() is not None or _registry_answers(port)):
            pytest.fail(
                f"the registry did not answer GET /v2/:\n{_tail(registry_log)}", pytrace=False
            )
        if processes[-1].poll() is not None:
            pytest.fail(f"the registry exited:\n{_tail(registry_log)}", pytrace=False)

        reference = f"docker://127.0.0.1:{port}/{REPOSITORY}:{TAG}"
        pulled = tmp / "pulled"
        _skopeo(
            skopeo,
            tmp,
            registry_log,
            "copy",
            "--dest-tls-verify=false",
            f"oci:{image.layout}:{TAG}",
            reference,
        )
        _skopeo(skopeo, tmp, registry_log, "inspect", "--tls-verify=false", reference)
        _skopeo(
            skopeo,
            tmp,
            registry_log,
            "copy",
            "--src-tls-verify=false",
            reference,
            f"oci:{pulled}:{TAG}",
        )
        _skopeo(skopeo, tmp, registry_log, "delete", "--tls-verify=false", reference)

        def complete(events: list[dict[str, Any]]) -> bool:
            return (
                _has(events, "push", digest=image.layer.digest)
                and _has(events, "push", digest=image.config.digest)
                and _has(events, "push", digest=image.manifest.digest, tag=TAG)
                and _has(events, "pull", digest=image.manifest.digest, tag=TAG)
                and _has(events, "pull", digest=image.layer.digest)
                and _has(events, "delete", digest=image.manifest.digest)
                and _has(events, "delete", tag=TAG)
            )

        def listen_events() -> list[dict[str, Any]]:
            return [event for body in _read_bodies(listen_out) for event in body["events"]]

        if not _wait_until(lambda: complete(receiver.events) and complete(listen_events())):
            pytest.fail(
                f"the registry's events did not all arrive within {WAIT}s: "
                f"receiver got {[event['action'] for event in receiver.events]}, "
                f"listen got {[event['action'] for event in listen_events()]}\n"
                f"registry log:\n{_tail(registry_log)}",
                pytrace=False,
            )
        # The last events may still be on their way: wait until both endpoints got
        # the same number and it holds for a moment.
        counts: list[tuple[int, int]] = []

        def settled() -> bool:
            counts.append((len(receiver.requests), len(_read_bodies(listen_out))))
            return (
                len(counts) > 10 and len(set(counts[-10:])) == 1 and counts[-1][0] == counts[-1][1]
            )

        if not _wait_until(settled):
            pytest.fail(
                f"the two endpoints did not settle on the same count: {counts[-5:]}", pytrace=False
            )
        _stop(processes.pop())  # the registry: no more events from here on
        yield RegistryRun(
            config=config,
            image=image,
            pulled=pulled,
            receiver=receiver,
            listen_out=listen_out,
            registry_log=registry_log,
            requests=list(receiver.requests),
            listen_bodies=_read_bodies(listen_out),
        )


# -- the tests ------------------------------------------------------------------------------


def _summary(events: list[dict[str, Any]]) -> Counter[tuple[str, str | None]]:
    return Counter((event["action"], event["target"].get("mediaType")) for event in events)


def test_the_registry_reports_push_pull_and_delete(registry_run: RegistryRun) -> None:
    run = registry_run
    image = run.image
    events = run.events
    assert {event["action"] for event in events} == {"push", "pull", "delete"}
    pushes = {
        event["target"]["digest"]: event["target"] for event in events if event["action"] == "push"
    }
    assert set(pushes) == {image.layer.digest, image.config.digest, image.manifest.digest}
    for blob in (image.layer, image.config):
        assert pushes[blob.digest]["mediaType"] == BLOB_MEDIA_TYPE
        assert pushes[blob.digest]["size"] == blob.size
        assert pushes[blob.digest]["repository"] == REPOSITORY
    manifest = pushes[image.manifest.digest]
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["tag"] == TAG
    assert manifest["size"] == image.manifest.size
    # events.includereferences: the manifest's config and layer, as the manifest names them
    assert manifest["references"] == [
        {"mediaType": OCI_CONFIG, "size": image.config.size, "digest": image.config.digest},
        {"mediaType": OCI_LAYER, "size": image.layer.size, "digest": image.layer.digest},
    ]
    deleted = [event["target"] for event in events if event["action"] == "delete"]
    assert {"repository": REPOSITORY, "digest": image.manifest.digest} in deleted
    # 2.8 also reports the tag the deletion removed, in an event of its own
    assert {"repository": REPOSITORY, "tag": TAG} in deleted
    summary = _summary(events)
    assert summary[("push", BLOB_MEDIA_TYPE)] == 2
    assert summary[("push", OCI_MANIFEST)] == 1
    assert summary[("pull", OCI_MANIFEST)] >= 2  # inspect and copy each read the manifest
    assert summary[("pull", BLOB_MEDIA_TYPE)] >= 2  # the config and the layer
    # The image really came back: the pulled layer is the one pushed.
    pulled = run.pulled / "blobs" / "sha256" / image.layer.digest.removeprefix("sha256:")
    assert pulled.read_bytes() == image.layer_bytes
    print(f"\nregistry events: {dict(summary)} in {len(run.requests)} requests")


def test_both_endpoints_got_the_same_events(registry_run: RegistryRun) -> None:
    assert len(registry_run.listen_bodies) == len(registry_run.requests)
    assert registry_run.listen_bodies == [request.json() for request in registry_run.requests]


def test_every_real_event_round_trips_key_for_key(registry_run: RegistryRun) -> None:
    events = registry_run.events + registry_run.listen_events
    assert len(events) >= 10
    for original in events:
        event = tidings.Event.from_dict(original)
        assert event.to_dict() == original
        # the same keys in the same order, nested ones too
        assert json.dumps(event.to_dict()) == json.dumps(original)
        assert event.id == original["id"]
        assert event.action == original["action"]
        assert event.actor == {}  # anonymous: the registry sends an empty object
        assert event.extra == {}


def test_real_registry_bodies_re_encode_byte_for_byte(registry_run: RegistryRun) -> None:
    # The registry encodes with Go's json.MarshalIndent(envelope, "", "   ").
    for request in registry_run.requests:
        events = [tidings.Event.from_dict(item) for item in request.events]
        again = json.dumps({"events": [event.to_dict() for event in events]}, indent=3)
        assert again.encode() == request.body
        assert json.loads(tidings.encode_envelope(events)) == request.json()


def test_registry_timestamps_keep_their_text_and_instant(registry_run: RegistryRun) -> None:
    local = datetime.timezone(ZONE_OFFSET)
    for original in registry_run.events:
        text = original["timestamp"]
        # Go's RFC3339Nano: up to nine digits, trailing zeros dropped, local offset.
        match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?\+05:30", text)
        assert match is not None, text
        event = tidings.Event.from_dict(original)
        assert event.timestamp_text == text
        assert event.timestamp.tzinfo == datetime.UTC
        seen_locally = event.timestamp.astimezone(local)
        assert seen_locally.strftime("%Y-%m-%dT%H:%M:%S") == match.group(1)
        assert seen_locally.microsecond == int((match.group(2) or "").ljust(6, "0")[:6])
    digits = {len(event["timestamp"].split(".")[1].split("+")[0]) for event in registry_run.events}
    assert max(digits) > 6  # nanoseconds really were sent


def test_envelope_media_type_and_configured_headers(registry_run: RegistryRun) -> None:
    for request in registry_run.requests:
        assert request.method == "POST"
        assert request.path == "/hook"
        assert request.headers["content-type"] == tidings.EVENTS_MEDIA_TYPE
        assert request.headers["authorization"] == TOKEN
        hops = [value for name, value in request.header_items if name.lower() == "x-registry-hop"]
        assert hops == list(HOPS)
        assert list(request.json()) == ["events"]


def test_registry_config_loads_in_tidings_unchanged(registry_run: RegistryRun) -> None:
    path = registry_run.config
    warning = (
        f"{path}: notifications.events.includereferences means nothing for delivery "
        "(the registry decides what an event contains); ignored"
    )
    with pytest.warns(RegistryConfigWarning, match=f"^{re.escape(warning)}$"):
        notifier = tidings.Notifier.from_file(path)
    try:
        endpoints = notifier.endpoints
        assert list(endpoints) == ["listen", "receiver"]
        registry_urls = re.findall(r"^      url: (\S+)$", path.read_text(), flags=re.MULTILINE)
        urls = [str(endpoint.transport.url) for endpoint in endpoints.values()]  # type: ignore[attr-defined]
        assert urls == registry_urls
        assert urls[1] == registry_run.receiver.url
    finally:
        notifier.close(0)


def test_tidings_check_accepts_the_registry_config(registry_run: RegistryRun) -> None:
    path = registry_run.config
    result = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    with pytest.warns(RegistryConfigWarning):
        notifier = tidings.Notifier.from_file(path)
    try:
        expected = [f"{path}: OK, 2 endpoints"] + [
            f"  {name}: {endpoint.describe()}" for name, endpoint in notifier.endpoints.items()
        ]
    finally:
        notifier.close(0)
    assert result.stdout.splitlines() == expected
    assert result.stderr == (
        f"tidings: warning: {path}: notifications.events.includereferences means nothing "
        "for delivery (the registry decides what an event contains); ignored\n"
    )


def test_tidings_delivers_the_real_events_like_the_registry(registry_run: RegistryRun) -> None:
    """The registry's config.yml drives tidings to the same endpoints: same bodies,
    same media type, same configured headers."""
    run = registry_run
    before_receiver = len(run.receiver.requests)
    before_listen = len(_read_bodies(run.listen_out))
    events = [tidings.Event.from_dict(item) for item in run.events]
    with pytest.warns(RegistryConfigWarning):
        notifier = tidings.Notifier.from_file(run.config)
    with notifier:
        notifier.publish(*events)
        assert notifier.flush(WAIT)
        metrics = notifier.metrics()
    assert {name: item.delivered for name, item in metrics.items()} == {
        "listen": len(events),
        "receiver": len(events),
    }
    assert run.receiver.wait_for(before_receiver + len(events), timeout=WAIT)
    sent = run.receiver.requests[before_receiver:]
    assert [request.json() for request in sent] == [request.json() for request in run.requests]
    for ours, theirs in zip(sent, run.requests, strict=True):
        assert json.dumps(ours.json()) == json.dumps(theirs.json())
        assert ours.headers["content-type"] == theirs.headers["content-type"]
        assert ours.headers["authorization"] == theirs.headers["authorization"]
        hops = [value for name, value in ours.header_items if name.lower() == "x-registry-hop"]
        assert hops == list(HOPS)
    assert _wait_until(lambda: len(_read_bodies(run.listen_out)) == before_listen + len(events))
    assert _read_bodies(run.listen_out)[before_listen:] == run.listen_bodies


def test_tidings_send_delivers_a_real_envelope(
    registry_run: RegistryRun, receiver: Receiver, tmp_path: Path
) -> None:
    # The manifest push: the richest real event (tag, references).
    original = next(
        request
        for request in registry_run.requests
        if request.events[0]["action"] == "push"
        and request.events[0]["target"]["mediaType"] == OCI_MANIFEST
    )
    envelope = tmp_path / "envelope.json"
    envelope.write_bytes(original.body)  # exactly as the registry sent it
    config = tmp_path / "tidings.toml"
    config.write_text(
        f'[[endpoints]]\nname = "hooks"\nsink = "http"\nurl = "{receiver.url}"\ntimeout = "5s"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "tidings.cli", "send", "-c", str(config), str(envelope)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert re.search(r"^1 events to 1 endpoints; closed in \d+\.\d\ds$", result.stdout, re.M)
    assert receiver.wait_for(1, timeout=WAIT)
    (delivered,) = receiver.requests
    assert delivered.headers["content-type"] == tidings.EVENTS_MEDIA_TYPE
    assert delivered.json() == original.json()
    assert json.dumps(delivered.json()) == json.dumps(original.json())
