# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  ## start embedded Redis, the dataflow, the server and a synthetic shop
	$(VENV)/bin/livereco run

test: $(STAMP)  ## the whole suite: lint, types, doctests, tests against a real Redis
	$(VENV)/bin/ruff check online flows serving tests benchmarks deploy
	$(VENV)/bin/mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check online flows serving tests benchmarks deploy

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .livereco .pytest_cache .mypy_cache .ruff_cache
