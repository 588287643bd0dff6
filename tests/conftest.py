"""Shared fixtures: sample charts with ground truth, a real tool server over HTTP, the real-charts folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from thinkimg.config import ToolsConfig
from thinkimg.data.render import RenderedChart, render_bar_chart, render_panel_figure

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The venv's dvc (beside the running interpreter), analytics off."""
    return subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"}, check=False)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """data/ (the source tables), pulled from the in-repo DVC remote first when a fresh clone lacks it (~2 s)."""
    if not (DATA / "sources.yaml").is_file():
        pull = dvc("pull", "data.dvc", cwd=REPO)
        if pull.returncode != 0:
            pytest.fail(f"data/ is missing and `dvc pull data.dvc` failed:\n{pull.stdout}{pull.stderr}")
    return DATA


def real_charts_dir() -> Path | None:
    """../shared/data/real_charts beside the repository (or $THINKIMG_REAL_CHARTS); None when absent."""
    env = os.environ.get("THINKIMG_REAL_CHARTS")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data" / "real_charts", REPO.parents[1] / "shared" / "data" / "real_charts"]
    for path in candidates:
        if (path / "images").is_dir() and (path / "bboxes").is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def real_charts() -> Path:
    """The real Pew charts folder (images/, bboxes/); the test is skipped, saying why, when it is absent."""
    path = real_charts_dir()
    if path is None:
        pytest.skip("real charts not found: expected ../shared/data/real_charts beside the repository "
                    "(or set THINKIMG_REAL_CHARTS to that folder)")
    return path


@pytest.fixture(scope="session")
def bar_chart() -> RenderedChart:
    """A vertical bar chart with value labels, a title and an axis label."""
    return render_bar_chart({"2019": 41.0, "2020": 27.5, "2021": 58.0, "2022": 63.0}, title="Online sales",
                            ylabel="Million USD")


@pytest.fixture(scope="session")
def panel_figure() -> RenderedChart:
    """A 2x2 figure of titled bar charts."""
    return render_panel_figure([("Revenue", {"Q1": 12, "Q2": 18}), ("Costs", {"Q1": 9, "Q2": 7}),
                                ("Profit", {"Q1": 3, "Q2": 11}), ("Staff", {"Q1": 40, "Q2": 44})])


@pytest.fixture(scope="session")
def tool_server():
    """The real tool server (all tools, default config) as a subprocess on a free 127.0.0.1 port."""
    from thinkimg.server.launcher import ToolServer

    with ToolServer(ToolsConfig()) as server:
        yield server


@pytest.fixture(scope="session")
def http_client(tool_server):
    """An HTTPToolClient connected to the session's tool server."""
    from thinkimg.server.client import HTTPToolClient

    with HTTPToolClient(tool_server.url) as client:
        yield client


# -- SFT datasets for the training tests ---------------------------------------------------------------------------

#: OCR text the training tests use instead of running the engine.
CANNED_OCR = '"Online sales" [60, 8, 220, 30]\n"2019" [70, 300, 100, 318]\n"41" [75, 120, 95, 136]'


def trajectory(client, chart, qid: str, question: str, calls: list[tuple[str, dict]], answer: str,
               ocr_text: str = CANNED_OCR):
    """A trajectory as the rollout loop records it: image tools run for real, OCR's text is ``ocr_text``."""
    from thinkimg.agent.env import ChartToolEnv

    env = ChartToolEnv(client)
    env.reset(image=chart.image, question=question, id=qid)
    conv = env.conversation
    for name, arguments in calls:
        conv.add_assistant("", [{"name": name, "arguments": arguments}])
        if name == "OCR":
            conv.add_tool(name, ocr_text)
        else:
            text = next(p["text"] for p in getattr(env, name)(**arguments) if p["type"] == "text")
            conv.add_tool(name, text, env.calls[-1].output_image)
    conv.add_assistant(f"<answer>{answer}</answer>")
    return conv


def write_sft_dataset(root: Path, conversations) -> Path:
    """An ``sft.jsonl`` in the dataset format from (conversation, answer) pairs, images as PNGs under ``images/``."""
    import json

    from thinkimg.data.dataset import SFTRecord, write_jsonl

    records = []
    for conv, answer in conversations:
        qid = conv.meta["id"]
        files = {}
        for ref, image in conv.images.items():
            files[ref] = f"images/{qid}.{ref}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            image.save(root / files[ref])
        data = {"messages": conv.messages, "images": files, "meta": conv.meta}
        question = conv.messages[0]["content"][1]["text"]
        records.append(SFTRecord(id=qid, question=question, answer=answer, question_type="value",
                                 conversation=json.dumps(data), images=list(files.values())))
    write_jsonl(root / "sft.jsonl", records)
    return root


# ---------------------------------------------------------------------------------------------- the tiny pipeline

#: Params that make the whole pipeline run in a few minutes on 2 cores (applied to a copy of params.yaml).
SMALL_PIPELINE = {
    "data": {"sft_trajectories": 12, "rl_questions": 8, "eval_questions": 6, "chart_kinds": {"bar": 1, "hbar": 1},
             "chunk_charts": 4},
    "model": {"pretrain": {"steps": 5, "seq_len": 128}},
    "sft": {"max_steps": 5, "logging_steps": 1, "save_steps": 5},
    "grpo": {"max_steps": 1, "num_generations": 2, "per_device_batch_size": 2, "max_completion_length": 64,
             "max_tool_calls": 1},
    "eval": {"n": 4, "max_new_tokens": 32, "max_rounds": 2,
             "reevaluate": [{"task": "charts", "task_args": {"path": "artifacts/datasets/charts", "split": "eval",
                                                             "n": 3}}]},
}


def _merge(base: dict, update: dict) -> dict:
    for key, value in update.items():
        base[key] = _merge(base.get(key, {}), value) if isinstance(value, dict) and key != "chart_kinds" else value
    return base


def update_params(repo: Path, update: dict) -> None:
    """Merge ``update`` (nested sections) into ``repo/params.yaml``."""
    import yaml

    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    path.write_text(yaml.safe_dump(_merge(params, update), sort_keys=False), encoding="utf-8")


def pipeline_env(repo: Path) -> dict[str, str]:
    """Environment for commands in a pipeline copy: the venv's `thinkimg`/`dvc` first on PATH, the copy's own
    code (PYTHONPATH), MLflow store and Prefect home, no parent run or tool server inherited."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("THINKIMG_MLFLOW_PARENT_RUN_ID", "THINKIMG_TOOL_SERVER_URL", "THINKIMG_PARAMS")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(repo),
               MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlruns' / 'mlflow.db'}",
               PREFECT_HOME=str(repo / ".prefect"), DVC_NO_ANALYTICS="1")
    return env


@pytest.fixture(scope="session")
def pipeline_repo(tmp_path_factory, data_dir) -> Path:
    """A git copy of this repository (tracked and untracked-not-ignored files, plus data/) with small params, where
    `thinkimg pipeline run` (dvc repro in an MLflow parent run) has completed once: every stage is up to date."""
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    repo.mkdir()
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    import shutil

    for name in files:
        source = REPO / name
        if source.is_file() and not name.startswith("data/"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    shutil.copytree(data_dir, repo / "data")
    update_params(repo, SMALL_PIPELINE)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=repo, check=True)
    run = subprocess.run([sys.executable, "-m", "thinkimg.cli", "pipeline", "run"], cwd=repo, env=pipeline_env(repo),
                         capture_output=True, text=True, timeout=1500)
    if run.returncode != 0:
        pytest.fail(f"the tiny pipeline failed (exit {run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-6000:]}")
    return repo
