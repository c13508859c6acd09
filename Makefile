# The two commands the README promises: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup demo test lint bench

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

bench: setup
	$(BIN)/python bench/run_all.py
