"""Plugin loading: built-in transports by module name, third parties by entry point.

Built-ins are registered directly (as pytest, tox and llm do), under the short
names ``http``, ``file`` and ``log``, so that they work even where entry-point
metadata is missing. Third-party plugins come through the ``tidings`` entry-point
group. Both go through the same hook and the same name space.

Each entry point is loaded, and each plugin's hook called, on its own: a broken
plugin is a :class:`PluginLoadError` naming the entry point, the distribution and
its version (strict, the default), or a warning and a row with its error in
:meth:`Plugins.list` (``strict=False``); it never hides the others.

Environment: ``TIDINGS_DISABLE_PLUGINS`` (comma-separated plugin names, built-ins
included) blocks plugins; ``TIDINGS_LOAD_PLUGINS``, when set, limits the
third-party plugins loaded to those named (set but empty loads none).
"""

from __future__ import annotations

import functools
import importlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

import attrs
import importlib_metadata
import pluggy

from . import hookspecs
from .errors import PluginLoadError
from .sink import SinkFactory

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginLoadWarning",
    "Plugins",
    "list_plugins",
]

ENTRY_POINT_GROUP = "tidings"
"""The entry-point group third-party plugins register in."""

BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("http", "tidings_http"),
    ("file", "tidings_file"),
    ("log", "tidings_log"),
)
"""(plugin name, module) of the transports that ship with tidings."""


class PluginLoadWarning(UserWarning):
    """A plugin failed to load and ``strict=False`` let loading continue."""


@attrs.frozen
class PluginInfo:
    """One row of the plugin listing.

    ``error`` is ``None`` for a plugin that loaded, else the one-line reason it did
    not (then ``sink_types`` is empty).
    """

    name: str
    module: str | None
    distribution: str | None
    version: str | None
    sink_types: tuple[str, ...] = ()
    builtin: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the row."""
        return attrs.asdict(self)


@attrs.frozen
class _Origin:
    """Where a plugin came from, for messages."""

    name: str
    module: str | None = None
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    builtin: bool = False

    def describe(self) -> str:
        if self.builtin:
            return f'plugin "{self.name}" (built-in, module {self.module})'
        if self.entry_point is None:
            return f'plugin "{self.name}"'
        dist = self.distribution or "unknown distribution"
        version = self.version or "unknown version"
        return f'plugin "{self.name}" (entry point {self.entry_point}, {dist} {version})'


def _names_from_env(environ: Mapping[str, str], key: str) -> frozenset[str] | None:
    raw = environ.get(key)
    if raw is None:
        return None
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


class Plugins:
    """The plugin manager: which sink types exist and who provides them.

    Loading is lazy: built-ins and entry points are loaded on first use, so
    creating a ``Plugins`` costs nothing and every test can have a fresh one.
    ``strict=False`` turns load failures into :class:`PluginLoadWarning` and error
    rows in :meth:`list`. ``entry_points=False`` skips third-party discovery and
    ``environ`` replaces ``os.environ`` for the allow and block lists.
    """

    def __init__(
        self,
        strict: bool = True,
        *,
        entry_points: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.strict = strict
        self._use_entry_points = entry_points
        self._environ = environ
        self._pm = pluggy.PluginManager("tidings")
        self._pm.add_hookspecs(hookspecs)
        self._lock = threading.RLock()
        self._loaded = False
        self._load_error: PluginLoadError | None = None
        self._infos: dict[str, PluginInfo] = {}
        self._factories: dict[str, tuple[SinkFactory, str]] = {}

    def __repr__(self) -> str:
        state = "loaded" if self._loaded else "not loaded"
        return f"<Plugins strict={self.strict} {state} sinks={sorted(self._factories)}>"

    # -- public -------------------------------------------------------------

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object (module, class or instance) and collect its sinks.

        Returns the name it is registered under. Raises :class:`PluginLoadError`
        when it is not a valid plugin, its hook fails or a sink type or its name
        clashes, whether or not the manager is strict: the host asked for it.
        """
        self._ensure_loaded()
        plugin_name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        with self._lock:
            self._add_plugin(plugin, _Origin(name=plugin_name, module=_module_of(plugin)))
        return plugin_name

    def register_sink(self, name: str, factory: SinkFactory, *, plugin: str = "host") -> None:
        """Register one sink type directly, without a plugin object.

        Raises ``TypeError`` for a name that is not a non-empty string or a factory
        that is not callable, and :class:`PluginLoadError` when the name is taken.
        """
        _check_sink(name, factory)
        self._ensure_loaded()
        with self._lock:
            self._claim({name: factory}, _Origin(name=plugin))
            info = self._infos.get(plugin)
            sink_types = (*(info.sink_types if info else ()), name)
            self._infos[plugin] = PluginInfo(
                name=plugin, module=None, distribution=None, version=None, sink_types=sink_types
            )

    def sink_factory(self, sink_type: str) -> SinkFactory:
        """The factory of a sink type; ``KeyError`` if no plugin provides it."""
        self._ensure_loaded()
        return self._factories[sink_type][0]

    def sink_types(self) -> list[str]:
        """The names of every registered sink type, sorted."""
        self._ensure_loaded()
        return sorted(self._factories)

    def list(self) -> list[PluginInfo]:
        """One row per plugin, built-ins first, failed plugins included."""
        self._ensure_loaded()
        with self._lock:
            return list(self._infos.values())

    # -- loading ------------------------------------------------------------

    def _ensure_loaded(self) -> None:
        if self._loaded:
            if self._load_error is not None:
                raise self._load_error
            return
        with self._lock:
            if self._loaded:
                if self._load_error is not None:
                    raise self._load_error
                return
            # Set first: a failure below must not make every later call retry it.
            # In strict mode it is raised again instead: the plugins after the
            # broken one were never loaded, so a later answer would be incomplete.
            self._loaded = True
            try:
                self._load_all()
            except PluginLoadError as exc:
                self._load_error = exc
                raise

    def _load_all(self) -> None:
        """Load the built-ins, then the entry points, minus the blocked ones."""
        environ = os.environ if self._environ is None else self._environ
        disabled = _names_from_env(environ, "TIDINGS_DISABLE_PLUGINS") or frozenset()
        allowed = _names_from_env(environ, "TIDINGS_LOAD_PLUGINS")
        for plugin_name, module_name in BUILTIN_PLUGINS:
            if plugin_name in disabled:
                continue
            origin = _Origin(name=plugin_name, module=module_name, builtin=True)
            self._guard(origin, functools.partial(importlib.import_module, module_name))
        if self._use_entry_points:
            for entry_point in _discover():
                if entry_point.name in disabled:
                    continue
                if allowed is not None and entry_point.name not in allowed:
                    continue
                self._load_entry_point(entry_point)

    def _load_entry_point(self, entry_point: importlib_metadata.EntryPoint) -> None:
        dist = entry_point.dist
        origin = _Origin(
            name=entry_point.name,
            module=entry_point.module,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
            entry_point=f"{entry_point.name} = {entry_point.value}",
        )
        self._guard(origin, entry_point.load)

    def _guard(self, origin: _Origin, load: Callable[[], object]) -> None:
        """Load and add one plugin; turn any failure into PluginLoadError or a row."""
        try:
            try:
                plugin = load()
            except Exception as exc:
                raise PluginLoadError(
                    f"{origin.describe()} failed to load: {_one_line(exc)}"
                ) from exc
            self._add_plugin(plugin, origin)
        except PluginLoadError as exc:
            if self.strict:
                raise
            warnings.warn(str(exc), PluginLoadWarning, stacklevel=4)
            # A clash leaves the healthy holder of the name its row; keep both.
            key, number = origin.name, 2
            while key in self._infos:
                key, number = f"{origin.name}#{number}", number + 1
            self._infos[key] = _info(origin, (), str(exc))

    def _add_plugin(self, plugin: object, origin: _Origin) -> None:
        if origin.name in self._infos or self._pm.has_plugin(origin.name):
            other = self._infos.get(origin.name)
            raise PluginLoadError(
                f"{origin.describe()} uses a name that is taken by "
                f"{_describe_info(other) if other else 'another plugin'}"
            )
        try:
            self._pm.register(plugin, name=origin.name)
            self._pm.check_pending()
        except Exception as exc:
            if self._pm.is_registered(plugin):
                self._pm.unregister(plugin)
            raise PluginLoadError(
                f"{origin.describe()} is not a valid plugin: {_one_line(exc)}"
            ) from exc
        offered: dict[str, SinkFactory] = {}

        def register(sink_type: str, factory: SinkFactory) -> None:
            _check_sink(sink_type, factory)
            if sink_type in offered:
                raise ValueError(f"sink type {sink_type!r} registered twice")
            offered[sink_type] = factory

        try:
            for impl in self._pm.hook.tidings_register_sinks.get_hookimpls():
                if impl.plugin is plugin:
                    impl.function(**dict.fromkeys(impl.argnames, register))
            self._claim(offered, origin)
        except Exception as exc:
            self._pm.unregister(plugin)
            if isinstance(exc, PluginLoadError):
                raise
            raise PluginLoadError(
                f"{origin.describe()} failed in tidings_register_sinks: {_one_line(exc)}"
            ) from exc
        self._infos[origin.name] = _info(origin, tuple(offered), None)

    def _claim(self, offered: Mapping[str, SinkFactory], origin: _Origin) -> None:
        """Take the sink type names, all or none; a name already taken is an error."""
        for sink_type in offered:
            if sink_type in self._factories:
                owner = self._factories[sink_type][1]
                other = self._infos.get(owner)
                raise PluginLoadError(
                    f'sink type "{sink_type}" of {origin.describe()} is already provided by '
                    f"{_describe_info(other) if other else f'plugin {owner!r}'}"
                )
        for sink_type, factory in offered.items():
            self._factories[sink_type] = (factory, origin.name)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (pluggy's validation messages span several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {'; '.join(lines)}"


def _check_sink(sink_type: object, factory: object) -> None:
    """Refuse a sink type name that is not a non-empty string, or a factory that
    cannot be called (``TypeError``)."""
    if not isinstance(sink_type, str) or not sink_type:
        raise TypeError(f"a sink type name must be a non-empty string, got {sink_type!r}")
    if not callable(factory):
        raise TypeError(f"the factory of sink type {sink_type!r} is not callable")


def _info(origin: _Origin, sink_types: tuple[str, ...], error: str | None) -> PluginInfo:
    return PluginInfo(
        name=origin.name,
        module=origin.module,
        distribution=origin.distribution or ("tidings" if origin.builtin else None),
        version=origin.version or (_own_version() if origin.builtin else None),
        sink_types=sink_types,
        builtin=origin.builtin,
        error=error,
    )


def _describe_info(info: PluginInfo) -> str:
    if info.builtin:
        return f'plugin "{info.name}" (built-in, module {info.module})'
    if info.distribution:
        return f'plugin "{info.name}" ({info.distribution} {info.version})'
    return f'plugin "{info.name}"'


def _module_of(plugin: object) -> str | None:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    module = getattr(plugin, "__module__", None)
    return module if isinstance(module, str) else None


def _own_version() -> str:
    from .__about__ import __version__

    return __version__


def _discover() -> Iterable[importlib_metadata.EntryPoint]:
    """Entry points of the group, each name once (a distribution seen twice on
    ``sys.path`` must not look like a clash with itself)."""
    seen: set[tuple[str, str]] = set()
    for entry_point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = (entry_point.name, entry_point.value)
        if key in seen:
            continue
        seen.add(key)
        yield entry_point


def list_plugins() -> list[PluginInfo]:
    """The plugin listing of a fresh, lenient :class:`Plugins`: failed plugins
    appear as rows with their error instead of raising."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)
        return Plugins(strict=False).list()
