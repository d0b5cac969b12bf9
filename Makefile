# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The hot modules setup.py compiles with mypyc (online/compiled.py lists them): edited, they are rebuilt.
COMPILED_SOURCES := $(shell $(PYTHON) -c "import runpy; print(' '.join(m.replace('.', '/') + '.py' for m in runpy.run_path('online/compiled.py')['COMPILED_MODULES']))")
COMPILED := $(VENV)/.compiled

.PHONY: run test lint typecheck bench screenshot clean

$(STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	LIVERECO_COMPILE=0 $(PY) -m pip install -q -e '.[dev]'  # compiled once, below, with the venv's mypy
	@touch $(STAMP)

$(COMPILED): $(STAMP) $(COMPILED_SOURCES)  ## rebuild the compiled modules in place (LIVERECO_COMPILE=0: pure Python)
	@$(PY) -c "import sys; from online.compiled import build_is_current; sys.exit(0 if build_is_current() else 1)" \
		|| $(PY) setup.py -q build_ext --inplace >/dev/null
	@touch $(COMPILED)

run: $(COMPILED)  ## start embedded Redis, the dataflow, the server and a synthetic shop
	$(VENV)/bin/livereco run

test: $(COMPILED)  ## the whole suite: lint, types, doctests, tests against a real Redis
	$(VENV)/bin/ruff check online flows serving tests benchmarks deploy
	$(VENV)/bin/mypy
	$(PY) -m pytest

# The README's headline figures that need nothing outside the repository (a few minutes on 2 cores):
# Redis bytes per user and per item, ingestion and freshness, and the RSC15 quality when ../shared/data
# has it. The long ones (benchmarks.memory's 2M-event soak, benchmarks.serving with wrk,
# benchmarks.build_ab) are run by hand: docs/performance.md and docs/memory.md give their commands.
RSC15 := ../shared/data/rsc15-100k
bench: $(COMPILED)  ## the quick benchmarks behind the README's figures
	$(PY) -m benchmarks.memory --no-soak --redis-users 10000
	$(PY) -m benchmarks.ingest --events 40000 --repeat 2 --seconds 10
	@if [ -d $(RSC15) ]; then $(VENV)/bin/livereco eval $(RSC15); else echo "skipped livereco eval: no $(RSC15)"; fi

screenshot: $(COMPILED)  ## docs/console.png: the web console on a running system, in headless Chromium
	$(PY) -m benchmarks.console_screenshot

lint: $(STAMP)
	$(VENV)/bin/ruff check online flows serving tests benchmarks deploy

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .livereco .pytest_cache .mypy_cache .ruff_cache build *.so online/*.so online/contract/*.so online/native_sources.json
