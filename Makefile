# Two commands for a fresh clone: `make run` (the demo) and `make test` (the whole suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned so pip takes the CPU build rather than a
# multi-gigabyte CUDA one; override for a GPU machine, e.g. TORCH_SPEC='torch'.
TORCH_SPEC ?= torch==2.13.0
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: run test lint typecheck pytest bench clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP) install --quiet -e ".[test]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/listener demo

test: $(VENV)/.installed-test lint typecheck pytest

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck: $(VENV)/.installed-test
	$(VENV)/bin/mypy listener crawlers models pipelines alerts

pytest: $(VENV)/.installed-test
	$(VENV)/bin/pytest -q

bench: $(VENV)/.installed-test
	$(PY) benchmarks/matcher.py
	$(PY) benchmarks/sentiment.py

clean:
	rm -rf $(VENV) listener-data .pytest_cache .mypy_cache .ruff_cache
