"""The public API of DESIGN.md exists, is documented, and keeps its signatures."""

from __future__ import annotations

import inspect

import pytest

import tidings

DESIGN_NAMES = [
    "Event",
    "EVENTS_MEDIA_TYPE",
    "encode_envelope",
    "Sink",
    "SinkContext",
    "parse_duration",
    "Broadcaster",
    "QueueSink",
    "RetryPolicy",
    "BackoffSink",
    "FilterSink",
    "hookimpl",
    "Plugins",
    "list_plugins",
    "Notifier",
    "ShutdownReport",
    "EndpointMetrics",
    "TidingsError",
    "ConfigError",
    "PluginLoadError",
    "SinkClosedError",
    "DeliveryError",
    "PermanentDeliveryError",
    "EndpointGoneError",
]


@pytest.mark.parametrize("name", DESIGN_NAMES)
def test_every_design_name_exists_and_is_exported(name: str) -> None:
    assert hasattr(tidings, name)
    assert name in tidings.__all__


@pytest.mark.parametrize(
    "name", sorted(set(tidings.__all__) - {"__version__", "EVENTS_MEDIA_TYPE"})
)
def test_every_public_name_has_a_docstring(name: str) -> None:
    value = getattr(tidings, name)
    if name == "hookimpl":
        # pluggy's marker instance: documented by its class.
        value = type(value)
    assert inspect.getdoc(value), f"tidings.{name} has no docstring"


PUBLIC_METHODS = {
    "Event": ["to_dict", "from_dict", "with_extra", "wire_view"],
    "QueueSink": ["write", "flush", "close"],
    "RetryPolicy": ["delays", "from_registry", "from_mapping"],
    "BackoffSink": ["write", "close", "interrupt", "abandon"],
    "FilterSink": ["write", "close"],
    "Broadcaster": ["write", "add", "remove", "close"],
    "Plugins": ["register", "register_sink", "list", "sink_factory", "sink_types"],
    "Notifier": [
        "from_file",
        "from_config",
        "publish",
        "flush",
        "close",
        "metrics",
        "replay",
    ],
}


@pytest.mark.parametrize(
    ("owner", "method"),
    [(owner, method) for owner, methods in PUBLIC_METHODS.items() for method in methods],
)
def test_public_methods_are_documented(owner: str, method: str) -> None:
    assert inspect.getdoc(getattr(getattr(tidings, owner), method))


def test_the_signatures_design_md_promises() -> None:
    def keywords(callable_: object) -> set[str]:
        return set(inspect.signature(callable_).parameters)  # type: ignore[arg-type]

    assert {"max_size", "overflow", "max_batch"} <= keywords(tidings.QueueSink)
    assert {"dead_letter"} <= keywords(tidings.BackoffSink)
    assert {"ignore_actions", "ignore_media_types", "predicate"} <= keywords(tidings.FilterSink)
    assert {
        "max_retries",
        "initial_interval",
        "multiplier",
        "max_interval",
        "max_elapsed",
        "jitter",
    } <= keywords(tidings.RetryPolicy)
    assert keywords(tidings.RetryPolicy.from_registry) == {"backoff", "maxretries", "threshold"}
    assert {"plugins"} <= keywords(tidings.Notifier.from_file)
    assert {"plugins"} <= keywords(tidings.Notifier.from_config)
    assert {"endpoint"} <= keywords(tidings.Notifier.replay)
    assert keywords(tidings.parse_duration) == {"value", "where"}
    assert inspect.signature(tidings.Plugins).parameters["strict"].default is True


def test_the_error_hierarchy() -> None:
    assert issubclass(tidings.ConfigError, tidings.TidingsError)
    assert issubclass(tidings.PluginLoadError, tidings.TidingsError)
    assert issubclass(tidings.SinkClosedError, tidings.TidingsError)
    assert issubclass(tidings.DeliveryError, tidings.TidingsError)
    assert issubclass(tidings.PermanentDeliveryError, tidings.DeliveryError)
    assert issubclass(tidings.EndpointGoneError, tidings.PermanentDeliveryError)
    error = tidings.DeliveryError("HTTP 503", status=503, retry_after=2.0)
    assert (str(error), error.status, error.retry_after) == ("HTTP 503", 503, 2.0)


def test_the_media_type() -> None:
    assert tidings.EVENTS_MEDIA_TYPE == "application/vnd.docker.distribution.events.v1+json"


def test_py_typed_is_shipped() -> None:
    from importlib.resources import files

    assert files("tidings").joinpath("py.typed").is_file()
