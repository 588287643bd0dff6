"""`thinkimg train base-model|sft|grpo`: params sections, clear errors naming the file and field, summaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thinkimg.cli import app
from thinkimg.train.base import ModelParams, load_params, prepare_base_model

runner = CliRunner()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_base_model_builds_the_tiny_model_from_the_params(tmp_path):
    params = _write(tmp_path / "params.yaml", f"model:\n  out: {tmp_path / 'base'}\n  seed: 3\n"
                                              "  tiny: {hidden_size: 64, num_layers: 2}\n")
    result = runner.invoke(app, ["train", "base-model", "--params", str(params)])
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "base" / "base_model.json").read_text())
    assert info["kind"] == "tiny" and info["hidden_size"] == 64 and info["num_layers"] == 2 and info["seed"] == 3
    assert 100_000 < info["parameters"] < 2_000_000
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    assert config["text_config"]["hidden_size"] == 64 and config["text_config"]["num_hidden_layers"] == 2


def test_a_pretrained_checkpoint_is_checked_not_copied(tmp_path):
    tiny = prepare_base_model(ModelParams(out=tmp_path / "real", tiny={"hidden_size": 32, "num_layers": 1,
                                                                      "num_heads": 2, "num_kv_heads": 1}))
    info = prepare_base_model(ModelParams(out=tmp_path / "base", pretrained=Path(tiny["path"])))
    assert info["kind"] == "pretrained" and info["model_type"] == "qwen2_vl"
    assert sorted(p.name for p in (tmp_path / "base").iterdir()) == ["base_model.json"]
    # a template that ignores tools cannot run tool rollouts
    template = Path(tiny["path"]) / "chat_template.jinja"
    template.write_text("{% for m in messages %}{{ m['role'] }}{% endfor %}", encoding="utf-8")
    params = _write(tmp_path / "p.yaml", f"model:\n  out: {tmp_path / 'b2'}\n  pretrained: {tiny['path']}\n")
    result = runner.invoke(app, ["train", "base-model", "--params", str(params)])
    assert result.exit_code == 2 and "chat template ignores tools" in result.output


@pytest.mark.parametrize("section, text, message", [
    ("model", "model:\n  tiny: {hidden_size: 8}\n", "[model]: tiny.hidden_size"),
    ("model", "model:\n  sizes: 3\n", "[model]: sizes"),
    ("sft", "sft:\n  learning_rate: 1e-5\n", "[sft]: model"),
    ("sft", "sft:\n  model: m\n  max_steps: -1\n", "[sft]: max_steps"),
    ("grpo", "grpo:\n  model: m\n  temperature: 0\n", "[grpo]: temperature"),
    ("grpo", "grpo:\n  model: m\n  rollout_backend: tgi\n", "[grpo]: rollout_backend"),
])
def test_params_errors_name_the_file_and_the_field(tmp_path, section, text, message):
    params = _write(tmp_path / "params.yaml", text)
    command = "base-model" if section == "model" else section
    result = runner.invoke(app, ["train", command, "--params", str(params)])
    assert result.exit_code == 2
    assert "params.yaml" in result.output and message in result.output


def test_missing_inputs_are_named(tmp_path):
    params = _write(tmp_path / "params.yaml", f"sft:\n  model: {tmp_path / 'none'}\n"
                                              f"grpo:\n  model: {tmp_path / 'none'}\n")
    for command in ("sft", "grpo"):
        result = runner.invoke(app, ["train", command, "--params", str(params), "--no-mlflow"])
        assert result.exit_code == 2 and "model folder not found" in result.output and "none" in result.output


@pytest.mark.parametrize("name", ["params.yaml", "configs/learning_result.yaml"])
def test_pipeline_params_files_load_and_chain_their_stages(name):
    from thinkimg.data.curate import load_params as data_params
    from thinkimg.pipeline import load_params as eval_params
    from thinkimg.train.grpo import load_params as grpo_params
    from thinkimg.train.sft import load_params as sft_params

    path = Path(__file__).resolve().parents[1] / name
    data, model, sft, grpo = data_params(path), load_params(path), sft_params(path), grpo_params(path)
    evaluation, _ = eval_params(path)
    assert model.pretrain.dataset == sft.dataset == grpo.dataset == evaluation.dataset == data.out
    assert sft.model == model.out and grpo.model == sft.out
    assert evaluation.models == {"base": model.out, "sft": sft.out, "grpo": grpo.out}
    assert grpo.rollout_backend == "hf"
