# ThinkIMG: `make run` = the main job, `make test` = the test suite. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: setup test test-fast run bench serve clean

setup: $(STAMP)

# torch first: on CPU machines torch==2.13.0 is a local CPU wheel; resolved later it would be a CUDA build.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev,tesseract]'
	touch $(STAMP)

test: setup
	$(VENV)/bin/pytest -q

test-fast: setup
	$(VENV)/bin/pytest -q -m "not slow"

# The main job. For now: the tool server and every tool on sample charts (the pipeline issue makes it `dvc repro`).
run: setup
	$(VENV)/bin/thinkimg tools demo --config configs/tools.yaml

serve: setup
	$(VENV)/bin/thinkimg tools serve --config configs/tools.yaml

bench: setup
	$(PY) bench/tool_server.py

clean:
	rm -rf artifacts/demo .pytest_cache
