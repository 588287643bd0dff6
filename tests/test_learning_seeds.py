"""scripts/learning_seeds.py: the learning result over seeds, run with a stand-in runner that writes a table (the
real one trains for ~35 minutes a seed)."""

from __future__ import annotations

import importlib.util
import sys
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("learning_seeds", REPO / "scripts" / "learning_seeds.py")
seeds_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seeds_script)

# writes the eval table its params name, with numbers that depend on the seed, and counts its runs
FAKE_RUNNER = """set -e
{python} - "$1" <<'PY'
import json, sys, yaml
params = yaml.safe_load(open(sys.argv[1]))
seed = params["sft"]["seed"]
row = {{"accuracy": 0.1 * seed, "accuracy_without_tools": 0.01, "valid_format_rate": 0.9,
       "valid_call_rate": 0.5 + 0.1 * seed}}
json.dump({{"models": {{"base": row, "sft": row}}}}, open(params["eval"]["metrics"], "w"))
open(params["eval"]["metrics"] + ".runs", "a").write(f"{{seed}}\\n")
# the models, each with a checkpoint the copy leaves out
import os
for stage in ("sft", "grpo"):
    os.makedirs(params[stage]["out"] + "/checkpoint-2", exist_ok=True)
    open(params[stage]["out"] + "/model.safetensors", "w").write(f"{{stage}} of seed {{seed}}")
# the episodes: seed N answers N of its 3 lookups and none of its title
with open(params["eval"]["out"] + "/sft.jsonl", "w") as f:
    for i in range(3):
        f.write(json.dumps({{"question_type": "value_lookup", "correct": i < seed}}) + "\\n")
    f.write(json.dumps({{"question_type": "title", "correct": False}}) + "\\n")
PY
""".format(python=sys.executable)


@pytest.fixture
def setup(tmp_path):
    params = {"data": {"seed": 0}, "model": {"seed": 0, "pretrain": {"steps": 3}},
              "sft": {"seed": 0, "out": str(tmp_path / "models" / "sft")},
              "grpo": {"seed": 0, "out": str(tmp_path / "models" / "grpo")}, "eval": {"metrics": str(tmp_path / "learning_result.json"),
                                            "out": str(tmp_path / "eval")}}
    (tmp_path / "eval").mkdir()
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "runner.sh").write_text(FAKE_RUNNER)
    return tmp_path


def _run(tmp: Path, *seeds: int, keep_models: bool = False) -> None:
    seeds_script.main(["--params", str(tmp / "params.yaml"), "--seeds", *map(str, seeds), "--out", str(tmp / "out"),
                       "--table", str(tmp / "table"), "--runner", str(tmp / "runner.sh")]
                      + ["--keep-models"] * keep_models)


def test_each_seed_runs_once_with_every_training_seed_set(setup):
    _run(setup, 1, 2)
    written = yaml.safe_load((setup / "out" / "seed-2" / "params.yaml").read_text())
    assert (written["model"]["seed"], written["model"]["pretrain"]["seed"], written["sft"]["seed"],
            written["grpo"]["seed"]) == (2, 2, 2, 2)
    assert written["data"]["seed"] == 0 and written["model"]["pretrain"]["steps"] == 3
    _run(setup, 1, 2, 3)  # 1 and 2 have their tables: only 3 runs
    runs = (setup / "learning_result.json.runs").read_text().split()
    assert runs == ["1", "2", "3"]


def test_the_table_has_each_seed_and_mean_min_max(setup):
    _run(setup, 1, 2, 3)
    summary = json.loads((setup / "table.json").read_text())
    accuracy = summary["models"]["sft"]["accuracy"]
    assert summary["seeds"] == [1, 2, 3] and accuracy["values"] == pytest.approx([0.1, 0.2, 0.3])
    assert (accuracy["mean"], accuracy["min"], accuracy["max"]) == pytest.approx((0.2, 0.1, 0.3))
    table = (setup / "table.md").read_text()
    assert "| sft | 20.0 % (10.0 - 30.0) | 1.0 % (1.0 - 1.0) | 90.0 % (90.0 - 90.0) | 70.0 % (60.0 - 80.0) |" in table


def test_a_failing_seed_stops_the_sweep_and_says_which(setup):
    (setup / "runner.sh").write_text("exit 3\n")
    with pytest.raises(SystemExit, match=r"seed 5: .* failed \(exit 3"):
        _run(setup, 5)
    assert not (setup / "out" / "seed-5" / "learning_result.json").exists()


def test_each_seeds_episodes_are_kept_and_counted_per_question_type(setup):
    _run(setup, 1, 2)
    assert (setup / "out" / "seed-1" / "eval" / "sft.jsonl").is_file()
    summary = json.loads((setup / "table.json").read_text())
    assert summary["by_type"]["sft"] == {"title": {"right": 0, "n": 2}, "value_lookup": {"right": 3, "n": 6}}
    assert "base" not in summary["by_type"]  # no episodes kept for it
    table = (setup / "table.md").read_text()
    assert "| value_lookup | 3 of 6 |" in table and "| title | 0 of 2 |" in table


def test_a_broken_episode_record_names_its_file_and_line(setup):
    _run(setup, 1)
    (setup / "out" / "seed-1" / "eval" / "sft.jsonl").write_text('{"question_type": "title", "correct": true}\n{oops\n')
    with pytest.raises(SystemExit, match=r"seed-1/eval/sft.jsonl:2: not an episode record"):
        _run(setup, 1)


def test_keep_models_keeps_each_seeds_models_without_checkpoints(setup):
    _run(setup, 1, 2, keep_models=True)
    for seed in (1, 2):
        for stage in ("sft", "grpo"):
            kept = setup / "out" / f"seed-{seed}" / "models" / stage
            assert (kept / "model.safetensors").read_text() == f"{stage} of seed {seed}"
            assert not (kept / "checkpoint-2").exists()
    _run(setup, 3)
    assert not (setup / "out" / "seed-3" / "models").exists()
