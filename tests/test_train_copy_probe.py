"""The copy probe (thinkimg.train.copy_probe, `thinkimg train copy-probe`): relabelled text whose copied answers are
made up, scored right for a model that copies everything and wrong for one that copies nothing; the CLI on a tiny
model; clear errors."""

from __future__ import annotations

import json

import pytest
from conftest import trajectory, write_sft_dataset
from typer.testing import CliRunner

from thinkimg.agent.policies.hf_processor import load_processor
from thinkimg.cli import app
from thinkimg.data.render import render_bar_chart
from thinkimg.tools import InProcessToolClient
from thinkimg.train.base import ModelParams, prepare_base_model
from thinkimg.train.copy_probe import examples, score

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Four lookups (the answer copies a number Point quoted) and four comparisons (the answer copies a label)."""
    client = InProcessToolClient()
    chart = render_bar_chart({"North": 41.0, "South": 27.0}, title="Sales")
    values = {"North": "41", "South": "27"}
    conversations = []
    for i, label in enumerate(["North", "South"] * 2):
        quote = f'Point: (1, 2) — "{values[label]}", the value label of the bar for "{label}"'
        conv = trajectory(client, chart, f"l{i}", f"What is the value of {label}?", [("OCR", {"image": "img_0"})],
                          values[label], ocr_text=quote)
        conv.meta.update(answer=values[label], plan={"points": {label: f"the value label of {label}"},
                                                     "op": {"name": "lookup", "key": label}})
        conversations.append((conv, values[label]))
    for i in range(4):
        quotes = "\n".join(f'Point: (1, 2) — "{v}", the value label of the bar for "{k}"' for k, v in values.items())
        conv = trajectory(client, chart, f"c{i}", "Which is higher, North or South?", [("OCR", {"image": "img_0"})],
                          "North", ocr_text=quotes)
        conv.meta.update(answer="North", plan={"points": {k: f"the value label of {k}" for k in values},
                                               "op": {"name": "argmax"}})
        conversations.append((conv, "North"))
    return write_sft_dataset(tmp_path_factory.mktemp("probe") / "charts", conversations)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return prepare_base_model(ModelParams(out=tmp_path_factory.mktemp("probe-model") / "m", tiny=TINY))["path"]


def test_probe_text_is_relabelled_and_scores_a_perfect_copier_full_and_a_non_copier_zero(dataset, model):
    processor = load_processor(model)
    items = examples(processor, dataset, n=8, seed=0, words="letters")
    assert sorted(item["kind"] for item in items) == ["label"] * 4 + ["number"] * 4
    text = "".join(processor.tokenizer.decode(item["ids"]) for item in items)
    assert "North" not in text and "South" not in text  # only copying predicts them
    for item in items:
        answer = processor.tokenizer.decode([item["ids"][i] for i in item["answer"]])
        assert answer and f"<answer>{answer}</answer>" in processor.tokenizer.decode(item["ids"])
        assert answer not in ("41", "27", "North")  # a copied value is made up too
        assert sum(item["mask"]) > 0
    perfect = score(items, lambda ids: ids[1:] + [0])
    assert perfect["labels_whole"] == perfect["label_answers"] == 4
    assert perfect["numbers_whole"] == perfect["number_answers"] == 4
    assert perfect["copied_tokens"] > 0 and perfect["copied_token_rate"] == 1.0
    assert perfect["label_first_tokens_right"] == 4 and perfect["number_first_tokens_right"] == 4
    assert perfect["label_later_tokens_right"] == perfect["label_later_tokens"] > 0
    assert perfect["number_later_tokens_right"] == perfect["number_later_tokens"]
    # A model that picks the right string but cannot spell it on: first tokens right, later ones wrong, none whole.
    answers = {tuple(item["ids"]): item["answer"] for item in items}

    def first_only(ids):
        pred = [0] * len(ids)
        pred[answers[tuple(ids)][0] - 1] = ids[answers[tuple(ids)][0]]
        return pred

    chooser = score(items, first_only)
    assert chooser["label_first_tokens_right"] == 4 and chooser["label_later_tokens_right"] == 0
    assert chooser["labels_whole"] == 0
    nothing = score(items, lambda ids: [0] * len(ids))
    assert nothing["labels_whole"] == nothing["numbers_whole"] == 0 and nothing["copied_token_rate"] == 0.0
    # Free running: a writer that continues the true text writes every answer whole and closes it; one that writes
    # the answer and then copies on (never </answer>) writes none whole and runs on every time.
    by_prefix = {tuple(item["ids"][:item["answer"][0]]): item for item in items}

    def writer(prefix, new):
        item = by_prefix[tuple(prefix)]
        return item["ids"][item["answer"][0]:][:new]

    def runner_on(prefix, new):
        item = by_prefix[tuple(prefix)]
        closer = item["ids"][item["answer"][-1] + 1]
        return ([item["ids"][i] for i in item["answer"]] + [t for t in prefix if t != closer])[:new]

    closed = score(items, lambda ids: ids[1:] + [0], writer)
    assert closed["labels_written_whole"] == 4 and closed["numbers_written_whole"] == 4
    assert closed["labels_run_on"] == closed["numbers_run_on"] == 0
    ran_on = score(items, lambda ids: ids[1:] + [0], runner_on)
    assert ran_on["labels_written_whole"] == ran_on["numbers_written_whole"] == 0
    assert ran_on["labels_run_on"] == ran_on["numbers_run_on"] == 4
    assert "labels_written_whole" not in perfect  # no generator, no free-running counts
    # The sample and the made-up words are fixed by the seed: two models see the same text.
    assert [i["ids"] for i in examples(processor, dataset, n=8, seed=0, words="letters")] == [i["ids"] for i in items]


def test_copy_probe_cli_reports_a_tiny_model_and_names_bad_input(tmp_path, dataset, model):
    runner = CliRunner()
    out = tmp_path / "probe.json"
    result = runner.invoke(app, ["train", "copy-probe", "--model", str(model), "--dataset", str(dataset), "--n", "8",
                                 "--output", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["trajectories"] == 8 and report["label_answers"] == 4 and report["number_answers"] == 4
    assert report["words"] == "pieces" and 0.0 <= report["copied_token_rate"] <= 1.0
    result = runner.invoke(app, ["train", "copy-probe", "--model", str(tmp_path / "nope"), "--dataset", str(dataset)])
    assert result.exit_code == 2 and "model folder not found" in result.output
    result = runner.invoke(app, ["train", "copy-probe", "--model", str(model), "--dataset", str(dataset),
                                 "--words", "emoji"])
    assert result.exit_code == 2 and "--words" in result.output
