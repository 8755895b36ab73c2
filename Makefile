PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PORT ?= 8000

.PHONY: venv test check fmt bench demo simulator clean

# The venv is rebuilt when the pinned requirements or the project metadata change.
$(STAMP): pyproject.toml requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
