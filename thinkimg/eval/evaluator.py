"""The evaluator: run a policy on a task, one durable JSON line per finished sample, resumable, with the no-tool
ablation beside the score and (optionally) the run in MLflow.

Files, for ``output = runs/x.jsonl``:

- ``runs/x.jsonl``: one record per sample, appended (flushed + fsynced) the moment its episode finishes:
  ``{"id", "question", "answer" (gold), "prediction", "correct", "question_type", "rounds", "tool_calls",
  "tool_failures", "format_errors", "valid_format", "answered", "answer_seen", "images_dir", "conversation"}``, where
  ``answer_seen`` says a tool reply held the gold answer whole (:func:`thinkimg.eval.metrics.answer_seen`), and
  ``conversation`` is :meth:`Conversation.to_json` with its PNGs under ``runs/images/x/`` (``images_dir`` is that
  folder relative to the JSONL's folder);
- ``runs/x.notools.jsonl``: the same for the no-tool ablation (same policy, tools withheld);
- ``runs/x.summary.json``: :func:`thinkimg.eval.metrics.aggregate` over all records, plus ``accuracy_without_tools``;
- ``runs/x.html``: the trajectory viewer (:mod:`thinkimg.eval.viewer`).

Resume: a rerun reads the JSONL, drops a truncated last line (a run killed mid-write), skips exactly the ids
already recorded and appends the rest; killed and resumed, a run ends with the sample set of a clean run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from thinkimg.agent.policies.base import Policy
from thinkimg.agent.rollout import Episode, rollout
from thinkimg.eval.metrics import aggregate, answer_seen, get_metric

__all__ = ["ResultsError", "evaluate", "paths_for", "read_results", "run_samples"]


class ResultsError(ValueError):
    """A results file cannot be resumed (a corrupt line that is not the last one)."""


def paths_for(output: str | Path) -> dict[str, Path]:
    """The files an evaluation writes next to ``output``."""
    output = Path(output)
    stem = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.stem
    return {
        "results": output,
        "notools": output.with_name(f"{stem}.notools.jsonl"),
        "summary": output.with_name(f"{stem}.summary.json"),
        "viewer": output.with_name(f"{stem}.html"),
    }


def read_results(path: str | Path, *, repair: bool = False) -> list[dict[str, Any]]:
    """Records of a results JSONL (first record per id).

    Every record is written with its newline in one write, so a last line without a newline, or one that does not
    parse, is what a killed run left: it is ignored (and with ``repair=True`` cut off the file, so the next append
    starts on a clean line and that sample simply runs again). A corrupt line before the last is an error."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    good_end = start = 0
    line_no = 0
    while start < len(data):
        line_no += 1
        nl = data.find(b"\n", start)
        if nl == -1:  # truncated last line
            break
        raw = data[start:nl]
        if raw.strip():
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or "id" not in record:
                    raise ValueError("not a record with an 'id'")
            except ValueError as exc:
                if data[nl + 1:].strip():
                    raise ResultsError(f"{path}: line {line_no} is corrupt ({exc}); only a truncated last line is "
                                       "skipped on resume") from None
                break
            rid = str(record["id"])
            if rid not in seen:
                seen.add(rid)
                records.append({**record, "id": rid})
        start = good_end = nl + 1
    if repair and good_end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(good_end)
    return records


def _rows(task_rows: Any, skip: set[str]) -> Iterable[dict[str, Any]]:
    """Rows not in ``skip``; a :class:`TaskData` skips without decoding images."""
    if hasattr(task_rows, "rows"):
        return task_rows.rows(skip=skip)
    if callable(task_rows):
        task_rows = task_rows()
    return (row for row in task_rows if str(row.get("id")) not in skip)


def _record(episode: Episode, score: Callable[[str, str], bool], images_dir: Path, base: Path) -> dict[str, Any]:
    row = episode.row
    gold = "" if row.get("answer") is None else str(row.get("answer"))
    prediction = episode.answer
    conversation = episode.conversation.to_json(images_dir)
    replies = [part["text"] for message in conversation["messages"] if message["role"] == "tool"
               for part in message["content"] if part.get("type") == "text"]
    return {
        "id": str(row["id"]),
        "question": row.get("question"),
        "answer": gold,
        "prediction": prediction,
        "correct": bool(prediction is not None and score(prediction, gold)),
        "question_type": row.get("question_type"),
        "rounds": episode.rounds,
        "tool_calls": episode.tool_calls,
        "tool_failures": episode.tool_failures,
        "format_errors": episode.format_errors,
        "valid_format": episode.valid_format,
        "answered": prediction is not None,
        "answer_seen": answer_seen(gold, replies),
        "images_dir": os.path.relpath(images_dir, base),
        "conversation": conversation,
    }


def run_samples(
    policy: Policy,
    task_rows: Any,
    output: str | Path,
    *,
    client: Any = None,
    max_rounds: int = 5,
    batch_size: int = 8,
    use_tools: bool = True,
    metric: str = "relaxed_accuracy",
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the samples of ``task_rows`` not yet in ``output`` and append each as it finishes; returns all records."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    score = get_metric(metric)
    done = read_results(output, repair=True)
    done_ids = {r["id"] for r in done}
    stem = paths_for(output)["results"].name.removesuffix(".jsonl")
    images_dir = output.parent / "images" / stem
    records = list(done)
    rows = _rows(task_rows, done_ids)
    ids_seen: set[str] = set()

    def unique(rows: Iterable[dict[str, Any]]):
        for row in rows:
            if "id" not in row:
                raise ValueError(f"a task row has no 'id' (keys: {sorted(row)})")
            rid = str(row["id"])
            if rid in ids_seen:
                raise ValueError(f"task rows repeat id {rid!r}")
            ids_seen.add(rid)
            yield {**row, "id": rid}

    with open(output, "a", encoding="utf-8") as fh:
        remaining = len(task_rows) - len(done_ids) if hasattr(task_rows, "__len__") else None
        for episode in rollout(policy, unique(rows), client=client, max_rounds=max_rounds, batch_size=batch_size,
                               use_tools=use_tools, progress="eval" if use_tools else "eval, no tools",
                               total=remaining):
            record = _record(episode, score, images_dir, output.parent)
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            records.append(record)
            if on_record is not None:
                on_record(record)
    return records


def evaluate(
    policy: Policy,
    task_rows: Any,
    *,
    output: str | Path,
    client: Any = None,
    max_rounds: int = 5,
    batch_size: int = 8,
    use_tools: bool = True,
    metric: str = "relaxed_accuracy",
    ablation: bool = True,
    viewer: bool = True,
    mlflow: bool = False,
    params: Mapping[str, Any] | None = None,
    experiment: str = "thinkimg-eval",
    run_name: str | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate ``policy`` on ``task_rows`` (a :class:`~thinkimg.eval.tasks.TaskData`, a list of rows, or a
    callable returning rows); write results, ablation, summary and viewer next to ``output``; return the summary.

    ``params`` (policy name, model args, task, ...) go to MLflow with ``max_rounds``/``batch_size``/``metric``.
    """
    files = paths_for(output)
    records = run_samples(policy, task_rows, files["results"], client=client, max_rounds=max_rounds,
                          batch_size=batch_size, use_tools=use_tools, metric=metric, on_record=on_record)
    summary = aggregate(records)
    summary["metric"] = metric
    summary["use_tools"] = use_tools
    summary["results"] = str(files["results"])
    if ablation and use_tools:
        ablated = run_samples(policy, task_rows, files["notools"], client=client, max_rounds=max_rounds,
                              batch_size=batch_size, use_tools=False, metric=metric)
        ab = aggregate(ablated)
        summary["accuracy_without_tools"] = ab["accuracy"]
        summary["ablation"] = {"n": ab["n"], "accuracy": ab["accuracy"], "by_type": ab["by_type"],
                               "results": str(files["notools"])}
    elif not use_tools:
        summary["accuracy_without_tools"] = summary["accuracy"]
    else:
        summary["accuracy_without_tools"] = None
    files["summary"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if viewer:
        from thinkimg.eval.viewer import write_viewer

        write_viewer(files["results"], files["viewer"], summary=summary)
        summary["viewer"] = str(files["viewer"])
    if mlflow:
        summary["mlflow_run_id"] = _log_mlflow(summary, files, params or {}, max_rounds=max_rounds,
                                               batch_size=batch_size, metric=metric, use_tools=use_tools,
                                               experiment=experiment, run_name=run_name)
    if viewer or mlflow:
        files["summary"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary


def _log_mlflow(summary: dict[str, Any], files: dict[str, Path], params: Mapping[str, Any], *, max_rounds: int,
                batch_size: int, metric: str, use_tools: bool, experiment: str, run_name: str | None) -> str:
    from thinkimg import tracking

    all_params = {**dict(params), "max_rounds": max_rounds, "batch_size": batch_size, "metric": metric,
                  "use_tools": use_tools}
    metrics: dict[str, Any] = {k: summary.get(k) for k in ("accuracy", "accuracy_without_tools", "valid_format_rate",
                                                          "calls_per_episode", "tool_failure_rate", "answer_rate",
                                                          "missed_seen_rate")}
    metrics["n"] = summary.get("n")
    for kind, stats in summary.get("by_type", {}).items():
        metrics[f"accuracy_{kind}"] = stats.get("accuracy")
    tags = {"thinkimg.stage": "eval", "thinkimg.results": str(files["results"].resolve())}
    with tracking.start_run(experiment=experiment, run_name=run_name, params=all_params, tags=tags) as run:
        tracking.log_metrics(metrics)
        tracking.log_artifacts([files["results"], files["notools"], files["summary"], files["viewer"]],
                               artifact_path="eval")
        return run.info.run_id


# ---------------------------------------------------------------------------------------------------- configs


def coerce_value(text: Any) -> Any:
    """A ``--model-args`` value: ``true``/``false`` -> bool, integers, floats, ``none``/``null`` -> None, else text."""
    if not isinstance(text, str):
        return text
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _eval_config_models():
    from pydantic import ConfigDict, Field

    from thinkimg.config import StrictModel

    class EvalConfig(StrictModel):
        """configs/eval/*.yaml (ThinkIMG shape): the ``thinkimg eval`` options as fields."""

        model: str
        model_args: dict[str, Any] = {}
        task: str
        task_args: dict[str, Any] = {}
        max_rounds: int = Field(5, ge=1)
        batch_size: int = Field(8, ge=1)
        output: Path
        #: Copy the records of this results JSONL into ``output`` before resuming (OpenThinkIMG resume_from_ckpt).
        resume_from: Path | None = None
        ablation: bool = True
        viewer: bool = True
        mlflow: bool = True
        experiment: str = "thinkimg-eval"
        tool_server: str | None = None
        tools_config: Path | None = None

    class OTIModelArgs(StrictModel):
        model_config = ConfigDict(extra="allow")
        model: str
        model_args: str | None = None
        batch_size: int | None = Field(None, ge=1)

    class OTITaskArgs(StrictModel):
        model_config = ConfigDict(extra="allow")
        task_name: str
        resume_from_ckpt: str | dict[str, str] | None = None
        save_to_ckpt: str | dict[str, str] | None = None

    class OTIScriptArgs(StrictModel):
        max_rounds: int = Field(5, ge=1)
        batch_size: int | None = Field(None, ge=1)
        output_path: str | None = None
        controller_addr: str | None = None
        verbosity: str | None = None
        seed: int | None = None
        ablation: bool = True
        viewer: bool = True
        mlflow: bool = True

    class OTIEntry(StrictModel):
        model_args: OTIModelArgs
        task_args: OTITaskArgs
        script_args: OTIScriptArgs = OTIScriptArgs()

    return EvalConfig, OTIEntry


#: OpenThinkIMG model names -> our policies (their checkpoints are Hugging Face Qwen2-VL models).
OPENTHINKIMG_MODELS = {"qwen2vl": "hf", "qwen2_vl": "hf", "qwen2_5vl": "hf", "qwen25vl": "hf", "qwen2.5vl": "hf"}


def _ckpt_path(value: str | dict[str, str] | None, task: str, where: str) -> Path | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Path(value)
    if task not in value:
        from thinkimg.config import ConfigError

        raise ConfigError(f"{where}: has no entry for task {task!r} (keys: {', '.join(value)})")
    return Path(value[task])


def load_eval_configs(path: str | Path) -> list[Any]:
    """Read an eval YAML into a list of ``EvalConfig``.

    Two shapes are accepted:

    - ThinkIMG: a mapping with the ``EvalConfig`` fields (``model``, ``model_args``, ``task``, ``task_args``,
      ``max_rounds``, ``batch_size``, ``output``, ...).
    - OpenThinkIMG: a list of ``{model_args: {model, model_args: "k=v,...", ...}, task_args: {task_name,
      resume_from_ckpt, save_to_ckpt, ...}, script_args: {max_rounds, batch_size, controller_addr, ...}}``.
      Mapping: ``model`` -> policy name (``qwen2vl``-style names -> ``hf``); the ``model_args`` string and any other
      ``model_args`` keys -> the policy's arguments (``batch_size`` there is the batch size); ``task_name`` -> task;
      other ``task_args`` keys (e.g. ``path``) -> task arguments; ``save_to_ckpt`` (a path, or ``{task: path}``) ->
      the results JSONL; ``resume_from_ckpt`` (same forms) -> resume from that JSONL (same file: resume in place;
      another file: its records are copied into the output first); without ``save_to_ckpt``, ``output_path`` (a
      ``.jsonl`` file, or a folder receiving ``<task>.jsonl``) is the output; ``controller_addr`` -> tool server URL.
      ``verbosity`` and ``seed`` are accepted and ignored.

    Relative paths are relative to the working directory (as in OpenThinkIMG). Errors name the file and field.
    """
    import yaml
    from pydantic import ValidationError

    from thinkimg.config import ConfigError, format_validation_error

    EvalConfig, OTIEntry = _eval_config_models()
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{line} invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if isinstance(raw, dict):
        try:
            return [EvalConfig.model_validate(raw)]
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, str(path))) from None
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: expected a mapping (ThinkIMG shape) or a non-empty list (OpenThinkIMG shape), "
                          f"got {type(raw).__name__}")
    configs = []
    for i, item in enumerate(raw):
        where = f"{path}: [{i}]"
        try:
            entry = OTIEntry.model_validate(item)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, where)) from None
        from thinkimg.eval.tasks import parse_key_values

        m = entry.model_args
        try:
            model_args = {k: coerce_value(v) for k, v in parse_key_values(m.model_args, option="model_args").items()}
        except ValueError as exc:
            raise ConfigError(f"{where}: model_args.model_args: {exc}") from None
        model_args.update({k: v for k, v in (m.model_extra or {}).items()})
        t = entry.task_args
        task = t.task_name
        output = _ckpt_path(t.save_to_ckpt, task, f"{where}: task_args.save_to_ckpt")
        resume = _ckpt_path(t.resume_from_ckpt, task, f"{where}: task_args.resume_from_ckpt")
        s = entry.script_args
        if output is None and s.output_path:
            out = Path(s.output_path)
            output = out if out.suffix == ".jsonl" else out / f"{task}.jsonl"
        if output is None:
            output = resume
        if output is None:
            raise ConfigError(f"{where}: task_args.save_to_ckpt: missing (or script_args.output_path): "
                              "where should the results go?")
        values = {
            "model": OPENTHINKIMG_MODELS.get(m.model, m.model), "model_args": model_args, "task": task,
            "task_args": dict(t.model_extra or {}), "max_rounds": s.max_rounds,
            "batch_size": s.batch_size or m.batch_size or 8, "output": output,
            "resume_from": resume if resume is not None and resume != output else None,
            "ablation": s.ablation, "viewer": s.viewer, "mlflow": s.mlflow, "tool_server": s.controller_addr,
        }
        try:
            configs.append(EvalConfig.model_validate(values))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, where)) from None
    return configs


def seed_from(resume_from: str | Path, output: str | Path) -> int:
    """Copy the complete records of ``resume_from`` into a new/empty ``output`` (image folders re-pointed);
    returns how many. Does nothing when ``output`` already has records (it is resumed in place)."""
    resume_from, output = Path(resume_from), Path(output)
    if not resume_from.exists():
        return 0
    if read_results(output):
        return 0
    records = read_results(resume_from)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as fh:
        for record in records:
            images = (resume_from.parent / str(record.get("images_dir", "images"))).resolve()
            record = {**record, "images_dir": os.path.relpath(images, output.parent.resolve())}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return len(records)
