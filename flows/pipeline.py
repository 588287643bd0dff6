"""Prefect flows: one per stage of dvc.yaml, ``train-grpo`` (the whole chain) and ``re-evaluate`` (the champion).

Every stage is a task that runs ``dvc repro --single-item <stage>``, so DVC's cache decides what reruns. A flow run is
one MLflow parent run (each stage that runs logs a nested run); the tool server runs for the stages that call tools
and is always stopped after, whatever happens. Transient failures (a held DVC lock, a tool server that went away)
are retried ``pipeline.retries`` times; any other failure fails the flow run and its MLflow run at once.

    make up && python -m flows.pipeline     # train-grpo once, recorded by the local Prefect server (prefect.toml)
    PREFECT_API_URL= PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90 python -m flows.pipeline
                                            # ... or on a temporary server, without `make up`
    python flows/deploy.py                  # serve the deployments (what `make up` starts)
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from thinkimg.pipeline import STAGES, load_params, parent_run, reevaluate, tool_server

REPO = Path(__file__).resolve().parents[1]
#: The stages that call the tools (the tool server runs around them).
TOOL_STAGES = ("grpo", "evaluate")
#: Output of a failed stage that marks the failure as transient (worth a retry).
TRANSIENT = ("Unable to acquire lock", "ConnectError", "Connection refused", "RemoteProtocolError",
             "ReadTimeout", "tool server")


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero; ``transient`` says whether its output looks retryable."""

    def __init__(self, stage: str, code: int, tail: str):
        self.transient = any(marker in tail for marker in TRANSIENT)
        super().__init__(f"stage {stage!r} failed (exit {code}){' [transient]' if self.transient else ''}:\n{tail}")


def _retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except StageFailed as exc:
        return exc.transient
    except Exception:  # noqa: BLE001 - anything else is not retried
        return False
    return False


@task(name="dvc-stage", retry_condition_fn=_retry_transient)
def dvc_stage(stage: str, force: bool = False) -> str:
    """``dvc repro --single-item <stage>`` in the repository; its output goes to the flow run's log."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", "--single-item", *(["--force"] if force else []), stage]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        logger.info(line.rstrip("\n"))
    code = proc.wait()
    if code != 0:
        raise StageFailed(stage, code, "\n".join(lines[-40:]))
    return "skipped" if any("didn't change, skipping" in line for line in lines) else "ran"


def run_stages(stages: list[str], params: str, force: bool = False, repo: str | None = None) -> dict[str, str]:
    """Run ``stages`` in order inside one MLflow parent run, the tool server up around the tool stages."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; the stages are {', '.join(STAGES)}")
    os.chdir(repo or REPO)
    cfg, pipe = load_params(params)
    stage_task = dvc_stage.with_options(retries=pipe.retries, retry_delay_seconds=pipe.retry_delay_s)
    outcome: dict[str, str] = {}
    ordered = [s for s in STAGES if s in stages]
    with parent_run(params, name="+".join(ordered) if len(ordered) < len(STAGES) else "pipeline"):
        for stage in [s for s in ordered if s not in TOOL_STAGES]:
            outcome[stage] = stage_task(stage, force)
        tool_stages = [s for s in ordered if s in TOOL_STAGES]
        if tool_stages:
            with (tool_server(cfg.tools_config) if pipe.tool_server else nullcontext()):
                for stage in tool_stages:
                    outcome[stage] = stage_task(stage, force)
    return outcome


@flow(name="train-grpo", log_prints=True)
def train_grpo(params: str = "params.yaml", force: bool = False, repo: str | None = None) -> dict[str, str]:
    """The whole pipeline: curate -> base-model -> sft -> grpo -> evaluate (DVC skips what is up to date)."""
    return run_stages(list(STAGES), params, force, repo)


def _stage_flow(stage: str):
    @flow(name=stage, log_prints=True)
    def stage_flow(params: str = "params.yaml", force: bool = False, repo: str | None = None) -> dict[str, str]:
        return run_stages([stage], params, force, repo)

    stage_flow.__doc__ = f"The {stage} stage alone (its inputs must be up to date)."
    return stage_flow


curate, base_model, sft, grpo, evaluate = (_stage_flow(stage) for stage in STAGES)


@task(name="reevaluate-champion")
def reevaluate_task(params: str, version: str | None) -> dict[str, Any]:
    summaries = reevaluate(params, version=version)
    return {name: {k: s.get(k) for k in ("n", "accuracy", "accuracy_without_tools", "mlflow_run_id")}
            for name, s in summaries.items()}


@flow(name="re-evaluate", log_prints=True)
def re_evaluate(params: str = "params.yaml", version: str | None = None, repo: str | None = None) -> dict[str, Any]:
    """Evaluate the registered champion (or ``version``) on the tasks of ``eval.reevaluate``; log to MLflow."""
    os.chdir(repo or REPO)
    cfg, pipe = load_params(params)
    with (tool_server(cfg.tools_config) if pipe.tool_server else nullcontext()):
        return reevaluate_task(params, version)


if __name__ == "__main__":
    print(train_grpo())
