"""thinkimg.tracking: runs nested under the pipeline's parent run, lineage tags, the model registry and the
champion alias; and the pipeline's small pieces (transient-failure retries, an existing tool server reused)."""

from __future__ import annotations

import subprocess

import pytest

from thinkimg import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv(tracking.PARENT_RUN_ENV, raising=False)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_lineage_tags_name_commit_data_and_params(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("sft: {max_steps: 3}\n")
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef.dir\n  path: data\n")
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    tags = tracking.lineage_tags(tmp_path)
    assert tags["git.commit"] == head and tags["data.md5"] == "0123456789abcdef0123456789abcdef.dir"
    first = tags["params.hash"]
    (tmp_path / "params.yaml").write_text("sft: {max_steps: 4}\n")
    tags = tracking.lineage_tags(tmp_path)
    assert tags["git.commit"] == head + "+dirty" and tags["params.hash"] != first and len(first) == 16


def test_runs_nest_under_the_parent_named_by_the_environment(store, monkeypatch):
    with tracking.start_run(experiment="thinkimg-pipeline", run_name="pipeline") as parent:
        parent_id = parent.info.run_id
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, parent_id)
    with tracking.start_run(experiment="sft", run_name="sft", params={"sft": {"max_steps": 3}}) as child:
        with tracking.start_run(experiment="elsewhere", run_name="inner") as inner:
            pass
    child = store.get_run(child.info.run_id)
    inner = store.get_run(inner.info.run_id)
    assert child.data.tags["mlflow.parentRunId"] == parent_id and child.data.params["sft.max_steps"] == "3"
    assert inner.data.tags["mlflow.parentRunId"] == child.info.run_id
    # both live in the parent's experiment, whatever experiment they asked for
    assert child.info.experiment_id == inner.info.experiment_id == store.get_run(parent_id).info.experiment_id


def test_a_parent_that_does_not_exist_is_a_clear_error(store, monkeypatch):
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, "0" * 32)
    with pytest.raises(RuntimeError, match=r"THINKIMG_MLFLOW_PARENT_RUN_ID=0+: no such MLflow run"):
        with tracking.start_run(run_name="x"):
            pass


def test_a_run_that_raises_ends_failed(store):
    with pytest.raises(ValueError):
        with tracking.start_run(experiment="sft", run_name="sft") as run:
            raise ValueError("boom")
    assert store.get_run(run.info.run_id).info.status == "FAILED"


def test_champion_alias_moves_only_to_a_strictly_better_version(store, tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    versions = []
    for _ in range(4):
        with tracking.start_run(experiment="grpo", run_name="grpo") as run:
            source = tracking.log_model_folder(tmp_path / "model")
        versions.append(tracking.register_model("policy", source, run.info.run_id))
    assert versions == ["1", "2", "3", "4"]
    assert tracking.alias_version("policy", "champion") is None
    assert tracking.promote_if_better("policy", "1", 0.40) is True      # no champion yet
    assert tracking.promote_if_better("policy", "2", 0.30) is False     # worse
    assert tracking.promote_if_better("policy", "3", 0.40) is False     # a tie does not move it
    assert tracking.promote_if_better("policy", "4", 0.55) is True      # better
    champion = tracking.alias_version("policy", "champion")
    assert str(champion.version) == "4" and champion.tags["eval.accuracy"] == "0.55"
    assert store.get_model_version("policy", "2").tags["eval.accuracy"] == "0.3"
    assert champion.source.endswith("/model") and champion.run_id


def test_stage_failures_are_retried_only_when_transient():
    from flows.pipeline import StageFailed

    assert StageFailed("grpo", 1, "ERROR: Unable to acquire lock").transient
    assert StageFailed("grpo", 1, "httpx.ConnectError: [Errno 111] Connection refused").transient
    assert not StageFailed("grpo", 2, "error: artifacts/datasets/missing: not a dataset folder").transient


def test_tool_servers_named_by_the_environment_are_used_not_started(monkeypatch):
    from thinkimg.pipeline import TOOL_SERVER_ENV, tool_server

    monkeypatch.setenv(TOOL_SERVER_ENV, "http://127.0.0.1:9/a,http://127.0.0.1:9/b")
    with tool_server("configs/does-not-matter.yaml") as url:
        assert url == "http://127.0.0.1:9/a,http://127.0.0.1:9/b"
