"""The documentation is built, generated and checked against the code.

- docs/hooks.md is exactly what docs/gen_hooks.py generates from the hookspecs;
- every hookspec is documented;
- ``mkdocs build --strict`` passes;
- the configuration reference lists exactly the keys and sink options the code
  accepts, and every TOML example validates;
- the migration page's TOML means what tidings makes of its YAML;
- the plugin page quotes the example plugin verbatim;
- the worked example tests of the testing page pass.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import re
import subprocess
import sys
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest
import yaml

import tidings
import tidings.hookspecs
from tidings.config import RESERVED_ENDPOINT_KEYS, IgnoreConfig, NotifierConfig, QueueConfig
from tidings.endpoint import sink_options
from tidings.registry import RegistryConfigWarning, registry_to_mapping

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# The pages this test checks for TOML examples (others own retries.md and operations.md).
CHECKED_PAGES = (
    "index.md",
    "tutorial.md",
    "configuration.md",
    "plugins.md",
    "testing.md",
    "architecture.md",
    "migration.md",
    "benchmarks.md",
)

# What ${VAR} references without a default in the examples stand for.
DOC_ENVIRON = {
    "HOOKS_TOKEN": "token-for-the-docs",
    "HOOKS_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
}

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _gen_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_hooks", DOCS / "gen_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of ``language`` in ``text``, in order."""
    return [body for lang, body in _FENCE.findall(text) if lang == language]


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole heading line) up to the next heading."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next(
        (index for index in range(start, len(lines)) if re.match(r"#+ ", lines[index])),
        len(lines),
    )
    return "\n".join(lines[start:end])


def _table_rows(section: str) -> dict[str, list[str]]:
    """First-column key of each table row whose first cell is a code span -> cells."""
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `([A-Za-z_]+)` \|", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in line.strip("|").split("|")]
    return rows


def _hookspecs() -> list[Any]:
    return [
        value
        for name, value in vars(tidings.hookspecs).items()
        if inspect.isfunction(value) and hasattr(value, "tidings_spec")
    ]


# -- the hook reference ------------------------------------------------------------


def test_hooks_page_is_what_gen_hooks_generates() -> None:
    assert _page("hooks.md") == _gen_hooks().render(), (
        "docs/hooks.md is out of date: run .venv/bin/python docs/gen_hooks.py"
    )


def test_hooks_page_shows_every_hookspec_with_its_exact_signature() -> None:
    page = _page("hooks.md")
    specs = _hookspecs()
    assert [spec.__name__ for spec in specs] == ["tidings_register_sinks"]
    for spec in specs:
        assert f"\n## {spec.__name__}\n" in page
        assert f"\ndef {spec.__name__}{inspect.signature(spec)}\n" in page


def test_every_hookspec_is_named_tidings_and_has_a_docstring() -> None:
    for spec in _hookspecs():
        assert spec.__name__.startswith("tidings_"), spec.__name__
        assert (inspect.getdoc(spec) or "").strip(), f"{spec.__name__} has no docstring"


# -- the site builds ---------------------------------------------------------------


def test_mkdocs_build_strict_succeeds(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    site = tmp_path / "site"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    hooks = (site / "hooks" / "index.html").read_text(encoding="utf-8")
    assert 'id="tidings_register_sinks"' in hooks
    for page in ("tutorial", "configuration", "plugins", "testing", "architecture", "migration"):
        assert (site / page / "index.html").is_file(), page


# -- the configuration reference ---------------------------------------------------


@pytest.mark.parametrize("sink_type", ["http", "file", "log", "sqlite"])
def test_configuration_page_lists_exactly_the_sink_options(sink_type: str) -> None:
    factory = tidings.Plugins().sink_factory(sink_type)
    names, required, open_ended = sink_options(factory)
    assert not open_ended
    heading = next(
        line
        for line in _page("configuration.md").splitlines()
        if line.startswith("### ") and f"`{sink_type}` sink" in line
    )
    rows = _table_rows(_section(_page("configuration.md"), heading))
    assert sorted(rows) == sorted(names)
    assert sorted(key for key, cells in rows.items() if cells[2] == "required") == sorted(required)


@pytest.mark.parametrize(
    ("heading", "keys"),
    [
        ("## `[notifier]`", ("shutdown_timeout", "close_at_exit")),
        ("## `[[endpoints]]`", RESERVED_ENDPOINT_KEYS),
        ("### `[endpoints.retry]`", tuple(f.name for f in attrs.fields(tidings.RetryPolicy))),
        ("### `[endpoints.queue]`", tuple(f.name for f in attrs.fields(QueueConfig))),
        ("### `[endpoints.ignore]`", tuple(f.name for f in attrs.fields(IgnoreConfig))),
    ],
)
def test_configuration_page_lists_exactly_the_core_keys(
    heading: str, keys: tuple[str, ...]
) -> None:
    rows = _table_rows(_section(_page("configuration.md"), heading))
    assert sorted(rows) == sorted(keys)


def test_notifier_keys_match_the_config_class() -> None:
    fields = {field.name for field in attrs.fields(NotifierConfig)} - {"endpoints"}
    assert fields == {"shutdown_timeout", "close_at_exit"}


def _check_options(plugins: tidings.Plugins, sink_type: str, options: Mapping[str, Any]) -> None:
    names, required, open_ended = sink_options(plugins.sink_factory(sink_type))
    if not open_ended:
        assert set(options) <= set(names), (sink_type, sorted(set(options) - set(names)))
    assert set(required) <= set(options), (sink_type, sorted(set(required) - set(options)))


def _as_configuration(mapping: dict[str, Any]) -> dict[str, Any] | None:
    """A TOML example as a whole configuration; fragments of one endpoint's tables
    or of ``[notifier]`` get a stand-in endpoint; ``None`` for option fragments."""
    if not mapping or not set(mapping) <= {"notifier", "endpoints"}:
        return None
    endpoints = mapping.get("endpoints")
    if endpoints is None:
        return {**mapping, "endpoints": [{"name": "stand-in", "sink": "log"}]}
    if isinstance(endpoints, dict):
        return {**mapping, "endpoints": [{"name": "stand-in", "sink": "log", **endpoints}]}
    return mapping


def test_every_toml_example_is_valid() -> None:
    plugins = tidings.Plugins()
    checked = 0
    for page in CHECKED_PAGES:
        for block in _blocks(_page(page), "toml"):
            mapping = tomllib.loads(block)
            configuration = _as_configuration(mapping)
            if configuration is None:
                continue
            config = NotifierConfig.from_mapping(configuration, environ=DOC_ENVIRON)
            for endpoint in config.endpoints:
                _check_options(plugins, endpoint.sink, endpoint.options)
                if endpoint.dead_letter is not None:
                    _check_options(plugins, endpoint.dead_letter.type, endpoint.dead_letter.options)
            checked += 1
    # The parser found the examples: a regex gone wrong must not pass vacuously.
    assert checked >= 10


# -- the migration page --------------------------------------------------------------


def _normalised(config: NotifierConfig) -> NotifierConfig:
    """Transport durations as seconds: "500ms" in TOML is 0.5 from the registry."""

    def endpoint(item: Any) -> Any:
        options = dict(item.options)
        for key in ("timeout", "deadline"):
            if key in options:
                options[key] = tidings.parse_duration(options[key], where=key)
        return attrs.evolve(item, options=options)

    return attrs.evolve(config, endpoints=tuple(endpoint(item) for item in config.endpoints))


def test_migration_toml_means_what_tidings_makes_of_the_yaml() -> None:
    page = _page("migration.md")
    (registry_yaml,) = _blocks(page, "yaml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mapping = registry_to_mapping(yaml.safe_load(registry_yaml), source="config.yml")
    assert [(w.category, str(w.message)) for w in caught] == [
        (
            RegistryConfigWarning,
            "config.yml: notifications.events.includereferences means nothing for delivery "
            "(the registry decides what an event contains); ignored",
        ),
        (
            RegistryConfigWarning,
            'endpoint "audit": timeout 2000000000 is nanoseconds (2s); write "2s"',
        ),
    ]
    (shown,) = _blocks(page, "json")
    assert json.loads(shown) == mapping
    native = tomllib.loads(_blocks(page, "toml")[0])
    from_registry = NotifierConfig.from_mapping(mapping, environ={})
    from_toml = NotifierConfig.from_mapping(native, environ={})
    assert _normalised(from_toml) == _normalised(from_registry)


# -- the plugin page -------------------------------------------------------------------


def test_plugin_page_quotes_the_example_plugin_verbatim() -> None:
    page = _page("plugins.md")
    quotes = re.findall(r"<!-- verbatim: (\S+) -->\n```\w*\n(.*?)^```$", page, re.M | re.S)
    assert len(quotes) == 4
    for path, quoted in quotes:
        assert quoted in (ROOT / path).read_text(encoding="utf-8"), path


# -- the testing page ----------------------------------------------------------------


def test_testing_page_examples_pass(tmp_path: Path) -> None:
    examples = [block for block in _blocks(_page("testing.md"), "python") if "def test_" in block]
    assert len(examples) == 2
    files = []
    for number, example in enumerate(examples, start=1):
        path = tmp_path / f"test_docs_example_{number}.py"
        path.write_text(example, encoding="utf-8")
        files.append(str(path))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^8 passed", result.stdout.splitlines()[-1]), result.stdout
