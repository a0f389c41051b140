# `make demo`: a small comparative sweep and its figures. `make test`: the test suite.
# Both create .venv and install what they need first (torch 2.13.0, CPU, where none is present).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCHMARK ?= nasbench101
DATA ?= data
OUT ?= results/demo

.PHONY: demo test lint venv

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

demo: $(STAMP)
	$(PY) -m harness demo --benchmark $(BENCHMARK) --data $(DATA) --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
