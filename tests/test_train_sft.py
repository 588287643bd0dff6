"""SFT (thinkimg.train.sft): rendering identical to GRPO's, assistant-only labels, tool images in the forward pass,
training that lowers the loss, resume, MLflow logging, and a saved model the HF policy loads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import trajectory, write_sft_dataset

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.env import ChartToolEnv
from thinkimg.agent.policies.hf import conversation_images
from thinkimg.agent.policies.hf_processor import load_processor
from thinkimg.agent.rollout import tool_schemas
from thinkimg.config import ConfigError
from thinkimg.data.dataset import load_conversation, read_split
from thinkimg.data.render import render_bar_chart
from thinkimg.tools import InProcessToolClient
from thinkimg.train.chat import SFTRenderer, render, tool_system_text
from thinkimg.train.common import TrainError
from thinkimg.train.sft import SFTParams, load_params, sft_dataset, train_sft
from thinkimg.train.tiny import build_tiny_model, trl_chat_template

VISION_TOKENS = ["<|image_pad|>", "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A smaller tiny model than the default (2 layers of 64): the sequences are ~2.5k tokens (the tool block)."""
    return build_tiny_model(tmp_path_factory.mktemp("sft-tiny") / "model", seed=0, hidden_size=64, num_layers=2)


@pytest.fixture(scope="module")
def processor(tiny):
    return load_processor(tiny)


@pytest.fixture(scope="module")
def schemas():
    return tool_schemas(ChartToolEnv())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Three trajectories: Crop then a line drawn on the crop (3 images), OCR (text only), Crop (2 images)."""
    client = InProcessToolClient()
    charts = [render_bar_chart({"2019": 41.0, "2020": 27.5, "2021": 58.0}, title="Online sales"),
              render_bar_chart({"A": 12.0, "B": 7.0, "C": 3.5}, title="Costs")]
    conversations = [
        (trajectory(client, charts[0], "t0", "What is the value of 2020?",
                     [("Crop", {"image": "img_0", "box": [0, 0, 300, 240]}),
                      ("DrawHorizontalLineByY", {"image": "img_1", "y": 120})], "27.5"), "27.5"),
        (trajectory(client, charts[0], "t1", "What is the title of the chart?", [("OCR", {"image": "img_0"})],
                     "Online sales"), "Online sales"),
        (trajectory(client, charts[1], "t2", "What is the value of B?",
                     [("Crop", {"image": "img_0", "box": [40, 20, 400, 300]})], "7"), "7"),
    ]
    return write_sft_dataset(tmp_path_factory.mktemp("sft-data") / "charts", conversations)


@pytest.fixture(scope="module")
def collator(processor):
    from trl.chat_template_utils import get_training_chat_template
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    return DataCollatorForVisionLanguageModeling(processor=processor, assistant_only_loss=True,
                                                 chat_template=get_training_chat_template(processor))


@pytest.fixture(scope="module")
def rows(processor, schemas, dataset):
    """The rows SFTTrainer sees (the module's lazy dataset), by trajectory id."""
    records = read_split(dataset, "sft")
    data = sft_dataset(records, dataset, SFTRenderer(processor, schemas))
    return {r["id"]: data[i] for i, r in enumerate(records)}


def _params(tiny, dataset, out, **overrides) -> SFTParams:
    values = {"model": tiny, "dataset": dataset, "out": out, "max_steps": 2, "learning_rate": 1e-3,
              "logging_steps": 1, "save_steps": 1, "seed": 0}
    return SFTParams(**{**values, **overrides})


# ------------------------------------------------------------------------------------------------ params


def test_params_validate_and_load_from_yaml(tmp_path):
    assert SFTParams(model=Path("m")).bf16 is None
    with pytest.raises(ValueError):
        SFTParams(model=Path("m"), learning_rate=0)
    with pytest.raises(ValueError):
        SFTParams(model=Path("m"), batch_size=2)  # unknown key
    path = tmp_path / "params.yaml"
    path.write_text("sft:\n  model: artifacts/models/tiny\n  max_steps: 5\n")
    assert load_params(path).max_steps == 5
    path.write_text("sft:\n  model: m\n  per_device_batch_size: 0\n")
    with pytest.raises(ConfigError, match=r"params\.yaml \[sft\]: per_device_batch_size"):
        load_params(path)


# ------------------------------------------------------------------------------------------------ rendering


def test_tool_block_in_the_system_message_is_byte_identical_to_grpo(processor, schemas, dataset, rows, collator):
    from trl.chat_template_utils import get_training_chat_template

    training_template = get_training_chat_template(processor)
    for record in read_split(dataset, "sft"):
        conv = load_conversation(dataset, record)
        messages = rows[record["id"]]["messages"]
        assert messages[0]["role"] == "system" and messages[1:] == conv.resolved()
        grpo = processor.apply_chat_template(conv.resolved(), tools=schemas, tokenize=False)
        # GRPO's first prompt (tool block, the user's image and question, the assistant header) is a prefix
        prompt = processor.apply_chat_template(conv.resolved()[:1], tools=schemas, add_generation_prompt=True,
                                               tokenize=False)
        for template in (None, training_template):
            text = processor.apply_chat_template(messages, chat_template=template, tokenize=False)
            assert text == grpo and text.startswith(prompt)
        # and the token ids the collator trains on are those of GRPO's text
        batch = collator([rows[record["id"]]])
        expected = processor(text=[grpo], images=conversation_images(conv.resolved()), return_tensors="pt")
        assert torch.equal(batch["input_ids"], expected["input_ids"])


def test_tool_block_follows_a_conversations_own_system_prompt(processor, schemas):
    user = [{"role": "user", "content": [{"type": "text", "text": "What is the title?"}]}]
    system = {"role": "system", "content": [{"type": "text", "text": "You read charts."}]}
    renderer = SFTRenderer(processor, schemas)
    assert render(processor, renderer.with_tools([system] + user)) == render(processor, [system] + user, schemas)
    assert tool_system_text(processor, schemas, "You read charts.").startswith("You read charts.\n\n# Tools")


def test_token_count_matches_the_collated_sequence(processor, schemas, dataset, rows, collator):
    from PIL import Image

    renderer = SFTRenderer(processor, schemas)
    for record in read_split(dataset, "sft"):
        data = json.loads(record["conversation"])
        sizes = [Image.open(dataset / name).size for name in data["images"].values()]
        assert renderer.num_tokens(data["messages"], sizes) == collator([rows[record["id"]]])["input_ids"].shape[1]


def test_labels_cover_exactly_the_assistant_turns(processor, dataset, rows, collator):
    tok = processor.tokenizer
    conv = load_conversation(dataset, read_split(dataset, "sft")[0])
    batch = collator([rows["t0"]])
    ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
    assert all(label in (-100, token) for token, label in zip(ids, labels))  # unshifted: the model shifts
    runs = []  # maximal runs of labelled tokens
    for i, (token, label) in enumerate(zip(ids, labels)):
        if label != -100:
            if i == 0 or labels[i - 1] == -100:
                runs.append([])
            runs[-1].append(token)
    # each assistant turn, as the template renders it after its header: tool call JSON or answer, then end of turn
    messages = conv.resolved()
    expected = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            turn = render(processor, messages[:i + 1])[len(render(processor, messages[:i])):]
            assert turn.startswith("<|im_start|>assistant\n")
            expected.append(turn[len("<|im_start|>assistant\n"):])
    assert [tok.decode(r) for r in runs] == expected
    assert expected[0].startswith('<tool_call>\n{"name": "Crop"')
    assert expected[-1] == "<answer>27.5</answer><|im_end|>\n"
    assert sum(len(r) for r in runs) == sum(len(tok(e, add_special_tokens=False)["input_ids"]) for e in expected)
    trained = {t for r in runs for t in r}
    for token in VISION_TOKENS + ["<tool_response>", "</tool_response>", "<|im_start|>"]:
        assert tok.convert_tokens_to_ids(token) not in trained, token
    assert tok.convert_tokens_to_ids("<|im_end|>") in trained


def test_tool_returned_images_reach_the_forward_pass(tiny, processor, rows, collator):
    from transformers import AutoModelForImageTextToText

    batch = collator([rows["t0"], rows["t1"], rows["t2"]])
    grid = batch["image_grid_thw"]
    assert grid.shape[0] == 3 + 1 + 2  # t0: chart, crop, line on the crop; t1: chart; t2: chart, crop
    assert batch["pixel_values"].shape[0] == int(grid.prod(dim=1).sum())
    pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((batch["input_ids"] == pad).sum()) == int(grid.prod(dim=1).sum()) // 4
    model = AutoModelForImageTextToText.from_pretrained(str(tiny))
    seen = []
    hook = model.model.visual.register_forward_hook(lambda _m, args, kwargs, _out: seen.append(kwargs["grid_thw"]),
                                                    with_kwargs=True)
    with torch.no_grad():
        model(**batch)
    hook.remove()
    assert len(seen) == 1 and torch.equal(seen[0], grid)


# ------------------------------------------------------------------------------------------------ training


def _loss(model_dir: Path, batch) -> float:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        return float(model(**batch).loss)


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny, dataset, rows, collator, tmp_path):
    batch = collator([rows["t0"]])
    before = _loss(tiny, batch)
    params = _params(tiny, dataset, tmp_path / "sft", limit=1, max_steps=4, learning_rate=1e-2, save_steps=100)
    summary = train_sft(params, mlflow_run=False)
    assert summary["global_step"] == 4 and summary["trajectories"] == 1 and summary["resumed_from"] is None
    after = _loss(params.out, batch)
    assert after < before - 0.5, (before, after)


@pytest.fixture(scope="module")
def first_run(tiny, dataset, tmp_path_factory):
    """Two steps with a checkpoint after each, logged to a fresh MLflow store."""
    root = tmp_path_factory.mktemp("sft-run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        params = _params(tiny, dataset, root / "out")
        summary = train_sft(params)
    return params, summary, f"sqlite:///{root / 'mlflow.db'}"


def test_checkpoints_and_resume_continue_the_step_count(first_run, tmp_path):
    params, summary, _ = first_run
    assert summary["global_step"] == 2 and summary["steps"] == 2
    assert sorted(p.name for p in params.out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    out = tmp_path / "out"
    shutil.copytree(params.out, out)
    more = train_sft(params.model_copy(update={"out": out, "max_steps": 4}), mlflow_run=False)
    assert Path(more["resumed_from"]).name == "checkpoint-2"
    assert more["global_step"] == 4 and more["steps"] == 2
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2, 3, 4]
    # resume=False starts over: the earlier checkpoints go, the step count restarts
    fresh = train_sft(params.model_copy(update={"out": out, "max_steps": 1}), resume=False, mlflow_run=False)
    assert fresh["resumed_from"] is None and fresh["global_step"] == 1
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]


def test_mlflow_run_has_params_and_per_step_loss(first_run):
    from mlflow.tracking import MlflowClient

    _, summary, uri = first_run
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.params["sft.learning_rate"] == "0.001" and run.data.params["sft.max_steps"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert "train_loss" in run.data.metrics and run.data.metrics["trajectories"] == 3


def test_saved_model_loads_in_the_hf_policy_and_generates(first_run, dataset, schemas):
    from thinkimg.agent.policies.hf import HFPolicy

    params, _, _ = first_run
    assert (params.out / "chat_template.jinja").read_text(encoding="utf-8") == trl_chat_template()
    policy = HFPolicy(str(params.out), max_new_tokens=8, device="cpu")
    try:
        conv = load_conversation(dataset, read_split(dataset, "sft")[0])
        prompt = Conversation(messages=conv.messages[:1], images={"img_0": conv.images["img_0"]})
        [turn] = policy.generate([prompt], schemas)
        assert isinstance(turn, str)
    finally:
        policy.close()


def test_lora_trains_and_saves_a_merged_model(tiny, dataset, tmp_path):
    from transformers import AutoModelForImageTextToText

    params = _params(tiny, dataset, tmp_path / "lora", max_steps=1, lora=True, lora_r=4, save_steps=100)
    summary = train_sft(params, mlflow_run=False)
    assert summary["global_step"] == 1
    model = AutoModelForImageTextToText.from_pretrained(str(params.out))  # a plain model: no adapter files needed
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert not (params.out / "adapter_config.json").exists()


# ------------------------------------------------------------------------------------------------ errors


def test_clear_errors_for_missing_inputs_and_empty_splits(tiny, dataset, tmp_path):
    with pytest.raises(TrainError, match="model folder not found"):
        train_sft(_params(tmp_path / "nope", dataset, tmp_path / "o"), mlflow_run=False)
    with pytest.raises(TrainError, match="dataset folder not found"):
        train_sft(_params(tiny, tmp_path / "nope", tmp_path / "o"), mlflow_run=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "sft.jsonl").write_text("")
    with pytest.raises(TrainError, match="no trajectories"):
        train_sft(_params(tiny, empty, tmp_path / "o"), mlflow_run=False)
    with pytest.raises(TrainError, match="3 longer than max_length=64"):
        train_sft(_params(tiny, dataset, tmp_path / "o", max_length=64), mlflow_run=False)
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="bf16"):
            train_sft(_params(tiny, dataset, tmp_path / "o", bf16=True), mlflow_run=False)


@pytest.mark.slow
def test_sft_on_a_curated_dataset(tiny, processor, schemas, data_dir, tmp_path):
    from thinkimg.data.curate import DataParams, curate

    root = tmp_path / "charts"
    curate(DataParams(out=root, sft_trajectories=8, rl_questions=0, eval_questions=0, chunk_charts=4, workers=1,
                      data_dir=data_dir, tools_config=data_dir.parent / "configs" / "tools.yaml"), progress=False)
    renderer = SFTRenderer(processor, schemas)
    for record in read_split(root, "sft"):
        conv = load_conversation(root, record)
        assert render(processor, renderer.messages(conv)) == render(processor, conv.resolved(), schemas)
    summary = train_sft(_params(tiny, root, tmp_path / "sft", save_steps=100), mlflow_run=False)
    assert summary["trajectories"] >= 8 and summary["skipped_too_long"] == 0 and summary["global_step"] == 2


def test_relabel_reads_made_up_labels_in_the_text_and_keeps_the_images(processor, schemas, tmp_path):
    client = InProcessToolClient()
    chart = render_bar_chart({"North": 41.0, "South": 27.0}, title="Sales")
    conv = trajectory(client, chart, "p0", "What is the value of North?",
                      [("OCR", {"image": "img_0"})], "41",
                      ocr_text='Point: (1, 2) — "41", the value label of the bar for "North"')
    conv.meta.update(answer="41", plan={"points": {"North": "the value label of North"},
                                        "op": {"name": "lookup", "key": "North"}})
    root = write_sft_dataset(tmp_path / "charts", [(conv, "41")])
    records = read_split(root, "sft")

    def texts(row):
        return json.dumps([[p for p in m["content"] if p.get("type") == "text"] if isinstance(m["content"], list)
                           else m["content"] for m in row["messages"]] + [m.get("tool_calls") for m in row["messages"]])

    def images(row):
        return [p for m in row["messages"] if isinstance(m["content"], list) for p in m["content"]
                if p.get("type") == "image"]

    plain = sft_dataset(records, root, SFTRenderer(processor, schemas))[0]
    assert "North" in texts(plain) and "<answer>41</answer>" in texts(plain)
    relabelled = sft_dataset(records, root, SFTRenderer(processor, schemas), relabel=1.0, seed=0)
    first, second = relabelled[0], relabelled[0]
    assert "North" not in texts(first) and "<answer>41</answer>" not in texts(first)
    assert texts(first) != texts(second)  # a fresh draw on each read
    assert len(images(first)) == len(images(plain)) >= 1
    assert [m["role"] for m in first["messages"]] == [m["role"] for m in plain["messages"]]


# ------------------------------------------------------------------------------------------------ copy rehearsal


def test_copy_rehearsal_adds_drill_loss_each_step_and_reports_the_copy_kept(tiny, dataset, tmp_path, monkeypatch):
    from thinkimg.train import copy_drill

    calls = []
    real = copy_drill.Rehearsal.loss
    monkeypatch.setattr(copy_drill.Rehearsal, "loss", lambda self, model: calls.append(1) or real(self, model))
    params = _params(tiny, dataset, tmp_path / "rehearsed", max_steps=3, save_steps=100, copy_rehearsal=2)
    summary = train_sft(params, mlflow_run=False)
    assert len(calls) == 3 and summary["copy_rehearsal"] == 2
    assert 0.0 <= summary["copy_phrases"] <= 1.0 and 0.0 <= summary["copy_one_word"] <= 1.0
    plain = train_sft(_params(tiny, dataset, tmp_path / "plain", max_steps=3, save_steps=100), mlflow_run=False)
    assert len(calls) == 3 and "copy_phrases" in plain  # measured without rehearsing too
    a = (params.out / "model.safetensors").read_bytes()
    assert a != (tmp_path / "plain" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("scaled, expected", [(True, 1.0 + 6.0 / 3), (False, 1.0 + 6.0)])
def test_rehearsal_loss_is_scaled_as_the_trainer_scales_its_own(scaled, expected):
    from thinkimg.train.sft import rehearsing

    class Trainer:
        loss_is_scaled_for_ga = scaled
        current_gradient_accumulation_steps = 3

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return (torch.tensor(1.0), "outputs") if return_outputs else torch.tensor(1.0)

    class SixLoss:
        def loss(self, model):
            return torch.tensor(6.0)

    trainer = rehearsing(Trainer, SixLoss())()
    assert float(trainer.compute_loss(None, {})) == pytest.approx(expected)
    loss, outputs = trainer.compute_loss(None, {}, return_outputs=True)
    assert float(loss) == pytest.approx(expected) and outputs == "outputs"
