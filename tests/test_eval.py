"""Evaluation: task loaders (and their errors), the evaluator (score, ablation, resume after kill -9), the CLI with
both config shapes, and the MLflow run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from thinkimg.agent.policies import build_policy
from thinkimg.cli import app
from thinkimg.eval.evaluator import ResultsError, evaluate, load_eval_configs, paths_for, read_results
from thinkimg.eval.tasks import TaskError, load_task
from thinkimg.tools import InProcessToolClient

REPO = Path(__file__).resolve().parents[1]


def _png(path: Path, color=(200, 30, 30), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------------- tasks


def test_chartqa_reads_the_distributed_layout(tmp_path):
    folder = tmp_path / "test"
    _png(folder / "png" / "a.png")
    _png(folder / "png" / "b.png", size=(50, 20))
    _write_json(folder / "test_human.json", [{"imgname": "a.png", "query": "Max?", "label": "41"},
                                             {"imgname": "b.png", "query": "Which?", "label": "Yes"}])
    _write_json(folder / "test_augmented.json", [{"imgname": "b.png", "query": "Min?", "label": "3"}])
    data = load_task("chartqa", path=str(folder), split="human")
    assert data.metric == "relaxed_accuracy" and len(data) == 2
    rows = list(data)
    assert rows[0]["question"] == "Max?" and rows[0]["answer"] == "41" and rows[0]["question_type"] == "human"
    assert isinstance(rows[1]["image"], Image.Image) and rows[1]["image"].size == (50, 20)
    both = load_task("chartqa", path=str(folder), split="human+augmented")
    assert both.ids() == ["human/0", "human/1", "augmented/0"]
    assert [r["id"] for r in both.rows(skip={"human/1"})] == ["human/0", "augmented/0"]


def test_chartqa_rejects_missing_image_and_bad_record(tmp_path):
    folder = tmp_path / "test"
    _png(folder / "png" / "a.png")
    bad = _write_json(folder / "test_human.json", [{"imgname": "a.png", "query": "q", "label": "1"},
                                                   {"imgname": "gone.png", "query": "q", "label": "1"}])
    with pytest.raises(TaskError, match=r"test_human\.json: record 1: image file not found: .*gone\.png"):
        load_task("chartqa", path=str(folder))
    _write_json(bad, [{"imgname": "a.png", "query": "q", "label": "1"}, {"imgname": "a.png", "label": "1"}])
    with pytest.raises(TaskError, match=r"test_human\.json: record 1: missing field 'query'"):
        load_task("chartqa", path=str(folder))
    with pytest.raises(TaskError, match="no JSON file for split 'augmented'"):
        load_task("chartqa", path=str(folder), split="augmented")


def test_chartgemma_json_and_jsonl(tmp_path):
    _png(tmp_path / "imgs" / "c1.png")
    records = [{"image_path": "imgs/c1.png", "question": "What is X?", "label": "<answer> 12.5 </answer>"},
               {"image_path": "imgs/c1.png", "question": "And Y?", "label": "7", "id": "y"}]
    data = load_task("chartgemma", path=str(_write_json(tmp_path / "cg.json", records)))
    assert [r["answer"] for r in data] == ["12.5", "7"] and data.ids() == ["0", "y"]
    jsonl = tmp_path / "cg.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert load_task("chartgemma", path=str(jsonl)).ids() == ["0", "y"]
    jsonl.write_text(json.dumps(records[0]) + "\n{broken\n")
    with pytest.raises(TaskError, match=r"cg\.jsonl: record 1 \(line 2\) is not valid JSON"):
        load_task("chartgemma", path=str(jsonl))
    _write_json(tmp_path / "cg.json", [records[0], {"image_path": "imgs/none.png", "question": "q", "label": "1"}])
    with pytest.raises(TaskError, match=r"cg\.json: record 1: image file not found"):
        load_task("chartgemma", path=str(tmp_path / "cg.json"))
    _write_json(tmp_path / "cg.json", [records[0], ["not", "an", "object"]])
    with pytest.raises(TaskError, match=r"cg\.json: record 1: expected a JSON object"):
        load_task("chartgemma", path=str(tmp_path / "cg.json"))
    (tmp_path / "imgs" / "bad.png").write_bytes(b"not a png")
    _write_json(tmp_path / "cg.json", [{"image_path": "imgs/bad.png", "question": "q", "label": "1"}])
    with pytest.raises(TaskError, match=r"cg\.json: record 0: cannot read image"):
        load_task("chartgemma", path=str(tmp_path / "cg.json"))


def test_charxiv_reasoning_shape(tmp_path):
    _png(tmp_path / "images" / "3.jpg")
    _png(tmp_path / "figs" / "f.png")
    data = {"0": {"figure_id": 3, "raw_question": "How many lines?", "query": "How many lines? Answer...",
                  "answer": "4", "inst_category": 3},
            "1": {"figure_path": "figs/f.png", "question": "Which color?", "answer": "red"}}
    task = load_task("charxiv", path=str(_write_json(tmp_path / "reasoning_val.json", data)))
    rows = list(task)
    assert task.ids() == ["0", "1"] and rows[0]["question_type"] == "number_in_chart"
    assert rows[0]["question"].startswith("How many lines? Answer") and rows[1]["answer"] == "red"
    data["1"] = {"figure_id": 99, "question": "q", "answer": "a"}
    _write_json(tmp_path / "reasoning_val.json", data)
    with pytest.raises(TaskError, match=r"reasoning_val\.json: record 1 \('1'\): image file not found"):
        load_task("charxiv", path=str(tmp_path / "reasoning_val.json"))


def test_task_arguments_are_checked_and_synthetic_is_seeded():
    with pytest.raises(TaskError, match="unknown task 'nope'"):
        load_task("nope")
    with pytest.raises(TaskError, match="unknown argument.*bogus"):
        load_task("synthetic_value", bogus="1")
    with pytest.raises(TaskError, match="missing argument.*path"):
        load_task("chartgemma")
    with pytest.raises(TaskError, match="n='x' is not a valid int"):
        load_task("synthetic_value", n="x")
    a, b = load_task("synthetic_value", n="3", seed="5"), load_task("synthetic_value", n=3, seed=5)
    assert [(r.question, r.answer) for r in a.records] == [(r.question, r.answer) for r in b.records]
    assert a.ids() == ["synthetic_value/5/0", "synthetic_value/5/1", "synthetic_value/5/2"]


def test_read_results_skips_only_a_truncated_last_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "a"}\n{"id": "c", "conv')
    assert [r["id"] for r in read_results(path, repair=True)] == ["a", "b"]
    assert path.read_text().endswith('{"id": "a"}\n')  # the partial line was cut off
    path.write_text('{"id": "a"}\n{oops\n{"id": "b"}\n')
    with pytest.raises(ResultsError, match="line 2 is corrupt"):
        read_results(path)


# ---------------------------------------------------------------------------------------------------- evaluator


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory):
    """The scripted expert on 8 synthetic charts with in-process tools, ablation, viewer and an MLflow run
    recorded in a temporary store."""
    root = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        data = load_task("synthetic_value", n=8, seed=1)
        summary = evaluate(build_policy("scripted", script="value_lookup"), data, output=root / "out" / "r.jsonl",
                           client=InProcessToolClient(), max_rounds=3, batch_size=4, metric=data.metric,
                           mlflow=True, params={"policy": "scripted", "model_args": {"script": "value_lookup"},
                                                "task": "synthetic_value"})
    return root, data, summary


def test_scripted_eval_scores_and_ablation_scores_lower(scripted_run):
    root, data, summary = scripted_run
    assert summary["n"] == 8 and summary["accuracy"] >= 0.9
    assert summary["accuracy_without_tools"] < summary["accuracy"]
    assert summary["by_type"]["value_lookup"]["n"] == 8 and summary["valid_format_rate"] == 1.0
    files = paths_for(root / "out" / "r.jsonl")
    assert json.loads(files["summary"].read_text())["accuracy"] == summary["accuracy"]
    records = read_results(files["results"])
    assert sorted(r["id"] for r in records) == sorted(data.ids())
    rec = records[0]
    assert set(rec) >= {"id", "question", "answer", "prediction", "correct", "question_type", "rounds", "tool_calls",
                        "tool_failures", "valid_format", "answer_seen", "conversation"}
    # the scripted expert copies its answer from Point's quote: every right answer was seen in a reply
    assert all(r["answer_seen"] for r in records if r["correct"]) and summary["missed_seen_rate"] == pytest.approx(
        sum(r["answer_seen"] and not r["correct"] for r in records) / 8)
    images_dir = files["results"].parent / rec["images_dir"]
    assert images_dir.parent.name == "images"
    assert all((images_dir / name).is_file() for name in rec["conversation"]["images"].values())
    assert len(read_results(files["notools"])) == 8 and files["viewer"].is_file()


def test_mlflow_run_has_params_metrics_and_artifacts(scripted_run):
    from mlflow.tracking import MlflowClient

    root, _, summary = scripted_run
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(summary["mlflow_run_id"])
    metrics, params = run.data.metrics, run.data.params
    assert metrics["accuracy"] == pytest.approx(summary["accuracy"])
    assert metrics["accuracy_without_tools"] == pytest.approx(summary["accuracy_without_tools"])
    for key in ("valid_format_rate", "calls_per_episode", "tool_failure_rate", "accuracy_value_lookup"):
        assert key in metrics
    assert params["policy"] == "scripted" and params["task"] == "synthetic_value"
    assert params["model_args.script"] == "value_lookup" and params["max_rounds"] == "3" and params["batch_size"] == "4"
    names = {a.path for a in client.list_artifacts(run.info.run_id, "eval")}
    assert names == {"eval/r.jsonl", "eval/r.notools.jsonl", "eval/r.summary.json", "eval/r.html"}
    assert str(root) in run.info.artifact_uri  # artifacts beside the store, not in the working directory


# ---------------------------------------------------------------------------------------------------- resume


def _cli(*args: str, env: dict | None = None) -> list[str]:
    return [sys.executable, "-m", "thinkimg.cli", "eval", *args]


def _lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_kill_9_then_resume_gives_the_clean_sample_set(tmp_path):
    out = tmp_path / "run" / "r.jsonl"
    n = 10
    args = _cli("--model", "scripted", "--task", "synthetic_value", "--task-args", f"n={n},seed=2",
                "--batch-size", "1", "--max-rounds", "3", "--output", str(out), "--no-ablation", "--no-viewer",
                "--no-mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _lines(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling the file, not synchronising by sleeping
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    killed_at = _lines(out)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    assert 2 <= killed_at < n, "the run finished before it could be killed"
    with open(out, "ab") as fh:  # a kill in the middle of a write leaves half a line
        fh.write(b'{"id": "synthetic_value/2/9", "question": "What is')
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [r["id"] for r in lines]
    assert len(ids) == len(set(ids)) == n  # no duplicate, none missing
    assert set(ids) == set(load_task("synthetic_value", n=n, seed=2).ids())  # a clean run's sample set
    assert sum(r["correct"] for r in lines) >= 0.9 * n


# ---------------------------------------------------------------------------------------------------- CLI + configs


def test_openthinkimg_config_runs_via_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    # an earlier run's checkpoint to resume from (one sample done)
    seed_out = tmp_path / "old" / "ckpt.jsonl"
    evaluate(build_policy("scripted"), load_task("synthetic_value", n=1, seed=4), output=seed_out,
             client=InProcessToolClient(), max_rounds=3, ablation=False, viewer=False)
    config = tmp_path / "oti.yaml"
    config.write_text(
        "- model_args:\n    model: scripted\n    model_args: script=value_lookup\n    batch_size: 2\n"
        "  task_args:\n    task_name: synthetic_value\n    n: 3\n    seed: 4\n"
        "    resume_from_ckpt:\n      synthetic_value: old/ckpt.jsonl\n"
        "    save_to_ckpt:\n      synthetic_value: new/ckpt.jsonl\n"
        "  script_args:\n    max_rounds: 3\n    verbosity: INFO\n    ablation: false\n    mlflow: false\n")
    (cfg,) = load_eval_configs(config)
    assert (cfg.model, cfg.task, cfg.batch_size, cfg.max_rounds) == ("scripted", "synthetic_value", 2, 3)
    assert cfg.output == Path("new/ckpt.jsonl") and cfg.resume_from == Path("old/ckpt.jsonl")
    assert cfg.task_args == {"n": 3, "seed": 4} and cfg.model_args == {"script": "value_lookup"}
    result = CliRunner().invoke(app, ["eval", "--config", str(config)])
    assert result.exit_code == 0, result.output
    records = read_results(tmp_path / "new" / "ckpt.jsonl")
    assert sorted(r["id"] for r in records) == [f"synthetic_value/4/{i}" for i in range(3)]
    copied = records[0]  # the resumed record keeps pointing at its images
    images = tmp_path / "new" / copied["images_dir"]
    assert all((images / f).is_file() for f in copied["conversation"]["images"].values())
    assert json.loads(result.output[result.output.index("{"):])["n"] == 3


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("model: scripted\ntask: synthetic_value\nmax_rounds: 0\n", "max_rounds: Input should be greater"),
        ("model: scripted\ntask: synthetic_value\noutput: r.jsonl\nbogus: 1\n", "bogus: Extra inputs"),
        ("- model_args: {model: scripted}\n  task_args: {save_to_ckpt: r.jsonl}\n",
         "[0]: task_args.task_name: Field required"),
        ("- model_args: {model: scripted}\n  task_args: {task_name: synthetic_value}\n",
         "[0]: task_args.save_to_ckpt"),
        ("model: scripted\ntask: synthetic_value\noutput: r.jsonl\ntask_args: {n: many}\n",
         "n='many' is not a valid int"),
        ("model: [unclosed\n", "invalid YAML"),
        ("42\n", "expected a mapping"),
    ],
)
def test_bad_configs_exit_2_naming_file_and_field(tmp_path, text, fragment):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = CliRunner().invoke(app, ["eval", "--config", str(config), "--no-mlflow"])
    assert result.exit_code == 2, result.output
    assert "bad.yaml" in result.output and fragment in result.output, result.output


def test_cli_flags_errors_exit_2(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--model", "scripted", "--task", "synthetic_value"])
    assert result.exit_code == 2 and "--output: Field required" in result.output
    result = runner.invoke(app, ["eval", "--model", "scripted", "--task", "synthetic_value", "--task-args", "n",
                                 "--output", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 2 and "--task-args: 'n' is not key=value" in result.output


def test_example_configs_parse():
    for path in sorted((REPO / "configs" / "eval").glob("*.yaml")):
        assert load_eval_configs(path), path
