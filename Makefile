# The commands of the README:
#   make book   install into .venv, execute every notebook in ci mode, build _build/html
#   make test   install into .venv, run the unit and integration tests (tiny data; builds no book)
#   make check  after `make book`: the tests that read the executed book, and the full-mode smoke
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Progress bars are for people; logs in CI stay readable without them.
RUN_FLAGS ?= $(if $(CI),--no-progress,)
# `make book JOBS=2` runs two parts of the book side by side (`actionbook run --jobs`). On two cores
# it saved ~4% warm and was slower cold (8bf8829, benchmarks/decisions/0031); since the kernel and
# fitted-transform changes of 2026-12-07 and on more cores: not measured.
JOBS ?= 1
PYTEST_FLAGS ?=

.PHONY: install book run build test check lab clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

# Executes every notebook whose inputs changed (its text, parameters, any file of src/actionbook):
# the book is never stale after a change in src/, and an unchanged notebook (one the test suite
# just executed, say) is not computed twice. `make book RUN_FLAGS=--force` executes them all.
book: install
	$(PY) -m actionbook run --mode ci --jobs $(JOBS) $(RUN_FLAGS)
	$(PY) -m actionbook build --mode ci

# The tiers of the test suite (pytest marker `check`, set in tests/conftest.py): `make test` runs
# everything that needs no executed book; `make check` reads what `make book` executed (a notebook
# whose inputs changed since is executed again first) and runs the full-mode smoke.
test: install
	$(PY) -m pytest -m "not check" $(PYTEST_FLAGS)

check: install
	$(PY) -m pytest -m check $(PYTEST_FLAGS)

lab: install
	$(VENV)/bin/jupyter lab

clean:
	rm -rf _build
