# `make demo`: a small comparative sweep and its figures. `make test`: the test suite.
# Both create .venv and install what they need first (torch 2.13.0 where none is present), then the
# project itself, editable: `.venv/bin/nas-harness` and `import harness` work from any folder.
# On Linux they add triton where none is present (a failure only skips tests): the tests run the
# model's Triton kernels on the CPU in Triton's interpreter (PyTorch's CUDA wheels bring their own
# triton; it has no wheels for other systems).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCHMARK ?= nasbench101
DATA ?= data
OUT ?= results/demo

.PHONY: demo test lint venv example

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -c "import triton" 2>/dev/null || [ "$$(uname -s)" != Linux ] || $(PY) -m pip install --quiet "triton>=3.9" \
		|| echo "triton did not install: the tests of the Triton kernels on the CPU will be skipped"
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: $(STAMP)
	$(PY) -m harness demo --benchmark $(BENCHMARK) --data $(DATA) --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -q

example: $(STAMP)
	$(PY) examples/notebook_session.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
