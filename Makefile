# ThinkIMG: `make run` = the main job, `make test` = the test suite. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: setup data curate test test-fast run bench serve clean

setup: $(STAMP)

# torch first: on CPU machines torch==2.13.0 is a local CPU wheel; resolved later it would be a CUDA build.
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev,tesseract,deepspeed]'
	touch $(STAMP)

# data/ (the source tables) is tracked by data.dvc; a fresh clone pulls it from the in-repo remote .dvc/remote.
data: data/sources.yaml

data/sources.yaml: data.dvc | $(STAMP)
	$(VENV)/bin/dvc pull -q data.dvc
	touch $@

# The chart data engine: sft/rl/eval splits under artifacts/datasets/charts (sizes and seed: params.yaml `data`).
curate: setup data
	$(VENV)/bin/thinkimg data curate --params params.yaml

test: setup data
	$(VENV)/bin/pytest -q

test-fast: setup data
	$(VENV)/bin/pytest -q -m "not slow"

# The main job. For now: the data engine's dataset, then the tool server and every tool on sample charts (the
# pipeline issue makes it `dvc repro`).
run: setup data
	$(VENV)/bin/thinkimg data curate --params params.yaml
	$(VENV)/bin/thinkimg tools demo --config configs/tools.yaml

serve: setup
	$(VENV)/bin/thinkimg tools serve --config configs/tools.yaml

bench: setup data
	$(PY) bench/tool_server.py
	$(PY) bench/data_engine.py

clean:
	rm -rf artifacts/demo .pytest_cache
