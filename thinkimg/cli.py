"""The ``thinkimg`` command. Sub-commands import their heavy dependencies only when they run."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(help="ThinkIMG: teach vision-language models to think with images.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
tools_app = typer.Typer(help="The vision tools and the tool server.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
data_app = typer.Typer(help="The chart data engine: curate datasets, import benchmarks.", no_args_is_help=True)
app.add_typer(data_app, name="data")
pipeline_app = typer.Typer(help="The pipeline: dvc repro in one MLflow parent run, the evaluate stage, "
                                  "re-evaluation of the champion.", no_args_is_help=True)
train_app = typer.Typer(help="Training: the base model, SFT on trajectories, GRPO with the tools.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(pipeline_app, name="pipeline")

DEFAULT_TOOLS_CONFIG = Path("configs/tools.yaml")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _tools_config(path: Optional[Path]):
    from thinkimg.config import ConfigError, ToolsConfig, load_yaml

    if path is None:
        if not DEFAULT_TOOLS_CONFIG.exists():
            return ToolsConfig()
        path = DEFAULT_TOOLS_CONFIG
    try:
        return load_yaml(path, ToolsConfig)
    except ConfigError as exc:
        _fail(str(exc))


@tools_app.command("serve")
def tools_serve(
    config: Optional[Path] = typer.Option(None, help="Tools config YAML (default: configs/tools.yaml if present)."),
    host: Optional[str] = typer.Option(None, help="Interface to bind (default from config: 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port (default from config: 8765)."),
    fd: Optional[int] = typer.Option(None, hidden=True, help="Serve on an already bound socket (the launcher's)."),
) -> None:
    """Run the tool server until interrupted."""
    import socket

    import uvicorn

    from thinkimg.server.app import create_app

    cfg = _tools_config(config)
    if host is not None:
        cfg.server.host = host
    if port is not None:
        cfg.server.port = port
    try:
        application = create_app(cfg)
    except (ValueError, ImportError) as exc:
        _fail(str(exc))
    uv_config = uvicorn.Config(application, log_level=cfg.server.log_level, access_log=False,
                               host=cfg.server.host, port=cfg.server.port, timeout_keep_alive=30)
    server = uvicorn.Server(uv_config)
    if fd is not None:
        server.run(sockets=[socket.socket(fileno=fd)])
    else:
        typer.echo(f"ThinkIMG tool server on http://{cfg.server.host}:{cfg.server.port} "
                   f"({len(application.state.service.tools)} tools)", err=True)
        server.run()


@tools_app.command("list")
def tools_list(config: Optional[Path] = typer.Option(None, help="Tools config YAML.")) -> None:
    """Print each tool with its arguments."""
    from thinkimg.tools import REGISTRY

    cfg = _tools_config(config)
    for spec in REGISTRY.specs(cfg.tools):
        params = spec["parameters"].get("properties", {})
        args = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in params.items())
        typer.echo(f"{spec['name']}({args})\n    {spec['description']}")


@tools_app.command("call")
def tools_call(
    name: str = typer.Argument(..., help="Tool name, e.g. OCR."),
    image: Path = typer.Argument(..., help="Image file (PNG/JPEG)."),
    args: str = typer.Option("{}", "--args", help="Tool arguments as a JSON object."),
    out: Path = typer.Option(Path("artifacts/tool_outputs"), help="Folder for output images."),
    server: Optional[str] = typer.Option(None, help="Tool server URL; default: run in-process."),
    config: Optional[Path] = typer.Option(None, help="Tools config YAML (in-process only)."),
) -> None:
    """Call one tool on an image file and print its result as JSON."""
    from thinkimg.images import ImageError, load_image
    from thinkimg.tools import InProcessToolClient, ToolError

    try:
        arguments = json.loads(args)
    except json.JSONDecodeError as exc:
        _fail(f"--args is not valid JSON: {exc}")
    if not isinstance(arguments, dict):
        _fail("--args must be a JSON object, e.g. '{\"y\": 120}'")
    try:
        img = load_image(image)
    except ImageError as exc:
        _fail(str(exc))
    if server:
        from thinkimg.server.client import HTTPToolClient

        client = HTTPToolClient(server)
    else:
        client = InProcessToolClient(_tools_config(config))
    try:
        with client:
            result = client.call(name, img, arguments)
    except ToolError as exc:
        _fail(exc.message)
    saved = []
    for i, out_img in enumerate(result.images):
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{image.stem}.{name}.{i}.png"
        out_img.save(path)
        saved.append(str(path))
    typer.echo(json.dumps({"tool": name, "text": result.text, "data": result.data, "images": saved}, indent=2))


@tools_app.command("demo")
def tools_demo(
    config: Optional[Path] = typer.Option(None, help="Tools config YAML."),
    out: Path = typer.Option(Path("artifacts/demo"), help="Folder for the sample charts and tool outputs."),
) -> None:
    """Start the tool server, call every tool on sample charts over HTTP, print the results, stop."""
    from rich.console import Console
    from rich.table import Table

    from thinkimg.data.render import render_bar_chart, render_panel_figure
    from thinkimg.server.client import HTTPToolClient
    from thinkimg.server.launcher import ToolServer
    from thinkimg.tools import ToolError

    cfg = _tools_config(config)
    out.mkdir(parents=True, exist_ok=True)
    chart = render_bar_chart({"2019": 41.0, "2020": 27.5, "2021": 58.0, "2022": 63.0}, title="Online sales",
                             ylabel="Million USD")
    panels = render_panel_figure([("Revenue", {"Q1": 12, "Q2": 18}), ("Costs", {"Q1": 9, "Q2": 7}),
                                  ("Profit", {"Q1": 3, "Q2": 11}), ("Staff", {"Q1": 40, "Q2": 44})])
    chart.image.save(out / "sample_bar.png")
    panels.image.save(out / "sample_panels.png")
    bar = chart.boxes["bars"]["2021"]
    calls = [
        ("OCR", chart.image, {}),
        ("Point", chart.image, {"description": "the bar for 2021"}),
        ("SegmentRegionAroundPoint", chart.image, {"x": (bar[0] + bar[2]) // 2, "y": (bar[1] + bar[3]) // 2}),
        ("DrawHorizontalLineByY", chart.image, {"y": bar[1]}),
        ("DrawVerticalLineByX", chart.image, {"x": (bar[0] + bar[2]) // 2}),
        ("Crop", chart.image, {"box": [bar[0] - 20, bar[1] - 30, bar[2] + 20, bar[3] + 20]}),
        ("ZoomInSubfigure", panels.image, {"description": "Profit"}),
        ("Calculate", chart.image, {"expression": "abs(58 - 27.5)"}),
    ]
    console = Console() if sys.stdout.isatty() else Console(width=160)
    table = Table(title="ThinkIMG tools on sample charts (over HTTP)")
    for col in ("tool", "arguments", "result", "output", "ms"):
        table.add_column(col, overflow="fold")
    failures = 0
    with ToolServer(cfg) as server, HTTPToolClient(server.url) as client:
        console.print(f"tool server up at {server.url}")
        for name, img, arguments in calls:
            start = time.perf_counter()
            try:
                result = client.call(name, img, arguments)
            except ToolError as exc:
                failures += 1
                table.add_row(name, json.dumps(arguments), f"[red]{exc.message}[/red]", "-", "-")
                continue
            ms = (time.perf_counter() - start) * 1000
            outputs = []
            for i, out_img in enumerate(result.images):
                path = out / f"{name}.{i}.png"
                out_img.save(path)
                outputs.append(f"{path} {out_img.width}x{out_img.height}")
            text = result.text if len(result.text) < 300 else result.text[:297] + "..."
            table.add_row(name, json.dumps(arguments), text, "\n".join(outputs) or "-", f"{ms:.0f}")
    console.print(table)
    console.print("tool server stopped")
    if failures:
        _fail(f"{failures} tool call(s) failed", code=1)


@data_app.command("curate")
def data_curate(
    params: Path = typer.Option(Path("params.yaml"), help="Params file; its `data` section sets sizes and seed."),
    out: Optional[Path] = typer.Option(None, help="Dataset folder (default: data.out from the params)."),
    workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (default: data.workers)."),
    force: bool = typer.Option(False, "--force", help="Replace a dataset made with other parameters."),
    metrics: Optional[Path] = typer.Option(None, help="Also write the counts (records, charts, seconds) as JSON here."),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Record params, counts and the card in MLflow."),
) -> None:
    """Render charts, ask questions, verify expert trajectories with the real tools, write sft/rl/eval splits.

    Deterministic for a seed; an interrupted run resumes where it stopped."""
    from thinkimg.config import ConfigError
    from thinkimg.data.curate import CurateError, curate, load_params

    try:
        cfg = load_params(params)
    except ConfigError as exc:
        _fail(str(exc))
    updates = {k: v for k, v in (("out", out), ("workers", workers)) if v is not None}
    cfg = cfg.model_copy(update=updates)
    with _stage_run("curate", mlflow, {"data": cfg.model_dump(mode="json")}) as run:
        try:
            card = curate(cfg, force=force, progress=True)
        except (CurateError, ValueError, OSError) as exc:
            _fail(str(exc))
        if run is not None:
            from thinkimg import tracking

            tracking.log_metrics({f"{split}.{k}": v for split, c in card["counts"].items() for k, v in c.items()})
            tracking.log_metrics({"seconds": card["seconds"]})
            tracking.log_artifacts([cfg.out / "README.md", cfg.out / "card.json"], artifact_path="dataset")
    if metrics is not None:
        _write_json(metrics, {"counts": card["counts"], "seconds": card["seconds"]})
    counts = ", ".join(f"{split} {c['records']}" for split, c in card["counts"].items())
    typer.echo(f"dataset {cfg.out}: {counts} records ({card['seconds']} s); card: {cfg.out / 'README.md'}")


@data_app.command("import")
def data_import(
    fmt: str = typer.Argument(..., help="Benchmark format: chartqa | chartgemma | charxiv."),
    path: Path = typer.Argument(..., help="The benchmark's file or folder (see `thinkimg eval --help` tasks)."),
    out: Path = typer.Option(..., help="Dataset folder to write."),
    split: str = typer.Option("eval", help="Split to write: eval or rl."),
    args: Optional[str] = typer.Option(None, "--args", help="Loader arguments, key=val,... (e.g. split=human)."),
    force: bool = typer.Option(False, "--force", help="Replace what an earlier import of this format wrote there."),
) -> None:
    """Convert a benchmark in its published format into the project's dataset format."""
    from thinkimg.data.importers import BenchmarkImportError, import_benchmark
    from thinkimg.eval.tasks import TaskError, parse_key_values

    try:
        card = import_benchmark(fmt, path, out, split=split, force=force,
                                loader_args=parse_key_values(args, option="--args"))
    except (BenchmarkImportError, TaskError, ValueError, OSError) as exc:
        _fail(str(exc))
    typer.echo(json.dumps(card, indent=2))


def _stage_run(stage: str, enabled: bool, params: dict):
    """An MLflow run for a stage that does not open its own (a child of the pipeline's parent run, if any)."""
    from contextlib import nullcontext

    from thinkimg import tracking

    return tracking.start_run(experiment=stage, run_name=stage, params=params, tags={"thinkimg.stage": stage}) \
        if enabled else nullcontext()


def _write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")


def _train(run, metrics: Optional[Path], curve: Optional[Path] = None) -> None:
    """Run a training stage; its input errors exit 2 naming what was wrong; print (and write) its summary and
    (with ``curve``) its per-step training log as a JSON list (what `dvc plots` draws)."""
    from thinkimg.config import ConfigError
    from thinkimg.train.common import TrainError, is_main_process

    try:
        summary = run()
    except (ConfigError, TrainError, OSError) as exc:
        _fail(str(exc))
    steps = summary.pop("curve", [])
    if is_main_process():
        if metrics is not None:
            _write_json(metrics, summary)
        if curve is not None:
            _write_json(curve, steps)
    typer.echo(json.dumps(summary, indent=2, default=str))


@train_app.command("base-model")
def train_base_model(
    params: Path = typer.Option(Path("params.yaml"), help="Params file; its `model` section."),
    fresh: bool = typer.Option(False, "--fresh", help="Start the warm start over instead of resuming its checkpoint."),
    metrics: Optional[Path] = typer.Option(None, help="Also write the description (and warm-start loss) as JSON here."),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Record params and the description in MLflow."),
) -> None:
    """Build the tiny Qwen2-VL model locally (or check the local checkpoint in model.pretrained)."""
    from thinkimg.train.base import load_params, prepare_base_model

    def run() -> dict:
        cfg = load_params(params)
        with _stage_run("base-model", mlflow, {"model": cfg.model_dump(mode="json")}) as active:
            info = prepare_base_model(cfg, resume=not fresh)
            if active is not None:
                from thinkimg import tracking

                tracking.log_metrics({"parameters": info.get("parameters"),
                                      **{f"pretrain.{k}": v for k, v in (info.get("pretrain") or {}).items()}})
                tracking.log_artifacts([cfg.out / "base_model.json"])
        return info

    _train(run, metrics)


@train_app.command("sft")
def train_sft_command(
    params: Path = typer.Option(Path("params.yaml"), help="Params file; its `sft` section."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of resuming from the last checkpoint."),
    metrics: Optional[Path] = typer.Option(None, help="Also write the summary as JSON here."),
    curve: Optional[Path] = typer.Option(None, help="Write the per-step training log (JSON list) here."),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Log params and per-step metrics to MLflow."),
) -> None:
    """Supervised fine-tuning on the verified tool trajectories of the dataset's sft split."""
    from thinkimg.train.sft import load_params, train_sft

    _train(lambda: train_sft(load_params(params), resume=not fresh, mlflow_run=mlflow), metrics, curve)


@train_app.command("grpo")
def train_grpo_command(
    params: Path = typer.Option(Path("params.yaml"), help="Params file; its `grpo` section."),
    tool_server: Optional[str] = typer.Option(None, help="Tool server URL(s), comma-separated (default: grpo params, "
                                                         "THINKIMG_TOOL_SERVER_URL, or in-process tools)."),
    fresh: bool = typer.Option(False, "--fresh", help="Start over instead of resuming from the last checkpoint."),
    metrics: Optional[Path] = typer.Option(None, help="Also write the summary as JSON here."),
    curve: Optional[Path] = typer.Option(None, help="Write the per-step training log (JSON list) here."),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Log params and per-step metrics to MLflow."),
) -> None:
    """GRPO with the tools in the loop on the dataset's rl split."""
    from thinkimg.train.grpo import load_params, train_grpo

    def run() -> dict:
        cfg = load_params(params)
        if tool_server:
            cfg = cfg.model_copy(update={"tool_server_url": tool_server})
        return train_grpo(cfg, resume=not fresh, mlflow_run=mlflow)

    _train(run, metrics, curve)


@train_app.command("copy-probe")
def train_copy_probe(
    model: Path = typer.Option(..., help="Model folder (a base, SFT or GRPO model)."),
    dataset: Path = typer.Option(..., help="Dataset folder; its sft split is probed."),
    n: int = typer.Option(80, min=1, help="Trajectories probed."),
    seed: int = typer.Option(7, help="Fixes the sample and the made-up words."),
    words: str = typer.Option("pieces", help="Made-up words: pieces (the tokenizer's word pieces) or letters."),
    output: Optional[Path] = typer.Option(None, help="Also write the result as JSON here."),
) -> None:
    """Copying on relabelled training trajectories: labels and numbers copied whole (teacher forced and written
    freely), answers that run on, copied tokens."""
    from thinkimg.train.copy_probe import copy_probe

    if words not in ("pieces", "letters"):
        _fail(f"--words: {words!r} is not one of pieces, letters")

    def run() -> dict:
        return copy_probe(model, dataset, n=n, seed=seed, words=words)

    _train(run, output)


@app.command("eval")
def eval_command(
    model: Optional[str] = typer.Option(None, help="Policy: hf | vllm | openai | scripted."),
    model_args: Optional[str] = typer.Option(None, help="Policy arguments, key=val,key=val (numbers/bools converted)."),
    task: Optional[str] = typer.Option(None, help="Task: charts | chartqa | chartgemma | charxiv | synthetic_value."),
    task_args: Optional[str] = typer.Option(None, help="Task arguments, key=val,... (e.g. path=data/chartqa/test)."),
    max_rounds: Optional[int] = typer.Option(None, min=1, help="Model turns per episode (default 5)."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Episodes in flight (default 8)."),
    output: Optional[Path] = typer.Option(None, help="Results JSONL; summary, ablation and viewer go beside it."),
    ablation: Optional[bool] = typer.Option(None, "--ablation/--no-ablation", help="Run without tools (default on)."),
    viewer: Optional[bool] = typer.Option(None, "--viewer/--no-viewer", help="Write the HTML viewer (default on)."),
    tool_server: Optional[str] = typer.Option(None, help="Tool server URL; default: tools in-process."),
    tools_config: Optional[Path] = typer.Option(None, help="Tools config YAML for in-process tools."),
    mlflow: Optional[bool] = typer.Option(None, "--mlflow/--no-mlflow", help="Record the run in MLflow (default on)."),
    experiment: Optional[str] = typer.Option(None, help="MLflow experiment (default thinkimg-eval)."),
    config: Optional[Path] = typer.Option(None, help="Eval YAML: ThinkIMG shape or OpenThinkIMG list shape; "
                                                     "options given here override it."),
) -> None:
    """Evaluate a policy on a task: resumable results JSONL, no-tool ablation, summary, HTML viewer, MLflow run."""
    from pydantic import ValidationError

    from thinkimg.config import ConfigError, format_validation_error
    from thinkimg.eval.evaluator import _eval_config_models, coerce_value, load_eval_configs
    from thinkimg.eval.tasks import parse_key_values

    try:
        given_model_args = ({k: coerce_value(v) for k, v in parse_key_values(model_args, option="--model-args").items()}
                            if model_args is not None else None)
        given_task_args = parse_key_values(task_args) if task_args is not None else None
    except ValueError as exc:
        _fail(str(exc))
    overrides = {k: v for k, v in {
        "model": model, "model_args": given_model_args, "task": task, "task_args": given_task_args,
        "max_rounds": max_rounds, "batch_size": batch_size, "output": output, "ablation": ablation,
        "viewer": viewer, "tool_server": tool_server, "tools_config": tools_config, "mlflow": mlflow,
        "experiment": experiment}.items() if v is not None}
    EvalConfig, _ = _eval_config_models()
    try:
        if config is not None:
            configs = [EvalConfig.model_validate({**c.model_dump(), **overrides}) for c in load_eval_configs(config)]
        else:
            configs = [EvalConfig.model_validate(overrides)]
    except ConfigError as exc:
        _fail(str(exc))
    except ValidationError as exc:
        _fail(format_validation_error(exc, str(config) if config else "thinkimg eval").replace(
            ": model:", ": --model:").replace(": task:", ": --task:").replace(": output:", ": --output:"))
    for cfg in configs:
        summary = _run_eval(cfg, config)
        typer.echo(json.dumps({k: summary.get(k) for k in (
            "n", "accuracy", "accuracy_without_tools", "valid_format_rate", "calls_per_episode", "tool_failure_rate",
            "results", "viewer", "mlflow_run_id") if k in summary}, indent=2))


def _run_eval(cfg, config_path: Optional[Path]) -> dict:
    from thinkimg.agent.policies import build_policy
    from thinkimg.config import ConfigError
    from thinkimg.eval.evaluator import ResultsError, evaluate, seed_from
    from thinkimg.eval.tasks import TaskError, load_task
    from thinkimg.images import ImageError

    where = f"{config_path}: " if config_path else ""
    try:
        data = load_task(cfg.task, **cfg.task_args)
    except TaskError as exc:
        _fail(f"{where}{exc}")
    try:
        policy = build_policy(cfg.model, **cfg.model_args)
    except (ValueError, TypeError, ImportError, OSError) as exc:
        _fail(f"{where}model {cfg.model!r}: {exc}")
    if cfg.tool_server:
        from thinkimg.server.client import HTTPToolClient

        client = HTTPToolClient(cfg.tool_server)
    else:
        from thinkimg.tools import InProcessToolClient

        client = InProcessToolClient(_tools_config(cfg.tools_config))
    if cfg.resume_from is not None:
        copied = seed_from(cfg.resume_from, cfg.output)
        if copied:
            typer.echo(f"resuming from {cfg.resume_from}: {copied} record(s) copied into {cfg.output}", err=True)
    params = {"policy": cfg.model, "model_args": cfg.model_args, "task": cfg.task, "task_args": cfg.task_args}
    try:
        with client:
            return evaluate(policy, data, output=cfg.output, client=client, max_rounds=cfg.max_rounds,
                            batch_size=cfg.batch_size, metric=data.metric, ablation=cfg.ablation, viewer=cfg.viewer,
                            mlflow=cfg.mlflow, params=params, experiment=cfg.experiment,
                            run_name=f"{cfg.model}:{cfg.task}")
    except (TaskError, ResultsError, ImageError, ConfigError) as exc:
        _fail(str(exc))


def _pipeline(run) -> Any:
    from thinkimg.config import ConfigError
    from thinkimg.pipeline import PipelineError
    from thinkimg.server.launcher import ToolServerError
    from thinkimg.train.common import TrainError

    try:
        return run()
    except (ConfigError, PipelineError, ToolServerError, TrainError, OSError) as exc:
        _fail(str(exc), code=1)


@pipeline_app.command("run")
def pipeline_run(
    stages: Optional[list[str]] = typer.Argument(None, help="Stages to bring up to date (default: all of dvc.yaml)."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file (dvc.yaml's stages read params.yaml)."),
    force: bool = typer.Option(False, "--force", help="Rerun the stages even when DVC finds them up to date."),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="One MLflow parent run, a nested run per stage."),
) -> None:
    """`dvc repro` in one MLflow parent run, with the tool server up for the stages that call tools."""
    from thinkimg.pipeline import STAGES, run_pipeline

    for stage in stages or []:
        if stage not in STAGES:
            _fail(f"unknown stage {stage!r}; the stages are {', '.join(STAGES)}")
    run_id = _pipeline(lambda: run_pipeline(params, targets=stages or [], force=force, mlflow=mlflow))
    typer.echo(f"pipeline done; MLflow parent run: {run_id}" if run_id else "pipeline done")


@pipeline_app.command("evaluate")
def pipeline_evaluate(
    params: Path = typer.Option(Path("params.yaml"), help="Params file; its `eval` and `pipeline` sections."),
    mlflow: bool = typer.Option(True, "--mlflow/--no-mlflow", help="Log the runs and register the candidate."),
) -> None:
    """The evaluate stage: each model on the held-out split with and without tools; register the candidate."""
    from thinkimg.pipeline import evaluate_stage

    metrics = _pipeline(lambda: evaluate_stage(params, mlflow=mlflow))
    typer.echo(json.dumps(metrics, indent=2))


@pipeline_app.command("reevaluate")
def pipeline_reevaluate(
    params: Path = typer.Option(Path("params.yaml"), help="Params file; `eval.reevaluate` lists the tasks."),
    version: Optional[str] = typer.Option(None, help="Model version (default: the one holding the alias)."),
) -> None:
    """Evaluate the registered champion on the configured tasks, each an MLflow run."""
    from thinkimg.pipeline import reevaluate

    summaries = _pipeline(lambda: reevaluate(params, version=version))
    typer.echo(json.dumps({task: {k: s.get(k) for k in ("n", "accuracy", "accuracy_without_tools", "mlflow_run_id")}
                           for task, s in summaries.items()}, indent=2))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
