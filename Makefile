# Two commands from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest docs bench registry-tools clean

# The example third-party plugin is installed too: the tests check that it is
# discovered through its entry point and delivers.
$(STAMP): pyproject.toml examples/tidings-example-plugin/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,docs,prometheus]'
	$(BIN)/python -m pip install --quiet -e examples/tidings-example-plugin
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check core plugins tests examples benchmarks
	$(BIN)/ruff format --check core plugins tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy core/tidings plugins/tidings_http plugins/tidings_file plugins/tidings_log \
		examples/tidings-example-plugin/src/tidings_example benchmarks/*.py

# The real docker registry and skopeo, for the registry integration test.
registry-tools:
	@command -v docker-registry >/dev/null && command -v skopeo >/dev/null \
		|| bash .ci/install-registry

pytest: $(STAMP) registry-tools
	$(BIN)/pytest

docs: $(STAMP)
	$(BIN)/python docs/gen_hooks.py --check
	$(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run.py

test: lint typecheck pytest

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache
