"""The pipeline end to end on a copy of the repository with small params: `dvc repro` inside one MLflow parent run,
the Prefect flow, the registry and champion alias, DVC skipping what is up to date, and a failing stage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import pipeline_env, update_params
from thinkimg.pipeline import STAGES, EvalParams, PipelineError, evaluate_stage, results_for_model


def _mlflow(repo: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=pipeline_env(repo)["MLFLOW_TRACKING_URI"])


def _runs(client, experiment: str = "thinkimg-pipeline") -> list:
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else []


def _tool_servers() -> set[int]:
    """Pids of running `thinkimg tools serve` processes."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"tools" in cmd and b"serve" in cmd and any(b"thinkimg" in part for part in cmd):
                pids.add(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def harness():
    """One temporary Prefect server for the flow tests of this module."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def in_repo(pipeline_repo, monkeypatch):
    """The pipeline copy as working directory and environment; its params.yaml is restored afterwards."""
    for key, value in pipeline_env(pipeline_repo).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(pipeline_repo)
    params = (pipeline_repo / "params.yaml").read_text()
    yield pipeline_repo
    (pipeline_repo / "params.yaml").write_text(params)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test to use the pipeline copy builds it
def test_dvc_repro_ran_every_stage_in_one_parent_run(in_repo):
    lock = yaml.safe_load((in_repo / "dvc.lock").read_text())
    assert list(lock["stages"]) == list(STAGES)
    table = json.loads((in_repo / "metrics" / "eval.json").read_text())
    assert set(table["models"]) == {"base", "sft", "grpo"} and table["n"] == 4
    for row in table["models"].values():
        assert 0.0 <= row["accuracy"] <= 1.0 and row["n"] == 4 and "accuracy_without_tools" in row
    lines = (in_repo / "metrics" / "eval.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in lines if line.startswith("| ")] == ["| model", "| base", "| sft", "| grpo"]
    curve = json.loads((in_repo / "metrics" / "curves" / "sft.json").read_text())
    assert [p["step"] for p in curve] == [1, 2, 3, 4, 5] and all("loss" in p for p in curve)

    client = _mlflow(in_repo)
    runs = _runs(client)
    parents = [r for r in runs if r.info.run_name == "pipeline"]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == set(STAGES)
    for run in [parent, *children.values()]:
        assert run.data.tags["git.commit"].startswith(subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=in_repo, capture_output=True, text=True).stdout.strip())
        assert run.data.tags["data.md5"].endswith(".dir") and len(run.data.tags["params.hash"]) == 16
    assert children["sft"].data.metrics["loss"] > 0
    assert "base.accuracy" in parent.data.metrics and "grpo.valid_format_rate" in parent.data.metrics
    artifacts = [a.path for a in client.list_artifacts(children["grpo"].info.run_id, "model")]
    assert "model/config.json" in artifacts and "model/model.safetensors" in artifacts

    champion = client.get_model_version_by_alias("thinkimg-policy", "champion")
    assert str(champion.version) == "1" and champion.run_id == children["grpo"].info.run_id
    assert champion.tags["eval.accuracy"] == str(table["models"]["grpo"]["accuracy"])


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test to use the pipeline copy builds it
def test_second_repro_reruns_nothing_fast(in_repo):
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=in_repo, env=pipeline_env(in_repo),
                         capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    assert "Running stage" not in out.stdout
    assert seconds < 5, f"an up-to-date `dvc repro` took {seconds:.1f} s"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test to use the pipeline copy builds it
def test_flow_after_grpo_param_change_reruns_only_grpo_and_evaluate(in_repo, harness):
    from flows.pipeline import train_grpo

    update_params(in_repo, {"grpo": {"learning_rate": 2.0e-4}})
    client = _mlflow(in_repo)
    before = {r.info.run_id for r in _runs(client)}
    outcome = train_grpo(repo=str(in_repo))
    assert outcome == {"curate": "skipped", "base-model": "skipped", "sft": "skipped", "grpo": "ran",
                       "evaluate": "ran"}
    new = [r for r in _runs(client) if r.info.run_id not in before]
    parent = next(r for r in new if r.data.tags.get("thinkimg.stage") == "pipeline")
    assert parent.info.status == "FINISHED"
    assert {r.info.run_name for r in new if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id} == \
        {"grpo", "evaluate"}
    versions = client.search_model_versions("name='thinkimg-policy'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    registry = json.loads((in_repo / "metrics" / "eval.json").read_text())["registry"]
    champion = client.get_model_version_by_alias("thinkimg-policy", "champion")
    # the alias moves only when version 2 scored strictly better than version 1
    v1 = float(client.get_model_version("thinkimg-policy", "1").tags["eval.accuracy"])
    v2 = float(client.get_model_version("thinkimg-policy", "2").tags["eval.accuracy"])
    assert registry["alias_moved"] == (v2 > v1) and str(champion.version) == ("2" if v2 > v1 else "1")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test to use the pipeline copy builds it
def test_reevaluate_flow_scores_the_champion_from_the_registry(in_repo, harness):
    from flows.pipeline import re_evaluate

    client = _mlflow(in_repo)
    champion = client.get_model_version_by_alias("thinkimg-policy", "champion")
    result = re_evaluate(repo=str(in_repo))
    assert result["charts"]["n"] == 3 and 0.0 <= result["charts"]["accuracy"] <= 1.0
    run = client.get_run(result["charts"]["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["model"] == f"models:/thinkimg-policy/{champion.version}"
    # the weights came from the registry (the run's artifacts), not from the stage's output folder
    downloaded = in_repo / "artifacts" / "reevaluate" / f"v{champion.version}"
    assert (downloaded / "config.json").is_file() or any(downloaded.glob("*/config.json"))
    status = subprocess.run([sys.executable, "-m", "dvc", "status"], cwd=in_repo, env=pipeline_env(in_repo),
                            capture_output=True, text=True)
    assert status.returncode == 0 and "changed outs" not in status.stdout, status.stdout  # outputs left alone


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test to use the pipeline copy builds it
def test_failing_stage_fails_flow_and_mlflow_run_and_stops_the_tool_server(in_repo, harness):
    from flows.pipeline import StageFailed, train_grpo

    update_params(in_repo, {"grpo": {"dataset": "artifacts/datasets/missing"}})
    client = _mlflow(in_repo)
    before_runs = {r.info.run_id for r in _runs(client)}
    before_servers = _tool_servers()
    state = train_grpo(repo=str(in_repo), return_state=True)
    assert state.is_failed()
    with pytest.raises(StageFailed, match="grpo"):
        state.result()
    new = [r for r in _runs(client) if r.info.run_id not in before_runs]
    parent = next(r for r in new if r.data.tags.get("thinkimg.stage") == "pipeline")
    assert parent.info.status == "FAILED"
    stage = next(r for r in new if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id)
    assert stage.info.run_name == "grpo" and stage.info.status == "FAILED"
    assert _tool_servers() <= before_servers, "a tool server outlived the failed flow run"


def test_evaluate_stage_names_a_missing_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"eval": {"models": {"grpo": "nowhere"}}}))
    with pytest.raises(PipelineError, match=r"eval\.models\.grpo: nowhere holds no model"):
        evaluate_stage(tmp_path / "params.yaml", mlflow=False)


def test_evaluate_stage_refuses_a_model_trained_with_other_tool_schemas(tmp_path, monkeypatch):
    from thinkimg.agent.tool_record import RECORD, current_schemas

    monkeypatch.chdir(tmp_path)
    model = tmp_path / "sft"
    model.mkdir()
    (model / "config.json").write_text("{}")
    older = [s for s in current_schemas() if s["function"]["name"] != "Calculate"]
    (model / RECORD).write_text(json.dumps(older))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"eval": {"models": {"sft": "sft"}, "candidate": "sft"}}))
    with pytest.raises(PipelineError, match=r"eval\.models\.sft: sft: the model was trained with other tool schemas"
                                            r".*Calculate added"):
        evaluate_stage(tmp_path / "params.yaml", mlflow=False)


def test_eval_params_errors_name_the_field(tmp_path):
    from thinkimg.config import ConfigError, load_yaml

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"eval": {"n": -1}}))
    with pytest.raises(ConfigError, match=r"params.yaml \[eval\]: n"):
        load_yaml(path, EvalParams, section="eval")


def test_evaluation_files_of_other_weights_are_discarded_and_the_same_weights_resume(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"weights v1")
    out = tmp_path / "eval" / "sft.jsonl"

    def write_results():
        out.parent.mkdir(parents=True, exist_ok=True)
        for name in ("sft.jsonl", "sft.notools.jsonl", "sft.summary.json"):
            (out.parent / name).write_text('{"id": "q1"}\n')
        (out.parent / "images" / "sft").mkdir(parents=True, exist_ok=True)

    write_results()  # left by a run that did not say which weights it evaluated
    assert results_for_model(out, model) is True
    assert not out.exists() and not (out.parent / "sft.notools.jsonl").exists()
    assert not (out.parent / "images" / "sft").exists()
    write_results()
    assert results_for_model(out, model) is False and out.read_text() == '{"id": "q1"}\n'  # resumed
    (model / "model.safetensors").write_bytes(b"weights v2")  # retrained
    assert results_for_model(out, model) is True and not out.exists()
    assert json.loads((out.parent / "sft.model.json").read_text())["model"] == str(model)
