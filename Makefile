# Everything runs from a project-local virtualenv so a fresh machine needs only python3.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: install chromium demo test chaos screenshots bench lint clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/primero-progres demo

# The console's browser tests drive Debian's Chromium through Playwright (never
# `playwright install`, which downloads a browser); installing it needs root, as CI has.
CHROMIUM ?= /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { apt-get update && apt-get install -y chromium; }

# The suite in TEST_WORKERS processes (pytest-xdist), each test file whole in one of them
# (--dist loadfile: a file's session and module fixtures, such as the image build of
# tests/deploy, are set up once). Most tests wait on loopback servers, databases and child
# processes, so 4 workers on CI's 2 cores (measured on a loaded machine: 6 min 48 s, against
# 7 min 41 s with 2 and 8 min 10 s with 3, and 11 min 40 s in one process). Every test has its
# own database, ports and temporary directory. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
test: install chromium
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadfile

# Refresh the console screenshots of docs/console.md from the browser tests.
screenshots: install chromium
	PRIMERO_PROGRES_SCREENSHOTS=$(CURDIR)/docs/console $(VENV)/bin/pytest -q tests/web/console

# tests/chaos: faults and killed worker processes, over DTP and PING, on SQLite and PostgreSQL
# (docs/e2e-faults.md); PRIMERO_PROGRES_CHAOS_SEED=<seed> replays a run. Its four runs go one
# after another, not in parallel: how much gets done under faults depends on the machine's load.
chaos: install
	$(VENV)/bin/pytest -m chaos tests/chaos

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
