# Everything runs from a project-local virtualenv so a fresh machine needs only python3.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/primero-progres demo

test: install
	$(VENV)/bin/pytest

# Every benchmark in bench/ prints its figures; none is a pass/fail test.
bench: install
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

# Style (ruff), types (mypy; --strict on mapping, profiles, store, flows) and the layering
# contracts of docs/architecture.md (import-linter); configuration in pyproject.toml.
lint: install
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
