"""The copy drill: sequences that only copying by content predicts, its metric, and its place in the warm start."""

from __future__ import annotations

import random

import pytest
import torch

from thinkimg.agent.policies.hf_processor import load_processor
from thinkimg.train.base import ModelParams, prepare_base_model
from thinkimg.train.copy_drill import copy_accuracy, copy_drill, drill_batch, drill_pieces


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    params = ModelParams(out=tmp_path_factory.mktemp("drill") / "m",
                         tiny={"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1})
    return prepare_base_model(params)["path"]


def test_drill_sequences_repeat_a_run_after_a_quote_with_loss_only_on_the_repeat(tiny):
    tokenizer = load_processor(tiny).tokenizer
    pieces, separator = drill_pieces(tokenizer)
    assert tokenizer.decode([separator]) == '"' and len(pieces) > 100
    assert all(tokenizer.convert_ids_to_tokens(i).isalpha() for i in pieces)
    ids, labels = drill_batch(random.Random(0), pieces, separator, 24)
    starts = set()
    for row, lab in zip(ids.tolist(), labels.tolist()):
        scored = [i for i, v in enumerate(lab) if v != -100]
        start, end = scored[0], scored[-1] + 1
        run = row[start:end]
        assert row[start - 1] == separator and row[start - 1 - len(run):start - 1] == run
        assert lab[start:end] == run and all(v == -100 for v in lab[:start] + lab[end:])
        starts.add(start)
    assert len(starts) > 5  # the copy is at no fixed offset: position alone cannot predict it


def test_copy_accuracy_scores_a_copier_full_and_a_non_copier_zero():
    ids, labels = drill_batch(random.Random(1), list(range(10, 200)), 5, 8)

    class Oracle:  # predicts the true next token everywhere
        def __call__(self, input_ids):
            logits = torch.zeros(*input_ids.shape, 256)
            logits[:, :-1].scatter_(2, input_ids[:, 1:, None], 1.0)
            return type("Out", (), {"logits": logits})()

    class Constant:
        def __call__(self, input_ids):
            return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 256)})()

    assert copy_accuracy(Oracle(), ids, labels) == 1.0
    assert copy_accuracy(Constant(), ids, labels) == 0.0


def test_copy_drill_trains_the_model_in_place_and_reports_accuracy(tiny):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(str(tiny))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = copy_drill(model, load_processor(tiny).tokenizer, steps=5, batch_size=2, learning_rate=1e-3, seed=0,
                       progress=False)
    assert stats["steps"] == 5 and 0.0 <= stats["copy_accuracy_after"] <= 1.0
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
