# The two commands the README promises: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup demo test lint bench native test-native

# compileall: bytecode ahead, as pip writes it for an installed wheel. Each process of a
# command (jiefeng ingest starts three) then loads it instead of compiling jiefeng's modules,
# also where PYTHONDONTWRITEBYTECODE keeps Python from caching it on first import.
$(BIN)/jiefeng: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench,spark,postgres]'
	$(BIN)/python -m compileall -q src
	touch $(BIN)/jiefeng

setup: $(BIN)/jiefeng

demo: setup
	$(BIN)/jiefeng demo

test: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/pytest

# Optional: the fold's hot modules compiled with mypyc (needs a C compiler); see
# src/jiefeng/native.py. `JIEFENG_NATIVE=0` runs the Python sources again.
native: setup
	$(BIN)/pip install -q -e '.[test,bench,spark,postgres,native]'
	$(BIN)/python -m jiefeng.build_native build

# Every test again, on the compiled modules (the check that compiled and Python processes fold
# to the same bytes must run here, not skip).
test-native: native
	JIEFENG_EXPECT_NATIVE=1 $(BIN)/pytest

# The benchmarks measure the compiled hot modules, as bench/README.md reports them: built
# first where a C compiler is at hand; where the build fails, the Python sources run (each
# benchmark prints which). `JIEFENG_NATIVE=0 make bench` measures the sources.
bench: setup
	-$(MAKE) native
	$(BIN)/python bench/run_all.py
