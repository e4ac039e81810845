"""The hooks a tidings plugin implements.

Plugins mark their implementations with ``@tidings.hookimpl``; the docstrings
below are the hook reference.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from .sink import SinkFactory

__all__ = ["hookimpl", "hookspec", "tidings_register_sinks"]

hookspec = pluggy.HookspecMarker("tidings")
hookimpl = pluggy.HookimplMarker("tidings")

RegisterSink = Callable[[str, SinkFactory], None]


@hookspec
def tidings_register_sinks(register: RegisterSink) -> None:
    """Contribute sink types.

    Call ``register(name, factory)`` once for each sink type the plugin provides.
    ``name`` is what an endpoint's ``sink`` key says (``"kafka"``); it must be unique
    across all plugins. The core calls ``factory(context, **options)`` with a
    :class:`tidings.SinkContext` and the endpoint's transport options; the factory
    declares the options it accepts as keyword parameters (their names are listed
    in configuration errors), parses durations with :func:`tidings.parse_duration`,
    raises :class:`tidings.ConfigError` or ``ValueError`` for bad values, and
    returns a :class:`tidings.Sink`.

    Example::

        @tidings.hookimpl
        def tidings_register_sinks(register):
            register("kafka", KafkaSink.from_options)
    """
