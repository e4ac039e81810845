"""Plugin loading: built-ins, fake third-party distributions on sys.path, allow and
block lists, inline plugins, the listing, and the hook reference."""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import textwrap
import types
import typing
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import importlib_metadata
import pluggy
import pytest

import tidings
from tidings import (
    Event,
    Notifier,
    PluginInfo,
    PluginLoadError,
    PluginLoadWarning,
    Plugins,
    hookspecs,
)
from tidings.sink import SinkFactory
from tidings.testing import CaptureSink

VERSION = tidings.__version__
BUILTIN_ROWS = [
    PluginInfo("http", "tidings_http", "tidings", VERSION, ("http",), True, None),
    PluginInfo("file", "tidings_file", "tidings", VERSION, ("file",), True, None),
    PluginInfo("log", "tidings_log", "tidings", VERSION, ("log",), True, None),
]

GOOD = '''
"""A well-behaved third-party plugin: the "memory" sink type."""
import tidings
from tidings.testing import CaptureSink

created = []


def memory_sink(context, *, label, size=1):
    sink = CaptureSink()
    created.append((context.endpoint, label, size, sink))
    return sink


@tidings.hookimpl
def tidings_register_sinks(register):
    register("memory", memory_sink)
'''

OTHER = """
import tidings
from tidings.testing import CaptureSink


@tidings.hookimpl
def tidings_register_sinks(register):
    register("other", lambda context: CaptureSink())
"""

BROKEN_IMPORT = """
raise ImportError("the kafka client library is not installed")
"""

HOOK_RAISES = """
import tidings


@tidings.hookimpl
def tidings_register_sinks(register):
    raise RuntimeError("no credentials configured")
"""

CLASHES = """
import tidings
from tidings.testing import CaptureSink


@tidings.hookimpl
def tidings_register_sinks(register):
    register("memory", lambda context: CaptureSink())
"""

CLASHES_WITH_LOG = """
import tidings
from tidings.testing import CaptureSink


@tidings.hookimpl
def tidings_register_sinks(register):
    register("log", lambda context: CaptureSink())
"""

MISSPELLED = """
import tidings


@tidings.hookimpl
def tidings_register_sink(register):
    register("never", print)
"""

FAKE_PREFIX = "tidings_fake_"


@attrs.define
class FakeSite:
    """Fake installed distributions, each in its own directory on ``sys.path``.

    Each ``add`` prepends its directory, so the distribution added last is found
    first (``importlib.metadata`` follows ``sys.path``).
    """

    root: Path
    monkeypatch: pytest.MonkeyPatch

    def add(self, distribution: str, version: str, entry_points: str, **modules: str) -> Path:
        site = self.root / f"{distribution}-{version}"
        dist_info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        dist_info.mkdir(parents=True)
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n",
            encoding="utf-8",
        )
        (dist_info / "entry_points.txt").write_text(
            "[tidings]\n" + textwrap.dedent(entry_points), encoding="utf-8"
        )
        for module, source in modules.items():
            assert module.startswith(FAKE_PREFIX)
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        self.monkeypatch.syspath_prepend(str(site))
        importlib.invalidate_caches()
        importlib_metadata.MetadataPathFinder.invalidate_caches()
        return site


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSite]:
    yield FakeSite(tmp_path, monkeypatch)
    for name in [name for name in sys.modules if name.startswith(FAKE_PREFIX)]:
        del sys.modules[name]
    importlib.invalidate_caches()
    importlib_metadata.MetadataPathFinder.invalidate_caches()


def fake_rows(plugins: Plugins) -> list[PluginInfo]:
    """The rows of the fake plugins (an environment may have other real ones)."""
    return [row for row in plugins.list() if row.name.startswith("fake")]


def add_fake(site: FakeSite, name: str, version: str, source: str) -> Path:
    """Add distribution ``tidings-fake-<name>`` with entry point ``fake<name>`` naming
    its one module ``tidings_fake_<name>`` (holding ``source``)."""
    module = f"{FAKE_PREFIX}{name}"
    return site.add(f"tidings-fake-{name}", version, f"fake{name} = {module}\n", **{module: source})


def add_good(site: FakeSite) -> Path:
    return add_fake(site, "good", "1.2.3", GOOD)


def add_broken(site: FakeSite) -> Path:
    return add_fake(site, "broken", "0.4.0", BROKEN_IMPORT)


def add_raises(site: FakeSite) -> Path:
    return add_fake(site, "raises", "2.0", HOOK_RAISES)


def strict_load_error() -> PluginLoadError:
    """The error a strict manager raises when it loads the plugins."""
    with pytest.raises(PluginLoadError) as caught:
        Plugins().list()
    return caught.value


BROKEN_MESSAGE = (
    'plugin "fakebroken" (entry point fakebroken = tidings_fake_broken, '
    "tidings-fake-broken 0.4.0) failed to load: "
    "ImportError: the kafka client library is not installed"
)
RAISES_MESSAGE = (
    'plugin "fakeraises" (entry point fakeraises = tidings_fake_raises, '
    "tidings-fake-raises 2.0) failed in tidings_register_sinks: "
    "RuntimeError: no credentials configured"
)


# -- built-ins ------------------------------------------------------------------------


def test_the_builtins_are_listed_first_with_tidings_version() -> None:
    manager = Plugins(entry_points=False)

    assert manager.list() == BUILTIN_ROWS
    assert manager.sink_types() == ["file", "http", "log"]
    assert manager.list()[0].as_dict() == {
        "name": "http",
        "module": "tidings_http",
        "distribution": "tidings",
        "version": VERSION,
        "sink_types": ("http",),
        "builtin": True,
        "error": None,
    }


def test_a_sink_factory_is_looked_up_by_type() -> None:
    import tidings_file

    manager = Plugins(entry_points=False)

    assert manager.sink_factory("file") == tidings_file.FileSink.from_options
    with pytest.raises(KeyError):
        manager.sink_factory("kafka")


def test_loading_is_lazy() -> None:
    manager = Plugins(entry_points=False)

    assert repr(manager) == "<Plugins strict=True not loaded sinks=[]>"
    manager.sink_types()
    assert repr(manager) == "<Plugins strict=True loaded sinks=['file', 'http', 'log']>"


# -- third-party plugins from fake distributions ------------------------------------------


def test_a_third_party_plugin_is_loaded_and_its_sink_delivers(fake_site: FakeSite) -> None:
    add_good(fake_site)
    manager = Plugins()

    assert fake_rows(manager) == [
        PluginInfo(
            name="fakegood",
            module="tidings_fake_good",
            distribution="tidings-fake-good",
            version="1.2.3",
            sink_types=("memory",),
            builtin=False,
            error=None,
        )
    ]
    assert manager.list()[:3] == BUILTIN_ROWS
    assert "memory" in manager.sink_types()

    notifier = Notifier.from_config(
        {
            "notifier": {"close_at_exit": False},
            "endpoints": [{"name": "mem", "sink": "memory", "label": "blue", "size": 3}],
        },
        plugins=manager,
    )
    try:
        event = Event(action="push", target={"repository": "app", "tag": "v1"})
        notifier.publish(event)
        assert notifier.flush(10)
    finally:
        notifier.close(2)

    module = sys.modules["tidings_fake_good"]
    ((endpoint, label, size, sink),) = module.created
    assert (endpoint, label, size) == ("mem", "blue", 3)
    assert isinstance(sink, CaptureSink)
    assert sink.events == [event]
    assert notifier.metrics()["mem"].delivered == 1


def test_the_options_of_a_third_party_sink_are_listed_in_errors(fake_site: FakeSite) -> None:
    add_good(fake_site)

    with pytest.raises(tidings.ConfigError) as caught:
        Notifier.from_config(
            {"endpoints": [{"name": "mem", "sink": "memory", "colour": "red", "label": "x"}]},
            plugins=Plugins(environ={"TIDINGS_LOAD_PLUGINS": "fakegood"}),
        )

    assert str(caught.value) == (
        'endpoint "mem": unknown key "colour"; accepted keys: dead_letter, disabled, ignore, '
        'name, queue, retry, sink and the "memory" sink\'s options: label, size'
    )


def test_strict_loading_names_the_entry_point_distribution_and_version(
    fake_site: FakeSite,
) -> None:
    add_broken(fake_site)
    manager = Plugins()

    with pytest.raises(PluginLoadError) as caught:
        manager.list()

    assert str(caught.value) == BROKEN_MESSAGE
    assert isinstance(caught.value.__cause__, ImportError)
    assert str(caught.value.__cause__) == "the kafka client library is not installed"


def test_after_a_strict_failure_every_later_use_raises_it_again(fake_site: FakeSite) -> None:
    # The broken plugin is found first; the good one after it was never loaded, so
    # an answer from this manager would silently lack it.
    add_good(fake_site)
    add_broken(fake_site)
    manager = Plugins()

    with pytest.raises(PluginLoadError, match=f"^{re.escape(BROKEN_MESSAGE)}$"):
        manager.sink_types()
    with pytest.raises(PluginLoadError, match=f"^{re.escape(BROKEN_MESSAGE)}$"):
        manager.list()
    with pytest.raises(PluginLoadError, match=f"^{re.escape(BROKEN_MESSAGE)}$"):
        manager.sink_factory("memory")


def test_notifier_from_config_reports_a_broken_plugin(fake_site: FakeSite) -> None:
    add_broken(fake_site)

    with pytest.raises(PluginLoadError, match=f"^{re.escape(BROKEN_MESSAGE)}$"):
        Notifier.from_config({"endpoints": [{"name": "log", "sink": "log"}]})


def test_lenient_loading_warns_continues_and_lists_the_failures(fake_site: FakeSite) -> None:
    add_good(fake_site)
    add_broken(fake_site)
    add_raises(fake_site)
    manager = Plugins(strict=False)

    with pytest.warns(PluginLoadWarning) as caught:
        rows = fake_rows(manager)

    assert sorted(str(w.message) for w in caught) == sorted([BROKEN_MESSAGE, RAISES_MESSAGE])
    assert rows == [
        PluginInfo(
            "fakeraises", "tidings_fake_raises", "tidings-fake-raises", "2.0", (), False,
            RAISES_MESSAGE,
        ),
        PluginInfo(
            "fakebroken", "tidings_fake_broken", "tidings-fake-broken", "0.4.0", (), False,
            BROKEN_MESSAGE,
        ),
        PluginInfo(
            "fakegood", "tidings_fake_good", "tidings-fake-good", "1.2.3", ("memory",), False,
            None,
        ),
    ]  # fmt: skip
    assert "memory" in manager.sink_types()
    with pytest.raises(KeyError):
        manager.sink_factory("never")


def test_a_plugin_whose_hook_raises_is_an_error_in_strict_mode(fake_site: FakeSite) -> None:
    add_raises(fake_site)

    error = strict_load_error()

    assert str(error) == RAISES_MESSAGE
    assert isinstance(error.__cause__, RuntimeError)


def test_a_sink_type_clash_names_both_plugins(fake_site: FakeSite) -> None:
    add_good(fake_site)
    add_fake(fake_site, "clash", "3.1", CLASHES)  # added last, so found first: it holds "memory"

    assert str(strict_load_error()) == (
        'sink type "memory" of plugin "fakegood" (entry point fakegood = tidings_fake_good, '
        'tidings-fake-good 1.2.3) is already provided by plugin "fakeclash" '
        "(tidings-fake-clash 3.1)"
    )


def test_a_clash_with_a_builtin_names_the_builtin(fake_site: FakeSite) -> None:
    add_fake(fake_site, "log", "1.0", CLASHES_WITH_LOG)
    manager = Plugins(strict=False)

    with pytest.warns(PluginLoadWarning) as caught:
        rows = fake_rows(manager)

    message = (
        'sink type "log" of plugin "fakelog" (entry point fakelog = tidings_fake_log, '
        'tidings-fake-log 1.0) is already provided by plugin "log" (built-in, module tidings_log)'
    )
    assert [str(w.message) for w in caught] == [message]
    assert rows == [
        PluginInfo("fakelog", "tidings_fake_log", "tidings-fake-log", "1.0", (), False, message)
    ]
    # The built-in keeps its sink type.
    import tidings_log

    assert manager.sink_factory("log") == tidings_log.LogSink.from_options


def test_an_entry_point_naming_a_missing_object(fake_site: FakeSite) -> None:
    fake_site.add(
        "tidings-fake-attr",
        "1.0",
        "fakeattr = tidings_fake_attr:plugin\n",
        tidings_fake_attr=OTHER,
    )

    assert str(strict_load_error()) == (
        'plugin "fakeattr" (entry point fakeattr = tidings_fake_attr:plugin, '
        "tidings-fake-attr 1.0) failed to load: "
        "AttributeError: module 'tidings_fake_attr' has no attribute 'plugin'"
    )


def test_an_entry_point_named_like_a_builtin_is_refused(fake_site: FakeSite) -> None:
    fake_site.add(
        "tidings-fake-http", "9.9", "http = tidings_fake_other\n", tidings_fake_other=OTHER
    )

    assert str(strict_load_error()) == (
        'plugin "http" (entry point http = tidings_fake_other, tidings-fake-http 9.9) uses a '
        'name that is taken by plugin "http" (built-in, module tidings_http)'
    )


def test_a_misspelled_hookimpl_is_an_error_not_silence(fake_site: FakeSite) -> None:
    site = add_fake(fake_site, "typo", "0.0.1", MISSPELLED)

    error = strict_load_error()

    module_file = site / "tidings_fake_typo.py"
    assert str(error) == (
        'plugin "faketypo" (entry point faketypo = tidings_fake_typo, tidings-fake-typo 0.0.1) '
        "is not a valid plugin: PluginValidationError: unknown hook 'tidings_register_sink' "
        f"in plugin <module 'tidings_fake_typo' from '{module_file}'>"
    )
    assert isinstance(error.__cause__, pluggy.PluginValidationError)


# -- allow and block lists --------------------------------------------------------------------


def test_disable_blocks_a_builtin_and_a_third_party_plugin(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_good(fake_site)
    add_fake(fake_site, "other", "1.0", OTHER)
    monkeypatch.setenv("TIDINGS_DISABLE_PLUGINS", " log , fakegood,")
    manager = Plugins()

    names = [row.name for row in manager.list()]
    assert names[:2] == ["http", "file"]
    assert "log" not in names
    assert "fakegood" not in names
    assert "fakeother" in names
    assert "log" not in manager.sink_types()
    assert "memory" not in manager.sink_types()
    assert "tidings_fake_good" not in sys.modules  # never even imported

    with pytest.raises(tidings.ConfigError) as caught:
        Notifier.from_config(
            {"endpoints": [{"name": "log", "sink": "log"}]},
            plugins=Plugins(entry_points=False),
        )
    assert str(caught.value) == 'endpoint "log": unknown sink type "log"; available: file, http'


def test_disable_also_blocks_a_broken_plugin(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_broken(fake_site)
    monkeypatch.setenv("TIDINGS_DISABLE_PLUGINS", "fakebroken")

    assert fake_rows(Plugins()) == []


def test_load_limits_third_party_plugins_only(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_good(fake_site)
    add_broken(fake_site)
    add_fake(fake_site, "other", "1.0", OTHER)
    monkeypatch.setenv("TIDINGS_LOAD_PLUGINS", "fakegood,http")
    manager = Plugins()

    rows = manager.list()
    assert rows[:3] == BUILTIN_ROWS
    assert [row.name for row in rows[3:]] == ["fakegood"]
    assert manager.sink_types() == ["file", "http", "log", "memory"]


def test_load_set_but_empty_loads_no_third_party_plugin(
    fake_site: FakeSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_good(fake_site)
    add_broken(fake_site)
    monkeypatch.setenv("TIDINGS_LOAD_PLUGINS", "")

    assert Plugins().list() == BUILTIN_ROWS


def test_the_lists_can_come_from_a_given_environment(fake_site: FakeSite) -> None:
    add_good(fake_site)
    add_broken(fake_site)

    manager = Plugins(
        environ={"TIDINGS_LOAD_PLUGINS": "fakegood", "TIDINGS_DISABLE_PLUGINS": "file"}
    )

    assert [row.name for row in manager.list()] == ["http", "log", "fakegood"]


# -- inline plugins and direct registration -------------------------------------------------------


class InlinePlugin:
    """A plugin object, as a host or a test registers it."""

    @tidings.hookimpl
    def tidings_register_sinks(self, register: Callable[[str, SinkFactory], None]) -> None:
        register("inline", self.make)

    def make(self, context: tidings.SinkContext, *, tag: str = "") -> CaptureSink:
        return CaptureSink()


def test_register_an_inline_plugin_object() -> None:
    manager = Plugins(entry_points=False)

    name = manager.register(InlinePlugin(), name="inline-plugin")

    assert name == "inline-plugin"
    assert manager.list()[3:] == [
        PluginInfo("inline-plugin", __name__, None, None, ("inline",), False, None)
    ]
    assert "inline" in manager.sink_types()


def test_register_an_inline_module_named_after_it() -> None:
    module = types.ModuleType("tidings_fake_inline_module")

    @tidings.hookimpl
    def tidings_register_sinks(register: Callable[[str, SinkFactory], None]) -> None:
        register("modsink", lambda context: CaptureSink())

    module.tidings_register_sinks = tidings_register_sinks  # type: ignore[attr-defined]
    manager = Plugins(entry_points=False)

    assert manager.register(module) == "tidings_fake_inline_module"
    assert manager.list()[3:] == [
        PluginInfo(
            "tidings_fake_inline_module", "tidings_fake_inline_module", None, None, ("modsink",)
        )
    ]


def test_an_inline_plugin_delivers_through_a_notifier() -> None:
    captured: list[CaptureSink] = []

    class Capturing:
        @tidings.hookimpl
        def tidings_register_sinks(self, register: Callable[[str, SinkFactory], None]) -> None:
            register("captured", self.make)

        def make(self, context: tidings.SinkContext) -> CaptureSink:
            captured.append(CaptureSink())
            return captured[-1]

    manager = Plugins(entry_points=False)
    manager.register(Capturing())
    event = Event(action="delete", target={"repository": "app", "digest": "sha256:aaaa"})

    with Notifier.from_config(
        {
            "notifier": {"close_at_exit": False},
            "endpoints": [{"name": "c", "sink": "captured"}],
        },
        plugins=manager,
    ) as notifier:
        notifier.publish(event)
        assert notifier.flush(10)

    assert [sink.events for sink in captured] == [[event]]


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (
            "misspelled",
            r'plugin "Misspelled" is not a valid plugin: PluginValidationError: unknown hook '
            r"'tidings_register_sink' in plugin <test_plugins\.Misspelled object at 0x[0-9a-f]+>",
        ),
        (
            "raises",
            r'plugin "Raises" failed in tidings_register_sinks: RuntimeError: boom',
        ),
        (
            "twice",
            r"plugin \"Twice\" failed in tidings_register_sinks: ValueError: sink type 'a' "
            r"registered twice",
        ),
        (
            "bad-name",
            r'plugin "BadName" failed in tidings_register_sinks: TypeError: a sink type name '
            r"must be a non-empty string, got ''",
        ),
        (
            "clash",
            r'sink type "file" of plugin "Clash" is already provided by plugin "file" '
            r"\(built-in, module tidings_file\)",
        ),
        (
            "wrong-argument",
            r"plugin \"WrongArgument\" is not a valid plugin: PluginValidationError: Plugin "
            r"'WrongArgument' for hook 'tidings_register_sinks'; hookimpl definition: "
            r"tidings_register_sinks\(reg: 'Any'\) -> 'None'; Argument\(s\) \{'reg'\} are "
            r"declared in the hookimpl but can not be found in the hookspec",
        ),
    ],
)
def test_register_refuses_a_bad_plugin(plugin: str, message: str) -> None:
    manager = Plugins(strict=False, entry_points=False)

    with pytest.raises(PluginLoadError) as caught:
        manager.register(BAD_PLUGINS[plugin]())

    assert re.fullmatch(message.replace("test_plugins", re.escape(__name__)), str(caught.value))
    assert "\n" not in str(caught.value)
    assert manager.list() == BUILTIN_ROWS  # nothing half-registered
    assert manager.sink_types() == ["file", "http", "log"]


class Misspelled:
    @tidings.hookimpl
    def tidings_register_sink(self, register: Any) -> None:
        register("never", print)


class Raises:
    @tidings.hookimpl
    def tidings_register_sinks(self, register: Any) -> None:
        raise RuntimeError("boom")


class Twice:
    @tidings.hookimpl
    def tidings_register_sinks(self, register: Any) -> None:
        register("a", lambda context: CaptureSink())
        register("a", lambda context: CaptureSink())


class BadName:
    @tidings.hookimpl
    def tidings_register_sinks(self, register: Any) -> None:
        register("", lambda context: CaptureSink())


class Clash:
    @tidings.hookimpl
    def tidings_register_sinks(self, register: Any) -> None:
        register("fine", lambda context: CaptureSink())
        register("file", lambda context: CaptureSink())


class WrongArgument:
    @tidings.hookimpl
    def tidings_register_sinks(self, reg: Any) -> None:
        reg("x", print)


BAD_PLUGINS: dict[str, type] = {
    "misspelled": Misspelled,
    "raises": Raises,
    "twice": Twice,
    "bad-name": BadName,
    "clash": Clash,
    "wrong-argument": WrongArgument,
}


def test_a_plugin_name_is_registered_once() -> None:
    manager = Plugins(entry_points=False)
    manager.register(InlinePlugin(), name="inline-plugin")

    with pytest.raises(PluginLoadError) as caught:
        manager.register(types.ModuleType("other"), name="inline-plugin")

    assert str(caught.value) == (
        'plugin "inline-plugin" uses a name that is taken by plugin "inline-plugin"'
    )
    with pytest.raises(PluginLoadError) as caught:
        manager.register(types.ModuleType("other"), name="log")
    assert str(caught.value) == (
        'plugin "log" uses a name that is taken by plugin "log" (built-in, module tidings_log)'
    )


def capture_factory(context: tidings.SinkContext, *, label: str = "") -> CaptureSink:
    return CaptureSink()


def test_register_sink_adds_types_under_the_host_row() -> None:
    manager = Plugins(entry_points=False)

    manager.register_sink("capture", capture_factory)
    manager.register_sink("capture2", capture_factory)
    manager.register_sink("audit", capture_factory, plugin="myapp")

    assert manager.list()[3:] == [
        PluginInfo("host", None, None, None, ("capture", "capture2")),
        PluginInfo("myapp", None, None, None, ("audit",)),
    ]
    assert manager.sink_factory("capture") is capture_factory
    assert manager.sink_types() == ["audit", "capture", "capture2", "file", "http", "log"]


def test_register_sink_refuses_a_taken_name_and_bad_arguments() -> None:
    manager = Plugins(entry_points=False)

    with pytest.raises(PluginLoadError) as caught:
        manager.register_sink("http", capture_factory)
    assert str(caught.value) == (
        'sink type "http" of plugin "host" is already provided by plugin "http" '
        "(built-in, module tidings_http)"
    )
    with pytest.raises(TypeError, match=r"^a sink type name must be a non-empty string, got 3$"):
        manager.register_sink(3, capture_factory)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^a sink type name must be a non-empty string, got ''$"):
        manager.register_sink("", capture_factory)
    with pytest.raises(TypeError, match=r"^the factory of sink type 'x' is not callable$"):
        manager.register_sink("x", "not callable")  # type: ignore[arg-type]

    assert manager.sink_types() == ["file", "http", "log"]
    assert manager.list() == BUILTIN_ROWS


# -- list_plugins ------------------------------------------------------------------------------


def test_list_plugins_is_lenient_and_quiet(fake_site: FakeSite) -> None:
    add_good(fake_site)
    add_broken(fake_site)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = tidings.list_plugins()

    assert rows[:3] == BUILTIN_ROWS
    mine = {row.name: row for row in rows if row.name.startswith("fake")}
    assert mine["fakebroken"].error == BROKEN_MESSAGE
    assert mine["fakebroken"].sink_types == ()
    assert mine["fakegood"].error is None
    assert mine["fakegood"].sink_types == ("memory",)


def test_list_plugins_without_third_parties(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_LOAD_PLUGINS", "")

    assert tidings.list_plugins() == BUILTIN_ROWS


# -- the hook reference -----------------------------------------------------------------------


def all_hookspecs() -> dict[str, Callable[..., Any]]:
    return {
        name: value
        for name, value in vars(hookspecs).items()
        if callable(value) and hasattr(value, "tidings_spec")
    }


def test_the_hookspecs_are_the_hooks_of_the_plugin_manager() -> None:
    manager = pluggy.PluginManager("tidings")
    manager.add_hookspecs(hookspecs)

    hooks = sorted(name for name in vars(manager.hook) if not name.startswith("_"))
    assert hooks == sorted(all_hookspecs()) == ["tidings_register_sinks"]
    assert tidings.hookimpl is hookspecs.hookimpl
    assert hookspecs.hookimpl.project_name == "tidings"


@pytest.mark.parametrize("name", sorted(all_hookspecs()))
def test_every_hookspec_is_documented_and_fully_annotated(name: str) -> None:
    spec = all_hookspecs()[name]

    assert name.startswith("tidings_")
    doc = inspect.getdoc(spec)
    assert doc
    assert len(doc.splitlines()) >= 3
    signature = inspect.signature(spec)
    hints = typing.get_type_hints(spec)
    for parameter in signature.parameters.values():
        assert parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert parameter.name in hints, f"{name}: {parameter.name} is not annotated"
        assert f"``{parameter.name}" in doc or f"{parameter.name}(" in doc
    assert "return" in hints
    # The body is the docstring only: a hookspec is a reference, not code.
    source = inspect.getsource(spec)
    assert source.rstrip().endswith('"""')


def test_the_register_sinks_hook_signature() -> None:
    spec = hookspecs.tidings_register_sinks

    assert typing.get_type_hints(spec) == {
        "register": Callable[[str, SinkFactory], None],
        "return": type(None),
    }
    assert list(inspect.signature(spec).parameters) == ["register"]
