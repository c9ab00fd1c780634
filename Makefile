# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# GPU users: `make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast test-deps lint clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[dev,onnx,postgres,slurm]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m experiments.search +study=demo

# The system packages the tests need (PostgreSQL's server binaries): installed as root, else
# one line naming the command to run. `make test` runs it first.
test-deps:
	tests/system-deps.sh

# The whole suite, on every core (its tests are single-threaded processes).
test: $(STAMP) test-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto

# The inner loop: the tests not marked slow (no end-to-end command runs), in about 2 minutes.
test-fast: $(STAMP) test-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean-venv:
	rm -rf $(VENV)
