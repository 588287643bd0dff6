"""GRPO (thinkimg.train.grpo): the whole tool loop of TRL's GRPOTrainer through the real HTTP tool server.

A random tiny model never emits a valid call, so ``ScriptedGRPOTrainer`` replaces only the token generation
(``_generate_single_turn``, a private TRL hook: this file is the canary for TRL upgrades) with scripted turns:
a DrawHorizontalLineByY call on the chart, then an answer, right for half of each group and wrong for the other
half. Everything else — prompts with the tool block, parsing the calls, running them on ChartToolEnv over HTTP,
tool images in the next turn and the loss forward, tool-token masking, rewards, the optimizer step — is TRL's code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from trl import GRPOTrainer

from thinkimg.agent.tool_record import current_schemas
from thinkimg.config import ConfigError
from thinkimg.data.dataset import QARecord, write_jsonl
from thinkimg.data.render import render_bar_chart
from thinkimg.server.client import HTTPToolClient
from thinkimg.tools import CachedToolClient
from thinkimg.train.common import TrainError
from thinkimg.train.grpo import GRPOParams, build_trainer, load_params, train_grpo
from thinkimg.train.tiny import build_tiny_model

CHARTS = [({"North": 41.0, "South": 27.0, "East": 58.0}, "South", "27"),
          ({"Apples": 12.0, "Pears": 30.0, "Plums": 19.0}, "Plums", "19")]


class ScriptedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose model turns are scripted (test double for a model that can use the tools)."""

    answers: dict[str, str] = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.turns = 0
        self.captured: list[dict] = []
        self.forward_grids: list[torch.Tensor] = []
        self.model.register_forward_pre_hook(self._record_grid, with_kwargs=True)

    def _record_grid(self, module, args, kwargs):
        if torch.is_grad_enabled() and kwargs.get("image_grid_thw") is not None:
            self.forward_grids.append(kwargs["image_grid_thw"].clone())

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tok = self.processing_class.tokenizer
        response = tok.convert_tokens_to_ids("<tool_response>")
        out = []
        for ids in prompt_ids:
            self.turns += 1
            text = tok.decode(ids)
            if response not in ids:
                turn = '<tool_call>\n{"name": "DrawHorizontalLineByY", "arguments": {"image": "img_0", "y": 60}}\n</tool_call>'
            else:
                question = next(q for q in self.answers if q in text)
                right = self.turns % 2 == 0
                turn = f"<answer>{self.answers[question] if right else 'nothing'}</answer>"
            out.append(tok(turn, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")])
        return out, None

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        self.captured.append(output)
        return output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("grpo-tiny") / "model", seed=0, hidden_size=64, num_layers=2)


@pytest.fixture(scope="module")
def rl_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grpo-data")
    (root / "images").mkdir()
    records = []
    for i, (values, label, answer) in enumerate(CHARTS):
        chart = render_bar_chart(values, title=f"Chart {i}")
        chart.image.save(root / "images" / f"c{i}.png")
        question = f"What is the value of {label}?"
        ScriptedGRPOTrainer.answers[question] = answer
        records.append(QARecord(id=f"q{i}", question=question, answer=answer, question_type="value",
                                chart_kind="bar", image=f"images/c{i}.png"))
    write_jsonl(root / "rl.jsonl", records)
    return root


def _params(tiny: Path, dataset: Path, out: Path, **update) -> GRPOParams:
    values = dict(model=tiny, dataset=dataset, out=out, max_steps=1, num_generations=4, per_device_batch_size=4,
                  max_completion_length=512, max_tool_calls=2, learning_rate=1e-3, save_steps=1, seed=0,
                  tools_config=None)
    values.update(update)
    return GRPOParams(**values)


@pytest.fixture(scope="module")
def scripted_run(tiny, rl_dataset, tool_server, tmp_path_factory):
    """One GRPO step (2 prompts x 4 generations... 1 prompt x 4 per step) through the session's HTTP tool server."""
    root = tmp_path_factory.mktemp("grpo-run")
    client = CachedToolClient(HTTPToolClient(tool_server.url))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        params = _params(tiny, rl_dataset, root / "out", max_steps=2)
        trainer, built = build_trainer(params, trainer_cls=ScriptedGRPOTrainer, client=client, mlflow_run=False)
        before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        trainer.train()
    return params, trainer, before, client


def test_tool_loop_runs_the_tool_over_http_and_its_image_reaches_the_loss_forward(scripted_run):
    params, trainer, _, client = scripted_run
    # 2 steps x 4 rollouts: each made one DrawHorizontalLineByY call and then answered
    history = [e for e in trainer.state.log_history if "tools/call_frequency" in e]
    assert [e["tools/call_frequency"] for e in history] == [1.0, 1.0]
    assert all(e["tools/failure_frequency"] == 0.0 for e in history)
    # the tool image (same size as the chart) is the second image of every rollout in the training forward
    assert trainer.forward_grids, "no training forward saw an image grid"
    for grid in trainer.forward_grids:
        assert grid.shape[0] == 2 * 4 and torch.equal(grid[0::2], grid[1::2])
    # 4 generations of one prompt made the same call on the same image: the server ran it once per prompt
    assert client.misses == 2 and client.hits == 6


def test_tool_result_tokens_are_masked_and_model_turns_are_trained(scripted_run):
    _, trainer, _, _ = scripted_run
    tok = trainer.processing_class.tokenizer
    start, end = tok.convert_tokens_to_ids("<tool_response>"), tok.convert_tokens_to_ids("</tool_response>")
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    for output in trainer.captured:
        ids, mask = output["completion_ids"], output["tool_mask"] * output["completion_mask"]
        for row, row_mask in zip(ids.tolist(), mask.tolist()):
            s, e = row.index(start), row.index(end)
            assert not any(row_mask[s:e + 1]), "tool response tokens carry loss"
            assert image_pad in row[s:e], "the tool image is not inside the tool response"
            trained = tok.decode([t for t, m in zip(row, row_mask) if m])
            assert "DrawHorizontalLineByY" in trained and "<answer>" in trained  # both model turns are trained
            assert "The result is img_1" not in trained


def test_rewards_split_the_group_and_the_step_updates_the_weights(scripted_run):
    _, trainer, before, _ = scripted_run
    history = [e for e in trainer.state.log_history if "rewards/correctness_reward/mean" in e]
    assert [e["rewards/correctness_reward/mean"] for e in history] == [0.5, 0.5]
    assert all(e["rewards/format_reward/mean"] == 1.0 and e["rewards/tool_use_reward/mean"] == 1.0 for e in history)
    changed = [k for k, v in trainer.model.named_parameters() if not torch.equal(v, before[k])]
    assert changed, "the GRPO step left every weight unchanged"


@pytest.mark.parametrize(("scale", "advantage"), [("none", 0.5), ("group", 0.5 / 0.57735)])
def test_scale_rewards_none_keeps_the_reward_differences_unscaled(scale, advantage, tiny, rl_dataset, tool_server,
                                                                  tmp_path):
    """Half the group right (reward 1.3 against 0.3): unscaled, advantages are the rewards less the group mean
    (+-0.5); scaled by the group's standard deviation (0.577), +-0.87."""
    params = _params(tiny, rl_dataset, tmp_path / "out", scale_rewards=scale)
    trainer, _ = build_trainer(params, trainer_cls=ScriptedGRPOTrainer, client=HTTPToolClient(tool_server.url),
                               mlflow_run=False)
    trainer.train()
    (output,) = trainer.captured
    assert sorted(output["advantages"].tolist()) == pytest.approx([-advantage] * 2 + [advantage] * 2, abs=1e-3)


class AnswerOnlyGRPOTrainer(ScriptedGRPOTrainer):
    """Scripted turns that answer at once: no tool image in the batch."""

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        tok = self.processing_class.tokenizer
        self.turns += len(prompt_ids)
        return [tok("<answer>27</answer>", add_special_tokens=False)["input_ids"]
                + [tok.convert_tokens_to_ids("<|im_end|>")] for _ in prompt_ids], None


def test_a_step_of_prompts_of_different_lengths_without_tool_images_runs(tiny, tmp_path):
    """Two prompts a step, one longer than the other, no tool called: the image tokens of the shorter prompt stay
    where the image is (the processor pads on the left like the prompt ids; on the right the forward failed)."""
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    render_bar_chart({"North": 41.0, "South": 27.0}, title="Short").image.save(root / "images" / "a.png")
    questions = ["What is the value of South?",
                 "What is the value of South in the second quarter of the financial year, in millions?"]
    write_jsonl(root / "rl.jsonl", [QARecord(id=f"q{i}", question=q, answer="27", question_type="value",
                                             chart_kind="bar", image="images/a.png") for i, q in enumerate(questions)])
    params = _params(tiny, root, tmp_path / "out", per_device_batch_size=8)
    trainer, _ = build_trainer(params, trainer_cls=AnswerOnlyGRPOTrainer, client=CachedToolClient(_NoTools()),
                               mlflow_run=False)
    trainer.train()
    assert trainer.state.global_step == 1 and trainer.turns == 8
    (output,) = trainer.captured
    pad = trainer.processing_class.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert torch.equal(output["mm_token_type_ids"] == 1, torch.cat([output["prompt_ids"], output["completion_ids"]],
                                                                   dim=1) == pad)


class _NoTools:
    """A ToolClient for rollouts that call no tool."""

    def call(self, *args, **kwargs):
        raise AssertionError("no tool is called in this test")

    def close(self) -> None:
        pass


def test_train_grpo_saves_resumes_and_logs_to_mlflow(tiny, rl_dataset, tool_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    params = _params(tiny, rl_dataset, tmp_path / "out", max_steps=2, tool_server_url=tool_server.url)
    first = train_grpo(params, trainer_cls=ScriptedGRPOTrainer)
    assert first["global_step"] == 2 and first["tool_cache_misses"] == 2
    assert sorted(p.name for p in params.out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert (params.out / "config.json").is_file() and (params.out / "chat_template.jinja").is_file()
    assert json.loads((params.out / "tool_schemas.json").read_text()) == current_schemas()
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(first["mlflow_run_id"])
    assert run.data.params["grpo.num_generations"] == "4"
    for key in ("rewards/correctness_reward/mean", "tools/call_frequency", "tools/failure_frequency", "reward"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2], key
    more = train_grpo(params.model_copy(update={"max_steps": 3}), trainer_cls=ScriptedGRPOTrainer, mlflow_run=False)
    assert Path(more["resumed_from"]).name == "checkpoint-2"
    assert more["global_step"] == 3 and more["steps"] == 1
    state = json.loads((params.out / "checkpoint-3" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "reward" in e] == [1, 2, 3]


def test_params_are_validated_with_the_file_and_field(tmp_path, tiny, rl_dataset):
    path = tmp_path / "params.yaml"
    path.write_text(f"grpo:\n  model: {tiny}\n  num_generations: 3\n  per_device_batch_size: 4\n")
    with pytest.raises(ConfigError, match="params.yaml.*multiple of num_generations"):
        load_params(path)
    path.write_text(f"grpo:\n  model: {tiny}\n  rollout_backend: vllm_server\n")
    with pytest.raises(ConfigError, match="vllm_server_url"):
        load_params(path)
    path.write_text(f"grpo:\n  model: {tiny}\n  rewards: {{correctness: 1, speed: 2}}\n")
    with pytest.raises(ConfigError, match="unknown reward.*speed"):
        load_params(path)
    with pytest.raises(TrainError, match="model folder not found"):
        build_trainer(_params(tmp_path / "nope", rl_dataset, tmp_path / "o"), mlflow_run=False)
    with pytest.raises(TrainError, match="needs vLLM"):
        build_trainer(_params(tiny, rl_dataset, tmp_path / "o", rollout_backend="vllm_colocate"), mlflow_run=False)
    empty = tmp_path / "empty"
    shutil.copytree(rl_dataset, empty)
    (empty / "rl.jsonl").write_text("")
    with pytest.raises(TrainError, match="no questions"):
        build_trainer(_params(tiny, empty, tmp_path / "o"), mlflow_run=False)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU and the gpu extra (vLLM)")
def test_grpo_step_with_vllm_colocate_rollouts(tiny, rl_dataset, tmp_path):
    """GPU path: rollouts generated by vLLM inside the training process (the random tiny model makes no tool call;
    this checks the vLLM backend runs a step end to end and syncs weights)."""
    pytest.importorskip("vllm")
    params = _params(tiny, rl_dataset, tmp_path / "out", rollout_backend="vllm_colocate", max_completion_length=128,
                     vllm_gpu_memory_utilization=0.2, bf16=True)
    summary = train_grpo(params, mlflow_run=False)
    assert summary["global_step"] == 1 and (params.out / "config.json").is_file()
