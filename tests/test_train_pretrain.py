"""The tiny model's warm start (thinkimg.train.pretrain): trajectory text without the tool block or image spans,
every token in the loss, the loss going down, the model saved in place, clear errors."""

from __future__ import annotations

import json

import pytest
from conftest import trajectory, write_sft_dataset

from thinkimg.agent.policies.hf_processor import load_processor
from thinkimg.data.render import render_bar_chart
from thinkimg.tools import InProcessToolClient
from thinkimg.train.base import ModelParams, prepare_base_model
from thinkimg.train.common import TrainError
from thinkimg.train.pretrain import PretrainParams, TokenStream, copy_mask, corpus


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    client = InProcessToolClient()
    chart = render_bar_chart({"North": 41.0, "South": 27.0}, title="Sales")
    conversations = [(trajectory(client, chart, f"t{i}", f"What is the value of {label}?", [("OCR", {"image": "img_0"})],
                                 answer, ocr_text=f'"Sales" [9, 8, 60, 20]\n"{label}" [30, 90, 60, 99]\n"{answer}" '
                                                  f'[33, 40, 50, 52]'), answer)
                     for i, (label, answer) in enumerate([("North", "41"), ("South", "27")] * 8)]
    return write_sft_dataset(tmp_path_factory.mktemp("pre-data") / "charts", conversations)


def test_corpus_is_the_trajectory_text_without_tool_block_or_images(tmp_path, dataset):
    model = prepare_base_model(ModelParams(out=tmp_path / "m", tiny={"hidden_size": 32, "num_layers": 1,
                                                                    "num_heads": 2, "num_kv_heads": 1}))
    texts = corpus(load_processor(model["path"]), dataset)
    assert len(texts) == 16
    assert "What is the value of North?" in texts[0] and '"North" [30, 90, 60, 99]' in texts[0]
    assert "<answer>41</answer>" in texts[0] and '"name": "OCR"' in texts[0]
    assert "<tools>" not in texts[0] and "DrawHorizontalLineByY" not in texts[0]  # no tool block
    assert "<|image_pad|>" not in texts[0] and "<|vision_start|>" not in texts[0]


def test_base_model_stage_pretrains_and_the_loss_falls(tmp_path, dataset):
    params = ModelParams(out=tmp_path / "base", tiny={"hidden_size": 64, "num_layers": 2},
                         pretrain=PretrainParams(steps=60, dataset=dataset, seq_len=64, batch_size=4,
                                                 learning_rate=3e-3))
    info = prepare_base_model(params)
    stats = info["pretrain"]
    assert stats["steps"] == 60 and stats["tokens_seen"] == 60 * 4 * 64
    assert stats["loss_last"] < 0.6 * stats["loss_first"], stats
    assert json.loads((params.out / "base_model.json").read_text())["pretrain"] == stats
    untouched = prepare_base_model(params.model_copy(update={"out": tmp_path / "plain",
                                                             "pretrain": PretrainParams()}))
    assert "pretrain" not in untouched
    assert (params.out / "model.safetensors").read_bytes() != (tmp_path / "plain" / "model.safetensors").read_bytes()


def test_pretrain_errors_name_what_is_missing(tmp_path, dataset):
    with pytest.raises(TrainError, match="dataset folder not found"):
        prepare_base_model(ModelParams(out=tmp_path / "a", tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                               "num_kv_heads": 1},
                                       pretrain=PretrainParams(steps=1, dataset=tmp_path / "none")))
    with pytest.raises(TrainError, match="needs at least batch_size"):
        prepare_base_model(ModelParams(out=tmp_path / "b", tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                               "num_kv_heads": 1},
                                       pretrain=PretrainParams(steps=1, dataset=dataset, seq_len=32768,
                                                               batch_size=8)))


@pytest.fixture(scope="module")
def planned_dataset(tmp_path_factory):
    """Trajectories that carry their plan (as the data engine writes them): Point quotes the value of a label."""
    client = InProcessToolClient()
    chart = render_bar_chart({"North": 41.0, "South": 27.0}, title="Sales")
    conversations = []
    for i, (label, answer) in enumerate([("North", "41"), ("South", "27")] * 4):
        conv = trajectory(client, chart, f"p{i}", f"What is the value of {label}?",
                          [("OCR", {"image": "img_0"})], answer, ocr_text=f'Point: (1, 2) — "{answer}", the value '
                                                                          f'label of the bar for "{label}"')
        conv.meta.update(answer=answer, plan={"points": {label: f"the value label of {label}"},
                                              "op": {"name": "lookup", "key": label}})
        conversations.append((conv, answer))
    return write_sft_dataset(tmp_path_factory.mktemp("planned") / "charts", conversations)


def test_relabelled_warm_start_text_never_shows_the_copied_labels(tmp_path, planned_dataset):
    model = prepare_base_model(ModelParams(out=tmp_path / "m", tiny={"hidden_size": 32, "num_layers": 1,
                                                                    "num_heads": 2, "num_kv_heads": 1}))
    processor = load_processor(model["path"])
    relabelled = TokenStream(processor, planned_dataset, seq_len=64, relabel=1.0, seed=0)
    text = "".join(processor.tokenizer.decode(relabelled.chunk()) for _ in range(30))
    assert text.count("<answer>") >= 8 and "What is the value of " in text
    assert "North" not in text and "South" not in text and '"41"' not in text and '"27"' not in text
    plain = TokenStream(processor, planned_dataset, seq_len=64, relabel=0.0, seed=0)
    text = "".join(processor.tokenizer.decode(plain.chunk()) for _ in range(30))
    assert "What is the value of North?" in text and '— "41", the value label of the bar for "North"' in text
    assert plain.tokens() == relabelled.tokens()  # the chunk count comes from the trajectories as they are


def test_copy_mask_marks_the_repeats_of_a_string_not_its_first_occurrence():
    text = "Q: Foo Bar? call Foo Bar; answer Foo Bar"
    offsets, start = [], 0
    for word in text.split(" "):  # one token a word, the space kept apart
        start = text.index(word, start)
        offsets.append((start, start + len(word)))
        start += len(word)
    mask = copy_mask(text, offsets, ["Foo Bar"])
    words = text.split(" ")
    assert [w for w, m in zip(words, mask) if m] == ["Foo", "Foo", "Bar"]  # "Bar;" holds more than the string
    assert copy_mask(text, offsets, ["Missing"]) == [0] * len(words)


def test_copy_mask_of_a_relabelled_trajectory_covers_the_copied_answer(tmp_path, planned_dataset):
    model = prepare_base_model(ModelParams(out=tmp_path / "m", tiny={"hidden_size": 32, "num_layers": 1,
                                                                    "num_heads": 2, "num_kv_heads": 1}))
    processor = load_processor(model["path"])
    stream = TokenStream(processor, planned_dataset, seq_len=4096, relabel=1.0, seed=0)
    ids, mask = stream.chunk_with_mask()
    assert len(ids) == len(mask) == 4096 and 0 < sum(mask) < len(mask) // 4
    text = processor.tokenizer.decode(ids)
    answers = [a.split("</answer>")[0] for a in text.split("<answer>")[1:]]
    copied = processor.tokenizer.decode([i for i, m in zip(ids, mask) if m])
    for answer in answers[:-1]:  # the last trajectory may be cut by the chunk's end
        assert answer in copied
    plain = TokenStream(processor, planned_dataset, seq_len=256, relabel=0.0, seed=0)
    assert sum(plain.chunk_with_mask()[1]) == 0


def test_warm_start_with_copy_weight_trains_and_records_it(tmp_path, planned_dataset):
    params = ModelParams(out=tmp_path / "base", tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                                      "num_kv_heads": 1},
                         pretrain=PretrainParams(steps=20, dataset=planned_dataset, seq_len=64, batch_size=4,
                                                 learning_rate=3e-3, relabel=1.0, copy_weight=10.0))
    stats = prepare_base_model(params)["pretrain"]
    assert stats["copy_weight"] == 10.0 and stats["loss_last"] < stats["loss_first"], stats


def _tiny_params(out, dataset, **pretrain) -> ModelParams:
    values = dict(steps=8, dataset=dataset, seq_len=64, batch_size=2, learning_rate=3e-3, relabel=0.5,
                  copy_weight=5.0, save_steps=4)
    values.update(pretrain)
    return ModelParams(out=out, tiny={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1},
                       pretrain=PretrainParams(**values))


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def torch_equal(x, y) -> bool:
    import torch

    return bool(torch.equal(x, y))


def _interrupt_after(monkeypatch, params: ModelParams, chunks: int) -> None:
    """Run the warm start and interrupt it (as Ctrl-C would) once it has read ``chunks`` chunks."""
    real, calls = TokenStream.chunk_with_mask, {"n": 0}

    def interrupting(self):
        calls["n"] += 1
        if calls["n"] > chunks:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(TokenStream, "chunk_with_mask", interrupting)
    with pytest.raises(KeyboardInterrupt):
        prepare_base_model(params)
    monkeypatch.setattr(TokenStream, "chunk_with_mask", real)


def test_interrupted_warm_start_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, dataset, monkeypatch):
    straight = _tiny_params(tmp_path / "straight", dataset)
    prepare_base_model(straight)
    assert not (straight.out / "pretrain-checkpoint").exists()  # removed once the warm start finished

    crashing = _tiny_params(tmp_path / "crashed", dataset)
    _interrupt_after(monkeypatch, crashing, 12)  # in step 7 (batch_size 2); the last checkpoint is step 4's
    assert (crashing.out / "pretrain-checkpoint" / "state.pt").is_file()

    stats = prepare_base_model(crashing)["pretrain"]
    assert stats["resumed_from"] == 4 and stats["steps"] == 8
    a, b = _weights(straight.out), _weights(crashing.out)
    assert a.keys() == b.keys() and all(torch_equal(a[k], b[k]) for k in a)
    assert not (crashing.out / "pretrain-checkpoint").exists()


def test_warm_start_after_a_copy_drill_resumes_without_drilling_again(tmp_path, dataset, monkeypatch):
    straight = _tiny_params(tmp_path / "straight", dataset, copy_drill_steps=3, copy_drill_batch_size=2)
    drilled = prepare_base_model(straight)["pretrain"]["copy_drill"]
    assert drilled["steps"] == 3
    plain = _tiny_params(tmp_path / "plain", dataset)
    prepare_base_model(plain)
    assert not all(torch_equal(a, b) for a, b in zip(_weights(straight.out).values(), _weights(plain.out).values()))

    crashing = _tiny_params(tmp_path / "crashed", dataset, copy_drill_steps=3, copy_drill_batch_size=2)
    _interrupt_after(monkeypatch, crashing, 12)
    stats = prepare_base_model(crashing)["pretrain"]
    assert stats["resumed_from"] == 4  # the checkpoint holds the drilled weights, and what the drill reported
    assert {k: v for k, v in stats["copy_drill"].items() if k != "seconds"} == \
        {k: v for k, v in drilled.items() if k != "seconds"}
    a, b = _weights(straight.out), _weights(crashing.out)
    assert all(torch_equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_params_and_fresh_starts_over(tmp_path, dataset, monkeypatch):
    params = _tiny_params(tmp_path / "m", dataset)
    _interrupt_after(monkeypatch, params, 10)

    other = _tiny_params(tmp_path / "m", dataset, learning_rate=1e-3)
    with pytest.raises(TrainError, match=r"other model.pretrain params \(learning_rate: 0.003 -> 0.001\).*--fresh"):
        prepare_base_model(other)
    rebuilt = other.model_copy(update={"seed": 1, "pretrain": params.pretrain})
    with pytest.raises(TrainError, match="another build of the model"):
        prepare_base_model(rebuilt)
    stats = prepare_base_model(other, resume=False)["pretrain"]
    assert stats["resumed_from"] == 0 and stats["steps"] == 8


def test_kept_checkpoints_are_model_folders_a_probe_can_load(tmp_path, dataset):
    from transformers import AutoModelForImageTextToText

    params = _tiny_params(tmp_path / "m", dataset, keep_checkpoints=True)
    prepare_base_model(params)
    steps = params.out / "pretrain-steps"
    assert sorted(p.name for p in steps.iterdir()) == ["step-4", "step-8"]
    for folder in steps.iterdir():
        AutoModelForImageTextToText.from_pretrained(str(folder))
        load_processor(folder)
    final, last = _weights(params.out), _weights(steps / "step-8")
    assert all(torch_equal(final[k], last[k]) for k in final)
    assert not all(torch_equal(final[k], _weights(steps / "step-4")[k]) for k in final)


def test_copy_rehearsal_trains_on_drill_sequences_and_resumes_to_the_same_weights(tmp_path, dataset, monkeypatch):
    straight = _tiny_params(tmp_path / "straight", dataset, copy_drill_steps=3, copy_drill_batch_size=2,
                            copy_rehearsal=2)
    stats = prepare_base_model(straight)["pretrain"]
    assert stats["copy_rehearsal"] == 2
    assert set(stats["copy_after_warm_start"]) == {"phrases", "one_word"}
    without = _tiny_params(tmp_path / "without", dataset, copy_drill_steps=3, copy_drill_batch_size=2)
    prepare_base_model(without)
    assert not all(torch_equal(a, b) for a, b in zip(_weights(straight.out).values(), _weights(without.out).values()))

    crashing = _tiny_params(tmp_path / "crashed", dataset, copy_drill_steps=3, copy_drill_batch_size=2,
                            copy_rehearsal=2)
    _interrupt_after(monkeypatch, crashing, 12)
    resumed = prepare_base_model(crashing)["pretrain"]
    assert resumed["resumed_from"] == 4  # the rehearsal draws on where the checkpoint left it
    a, b = _weights(straight.out), _weights(crashing.out)
    assert all(torch_equal(a[k], b[k]) for k in a)
