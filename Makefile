# The interpreter .venv is made with: PYTHON when given (make test PYTHON=python3.12), else the first of
# python3.11, python3.12, python3.13 and python3 that is Python 3.11 to 3.13 (.ci/find-python says
# which it tried when none is). To switch an existing .venv to another Python: make clean first.
PYTHON ?=
# Where `make test` finds no chromium on PATH (nor Playwright's own): auto installs Debian's as root
# and otherwise stops at once with the command to run; playwright downloads Playwright's Chromium;
# none never installs one (.ci/ensure-browser).
BROWSER_INSTALL ?= auto
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MUTATION_STAMP := $(VENV)/.installed-mutation
# Which mutants `make mutation` tests: mutmut name globs (module path + function), e.g.
# MUTANTS='app.transcript.* app.scrt.*'. Empty means every file listed in [tool.mutmut] only_mutate.
MUTANTS ?=
DEMO_PORT ?= 8000

.PHONY: venv test browser check fmt bench demo simulator mutation clean

# The venv is rebuilt when the pinned requirements or the project metadata change, and made anew when
# it has no working pip or is not Python 3.11 to 3.13.
$(STAMP): pyproject.toml requirements.txt
	@$(BIN)/python -m pip --version >/dev/null 2>&1 && bash .ci/find-python $(BIN)/python >/dev/null 2>&1 \
	  || { python=$$(bash .ci/find-python $(PYTHON)) && rm -rf $(VENV) \
	       && echo "creating $(VENV) with $$python" && $$python -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The `mutation` extra (mutmut) on top of the test install; `make test` never needs it.
$(MUTATION_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,mutation]'
	touch $(MUTATION_STAMP)

# The browser comes first: without one, make test stops at once, before installing anything (except
# with BROWSER_INSTALL=playwright, which needs the venv's Playwright).
test: browser $(STAMP)
	bash .ci/ensure-redis
	$(BIN)/pytest -n 4 --dist load

browser: $(if $(filter playwright,$(BROWSER_INSTALL)),$(STAMP))
	@BROWSER_INSTALL=$(BROWSER_INSTALL) bash .ci/ensure-browser $(BIN)/python

check: $(STAMP)
	$(BIN)/ruff format --check app tests bench
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format app tests bench
	$(BIN)/ruff check --fix app tests bench

bench: $(STAMP)
	$(BIN)/python bench/simulator_fanout.py
	$(BIN)/python bench/delivery.py

demo: $(STAMP)
	$(BIN)/miaw-mcp demo --port $(DEMO_PORT)

simulator: $(STAMP)
	$(BIN)/miaw-mcp simulator --host 127.0.0.1 --port 8081

# Mutation testing (not part of `make test`): mutmut mutates a copy of the code under mutants/,
# runs only the tests that reach each mutated function, one worker at a time, and remembers results
# between runs (delete mutants/ to start over). Config: [tool.mutmut] in pyproject.toml.
mutation: $(MUTATION_STAMP)
	$(BIN)/mutmut run --max-children 1 $(foreach m,$(MUTANTS),'$(m)')
	@echo "Surviving mutants (see one with: $(BIN)/mutmut show NAME):"
	@$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
