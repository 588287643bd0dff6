"""The pipeline's own pieces: the ``evaluate`` stage (the learning table, the model registry, the champion alias),
the parent MLflow run around ``dvc repro``, and re-evaluation of the champion.

The stages themselves are ``dvc.yaml``'s: ``curate -> base-model -> sft -> grpo -> evaluate``, each a ``thinkimg``
command reading ``params.yaml``. ``thinkimg pipeline run`` opens one parent MLflow run, exports its id
(:data:`thinkimg.tracking.PARENT_RUN_ENV`) so each stage that runs logs a nested run, starts the tool server for the
stages that call tools and always stops it, and runs ``dvc repro`` (DVC decides what reruns).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from pydantic import Field

from thinkimg import tracking
from thinkimg.config import StrictModel, load_yaml
from thinkimg.server.client import connect

__all__ = ["EvalParams", "PipelineError", "PipelineParams", "evaluate_stage", "reevaluate", "run_pipeline",
           "tool_server"]

#: The stages of dvc.yaml, in order.
STAGES = ("curate", "base-model", "sft", "grpo", "evaluate")
#: Environment variable the stages read the tool server's URL from (see thinkimg.server.client).
TOOL_SERVER_ENV = "THINKIMG_TOOL_SERVER_URL"


class PipelineError(RuntimeError):
    """A pipeline step cannot run or failed; the message says which and why."""


class TaskSpec(StrictModel):
    """One evaluation task (see ``thinkimg eval --help``)."""

    task: str = "charts"
    task_args: dict[str, Any] = Field(default_factory=lambda: {"path": "artifacts/datasets/charts", "split": "eval"})


class EvalParams(StrictModel):
    """``eval`` in params.yaml: the evaluate stage and the re-evaluation deployment."""

    dataset: Path = Path("artifacts/datasets/charts")
    split: str = "eval"
    #: Questions evaluated (the first ones of the split); 0: all.
    n: int = Field(0, ge=0)
    #: Models evaluated, in table order; each is a stage's output folder.
    models: dict[str, Path] = Field(default_factory=lambda: {
        "base": Path("artifacts/models/base"), "sft": Path("artifacts/models/sft"),
        "grpo": Path("artifacts/models/grpo")})
    #: The entry of ``models`` that is registered; its training summary holds the MLflow run that logged it.
    candidate: str = "grpo"
    candidate_summary: Path = Path("metrics/grpo.json")
    max_rounds: int = Field(4, ge=1, le=32)
    batch_size: int = Field(8, ge=1, le=1024)
    max_new_tokens: int = Field(128, ge=1, le=8192)
    device: str = "auto"
    #: Results JSONL, ablations and viewers per model.
    out: Path = Path("artifacts/eval")
    #: The learning table: JSON metrics (what `dvc metrics` reads) and the same as Markdown.
    metrics: Path = Path("metrics/eval.json")
    table: Path = Path("metrics/eval.md")
    tools_config: Path = Path("configs/tools.yaml")
    #: What the re-evaluation deployment runs on the champion, and where (outside the evaluate stage's outputs).
    reevaluate: list[TaskSpec] = Field(default_factory=lambda: [TaskSpec()])
    reevaluate_out: Path = Path("artifacts/reevaluate")


class PipelineParams(StrictModel):
    """``pipeline`` in params.yaml: tracking, registry, tool server, retries and the re-evaluation schedule."""

    experiment: str = "thinkimg-pipeline"
    registered_model: str = "thinkimg-policy"
    alias: str = "champion"
    #: Start the tool server for the stages that call tools (grpo, evaluate); off: tools run in-process.
    tool_server: bool = True
    #: Cron of the re-evaluate deployment.
    reevaluate_cron: str = "0 3 * * 1"
    #: Prefect retries of a stage that failed transiently (a held DVC lock, a lost tool server).
    retries: int = Field(1, ge=0, le=10)
    retry_delay_s: float = Field(5.0, ge=0)


def load_params(path: str | Path) -> tuple[EvalParams, PipelineParams]:
    """The ``eval`` and ``pipeline`` sections of a params file (an absent section means its defaults)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        raw = None  # load_yaml below reports it with the file and line
    sections = []
    for name, model in (("eval", EvalParams), ("pipeline", PipelineParams)):
        absent = isinstance(raw, dict) and name not in raw
        sections.append(model() if absent else load_yaml(path, model, section=name))
    return sections[0], sections[1]


def _table(rows: dict[str, dict[str, Any]]) -> str:
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    lines = ["| model | accuracy with tools | without tools | valid format | valid calls | calls / episode "
             "| wrong, answer seen |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        calls = "-" if row.get("calls_per_episode") is None else f"{row['calls_per_episode']:.2f}"
        lines.append(f"| {name} | {pct(row.get('accuracy'))} | {pct(row.get('accuracy_without_tools'))} | "
                     f"{pct(row.get('valid_format_rate'))} | {pct(row.get('valid_call_rate'))} | {calls} | "
                     f"{pct(row.get('missed_seen_rate'))} |")
    return "\n".join(lines) + "\n"


KEYS = ("n", "accuracy", "accuracy_without_tools", "valid_format_rate", "valid_call_rate", "calls_per_episode",
        "tool_failure_rate", "missed_seen_rate")


def model_fingerprint(folder: Path) -> str:
    """sha256 over a model folder's ``config.json`` and weight files (names and bytes)."""
    digest = hashlib.sha256()
    files = sorted([*folder.glob("*.safetensors"), *folder.glob("*.bin")]) + [folder / "config.json"]
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def results_for_model(output: Path, folder: Path) -> bool:
    """Tie the evaluation files at ``output`` to the model in ``folder``: when they were written for other weights
    (or nothing says for which), remove them so the model is evaluated afresh; the same model's resume as usual.
    Returns True when old results were removed."""
    import shutil

    from thinkimg.eval.evaluator import paths_for

    stamp = output.with_name(output.name.removesuffix(".jsonl") + ".model.json")
    fingerprint = model_fingerprint(folder)
    files = paths_for(output)
    same = stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")).get("fingerprint") == fingerprint
    stale = not same and any(path.exists() for path in files.values())
    if not same:
        for path in files.values():
            path.unlink(missing_ok=True)
        for path in (files["results"], files["notools"]):  # the evaluator's image folders: images/<file stem>
            shutil.rmtree(output.parent / "images" / path.name.removesuffix(".jsonl"), ignore_errors=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"model": str(folder), "fingerprint": fingerprint}) + "\n", encoding="utf-8")
    if stale:
        print(f"{output}: results of other weights than {folder}'s; evaluating afresh", file=sys.stderr)
    return stale


def evaluate_stage(params_file: str | Path, *, mlflow: bool = True) -> dict[str, Any]:
    """The ``evaluate`` stage: each model of ``eval.models`` on the held-out split, with tools and without; the
    table written to ``eval.metrics`` / ``eval.table``; the candidate registered as ``pipeline.registered_model``
    and given ``pipeline.alias`` when its accuracy beats the current holder's. Results left by other weights are
    discarded (:func:`results_for_model`); a killed run of the same models resumes. Returns the metrics."""
    from thinkimg.agent.policies.hf import HFPolicy
    from thinkimg.agent.tool_record import ToolBlockMismatch, check_tool_record
    from thinkimg.eval.evaluator import evaluate
    from thinkimg.eval.tasks import load_task

    cfg, pipe = load_params(params_file)
    if cfg.candidate not in cfg.models:
        raise PipelineError(f"{params_file}: eval.candidate: {cfg.candidate!r} is not one of eval.models "
                            f"({', '.join(cfg.models)})")
    for name, folder in cfg.models.items():
        if not (folder / "config.json").is_file():
            raise PipelineError(f"{params_file}: eval.models.{name}: {folder} holds no model (config.json); "
                                "run its stage first")
        try:
            check_tool_record(folder)
        except ToolBlockMismatch as exc:
            raise PipelineError(f"{params_file}: eval.models.{name}: {exc}") from None
    rows = load_task("charts", path=cfg.dataset, split=cfg.split, n=cfg.n)
    if len(rows) == 0:
        raise PipelineError(f"{cfg.dataset}: the {cfg.split} split has no questions")
    results: dict[str, dict[str, Any]] = {}
    run = tracking.start_run(experiment="evaluate", run_name="evaluate", params={"eval": cfg.model_dump(mode="json")},
                             tags={"thinkimg.stage": "evaluate"}) if mlflow else nullcontext()
    with run as active, connect(tools_config=cfg.tools_config) as client:
        for name, folder in cfg.models.items():
            start = time.perf_counter()
            results_for_model(cfg.out / f"{name}.jsonl", folder)
            policy = HFPolicy(str(folder), max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                              device=cfg.device)
            summary = evaluate(policy, rows, output=cfg.out / f"{name}.jsonl", client=client,
                               max_rounds=cfg.max_rounds, batch_size=cfg.batch_size, metric=rows.metric,
                               ablation=True, viewer=True, mlflow=mlflow, experiment="evaluate",
                               run_name=f"evaluate:{name}",
                               params={"policy": "hf", "model": str(folder), "task": "charts", "split": cfg.split})
            results[name] = {**{k: summary.get(k) for k in KEYS},
                             "by_type": {k: v["accuracy"] for k, v in summary.get("by_type", {}).items()},
                             "seconds": round(time.perf_counter() - start, 1)}
        metrics: dict[str, Any] = {"task": "charts", "split": cfg.split, "n": len(rows), "models": results}
        if active is not None:
            tracking.log_metrics({f"{name}.{k}": v for name, row in results.items() for k, v in row.items()
                                  if k in KEYS})
            metrics["registry"] = _register(cfg, pipe, results[cfg.candidate])
    cfg.metrics.parent.mkdir(parents=True, exist_ok=True)
    cfg.metrics.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    cfg.table.parent.mkdir(parents=True, exist_ok=True)
    cfg.table.write_text(_table(results), encoding="utf-8")
    return metrics


def _register(cfg: EvalParams, pipe: PipelineParams, result: dict[str, Any]) -> dict[str, Any] | None:
    """Register the candidate from the MLflow run its training summary names; move the alias if it wins."""
    if not cfg.candidate_summary.is_file():
        raise PipelineError(f"{cfg.candidate_summary}: the {cfg.candidate} stage's summary is missing (eval."
                            "candidate_summary); it names the MLflow run holding the model")
    summary = json.loads(cfg.candidate_summary.read_text(encoding="utf-8"))
    run_id, source = summary.get("mlflow_run_id"), summary.get("model_uri")
    if not run_id or not source:
        print(f"{cfg.candidate_summary}: no mlflow_run_id/model_uri (trained with --no-mlflow or log_model off): "
              "not registered", file=sys.stderr)
        return None
    score = result["accuracy"] or 0.0
    version = tracking.register_model(pipe.registered_model, source, run_id, tags={
        "eval.task": f"charts:{cfg.split}:{result['n']}", "thinkimg.stage": cfg.candidate,
        **tracking.lineage_tags()})
    moved = tracking.promote_if_better(pipe.registered_model, version, score, alias=pipe.alias)
    tracking.log_metrics({"registered_version": int(version), "champion_moved": moved})
    return {"name": pipe.registered_model, "version": int(version), "alias": pipe.alias, "alias_moved": moved}


@contextmanager
def tool_server(tools_config: str | Path, *, log_path: str | Path | None = None) -> Iterator[str]:
    """Run the tool server for the duration of the block and export its URL to child processes
    (``$THINKIMG_TOOL_SERVER_URL``); it is always stopped, and the variable restored, afterwards. When the variable
    already names servers (e.g. replicas from scripts/serve_replicas.sh), those are used and none is started."""
    from thinkimg.server.launcher import ToolServer

    previous = os.environ.get(TOOL_SERVER_ENV)
    if previous:
        yield previous
        return
    with ToolServer(tools_config, log_path=log_path) as server:
        os.environ[TOOL_SERVER_ENV] = server.url
        try:
            yield server.url
        finally:
            if previous is None:
                os.environ.pop(TOOL_SERVER_ENV, None)
            else:
                os.environ[TOOL_SERVER_ENV] = previous


def dvc_repro(targets: Sequence[str] = (), *, single_item: bool = False, force: bool = False,
              cwd: str | Path | None = None) -> None:
    """``dvc repro [targets]`` in a child process (output streamed); a failure raises :class:`PipelineError`."""
    cmd = [sys.executable, "-m", "dvc", "repro", *(["--single-item"] if single_item else []),
           *(["--force"] if force else []), *targets]
    code = subprocess.run(cmd, cwd=cwd).returncode
    if code != 0:
        raise PipelineError(f"`dvc repro {' '.join(targets)}` failed (exit {code}); the stage's output is above")


@contextmanager
def parent_run(params_file: str | Path, *, name: str = "pipeline", mlflow: bool = True) -> Iterator[str | None]:
    """The pipeline's parent MLflow run: its id is exported (``$THINKIMG_MLFLOW_PARENT_RUN_ID``) so the stage
    processes log nested runs; it ends FAILED when the block raises. Yields the run id (None without MLflow)."""
    if not mlflow:
        yield None
        return
    _, pipe = load_params(params_file)
    saved = {key: os.environ.pop(key, None) for key in (tracking.PARENT_RUN_ENV, tracking.PARAMS_ENV)}
    os.environ[tracking.PARAMS_ENV] = str(Path(params_file).resolve())
    try:
        with tracking.start_run(experiment=pipe.experiment, run_name=name, tags={"thinkimg.stage": "pipeline"},
                                params={"params_file": str(params_file)}) as run:
            os.environ[tracking.PARENT_RUN_ENV] = run.info.run_id
            try:
                yield run.info.run_id
            finally:
                os.environ.pop(tracking.PARENT_RUN_ENV, None)
            log_pipeline_results(Path(params_file))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def log_pipeline_results(params_file: Path) -> None:
    """Log the learning table and ``dvc.lock`` to the active (parent) run."""
    cfg, _ = load_params(params_file)
    if cfg.metrics.is_file():
        metrics = json.loads(cfg.metrics.read_text(encoding="utf-8"))
        tracking.log_metrics({f"{name}.{k}": v for name, row in metrics.get("models", {}).items()
                              for k, v in row.items() if k in KEYS})
    tracking.log_artifacts([p for p in (Path("dvc.lock"), cfg.metrics, cfg.table) if p.is_file()],
                           artifact_path="pipeline")


def run_pipeline(params_file: str | Path = "params.yaml", *, targets: Sequence[str] = (), force: bool = False,
                 mlflow: bool = True) -> str | None:
    """``dvc repro`` inside the parent run, with the tool server up (``pipeline.tool_server``); returns the run id."""
    cfg, pipe = load_params(params_file)
    with parent_run(params_file, mlflow=mlflow) as run_id:
        with (tool_server(cfg.tools_config) if pipe.tool_server else nullcontext()):
            dvc_repro(targets, force=force)
    return run_id


def reevaluate(params_file: str | Path, *, version: str | None = None) -> dict[str, Any]:
    """Evaluate the model holding ``pipeline.alias`` (or ``version``) on the ``eval.reevaluate`` tasks, each an
    MLflow run of experiment ``thinkimg-reevaluate`` tagged with the version. Returns the summaries by task."""
    import mlflow as mlflow_lib
    from mlflow import MlflowClient

    from thinkimg.agent.policies.hf import HFPolicy
    from thinkimg.agent.tool_record import ToolBlockMismatch
    from thinkimg.eval.evaluator import evaluate
    from thinkimg.eval.tasks import load_task

    cfg, pipe = load_params(params_file)
    tracking.configure()
    if version is None:
        held = tracking.alias_version(pipe.registered_model, pipe.alias)
        if held is None:
            raise PipelineError(f"no version of {pipe.registered_model!r} holds alias {pipe.alias!r} in "
                                f"{tracking.tracking_uri()}: run the pipeline first")
    else:
        held = MlflowClient().get_model_version(pipe.registered_model, version)
    local = cfg.reevaluate_out / f"v{held.version}"
    if not (local / "config.json").is_file():
        local.mkdir(parents=True, exist_ok=True)
        mlflow_lib.artifacts.download_artifacts(artifact_uri=held.source, dst_path=str(local))
        nested = [p for p in local.iterdir() if p.is_dir() and (p / "config.json").is_file()]
        if not (local / "config.json").is_file() and nested:
            local = nested[0]
    summaries = {}
    with connect(tools_config=cfg.tools_config) as client:
        try:
            policy = HFPolicy(str(local), max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size,
                              device=cfg.device)
        except ToolBlockMismatch as exc:
            raise PipelineError(f"{pipe.registered_model} version {held.version}: {exc}") from None
        for spec in cfg.reevaluate:
            rows = load_task(spec.task, **spec.task_args)
            # one results file per day: a scheduled run starts afresh, a killed one resumes the same day
            out = cfg.reevaluate_out / f"v{held.version}-{spec.task}-{time.strftime('%Y%m%d')}.jsonl"
            summaries[spec.task] = evaluate(
                policy, rows, output=out, client=client, max_rounds=cfg.max_rounds, batch_size=cfg.batch_size,
                metric=rows.metric, ablation=True, viewer=True, mlflow=True, experiment="thinkimg-reevaluate",
                run_name=f"{pipe.registered_model}:v{held.version}:{spec.task}",
                params={"policy": "hf", "model": f"models:/{pipe.registered_model}/{held.version}",
                        "task": spec.task, "task_args": spec.task_args, "alias": pipe.alias})
    return summaries
