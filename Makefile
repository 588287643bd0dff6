# ThinkIMG: `make run` = the main job, `make test` = the test suite. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0

.PHONY: setup data curate test test-fast run bench serve up down clean demo

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

# The main job: the whole pipeline on the tiny default (params.yaml): `dvc repro` inside one MLflow parent run, the
# tool server up for the stages that call tools. DVC reruns only what changed; the table lands in metrics/eval.md.
run: setup data
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/thinkimg pipeline run
	@cat metrics/eval.md

serve: setup
	$(VENV)/bin/thinkimg tools serve --config configs/tools.yaml

# The local services, left running: the Prefect server (:4200), the MLflow UI (:5000) on the project's store and the
# deployments train-grpo/train-grpo and re-evaluate/re-evaluate (flows/deploy.py); logs and pids in .prefect/services/.
# `python flows/services.py status` shows them; `make down` stops them.
up: setup
	$(PY) flows/services.py up

down:
	$(PY) flows/services.py down

bench: setup data
	$(PY) bench/tool_server.py
	$(PY) bench/data_engine.py

# The training curves (metrics/curves/*.json) as dvc_plots/index.html, Vega inlined: renders offline.
plots: setup
	$(PY) scripts/plots.py

# The tool server and every tool on sample charts.
demo: setup
	$(VENV)/bin/thinkimg tools demo --config configs/tools.yaml

clean:
	rm -rf artifacts/demo .pytest_cache
