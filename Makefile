# The two commands the README promises: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup demo test lint bench native test-native

$(BIN)/jiefeng: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench,spark,postgres]'
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

# The tests of the fold, the store and the pipeline again, on the compiled modules, and the
# check that compiled and Python processes fold to the same bytes.
NATIVE_TESTS = tests/test_native.py tests/test_packing.py tests/test_domain_*.py \
	tests/test_causes.py tests/test_deadline_floor.py tests/test_decisions_are_facts.py \
	tests/test_replay_golden.py tests/test_scenarios.py tests/test_invariants.py \
	tests/test_state_windows.py tests/test_store.py tests/test_pipeline.py \
	tests/test_late_arrivals.py tests/test_backtest.py tests/test_feature_table.py

test-native: native
	JIEFENG_EXPECT_NATIVE=1 $(BIN)/pytest $(NATIVE_TESTS)

bench: setup
	$(BIN)/python bench/run_all.py
