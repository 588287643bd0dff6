"""The copy drill: sequences that only copying by content predicts, its metric, and its place in the warm start."""

from __future__ import annotations

import random

import pytest
import torch

from thinkimg.agent.policies.hf_processor import load_processor
from thinkimg.train.base import ModelParams, prepare_base_model
from thinkimg.train.copy_drill import (ONE_WORD, PHRASES, DrillTokens, copy_accuracy, copy_drill, drill_batch,
                                      drill_tokens)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    params = ModelParams(out=tmp_path_factory.mktemp("drill") / "m",
                         tiny={"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1})
    return prepare_base_model(params)["path"]


def test_drill_sequences_copy_a_delimited_run_after_another_opener_with_loss_on_the_copy_and_its_closer(tiny):
    tokenizer = load_processor(tiny).tokenizer
    tokens = drill_tokens(tokenizer)
    assert len(tokens.lower) > 100 and tokens.upper
    assert all(tokenizer.convert_ids_to_tokens(i).isalpha() for i in tokens.lower + tokens.upper)
    assert tokenizer.decode(tokens.targets[0][0] + tokens.targets[0][1]) == "<answer></answer>"
    ids, labels = drill_batch(random.Random(0), tokens, 48)
    starts, spaced, kinds = set(), 0, set()
    for row, lab in zip(ids.tolist(), labels.tolist()):
        scored = [i for i, v in enumerate(lab) if v != -100]
        start, end = scored[0], scored[-1] + 1
        assert lab[start:end] == row[start:end] and all(v == -100 for v in lab[:start] + lab[end:])
        opener, run, closer = row[start - 1], row[start:end - 1], row[end - 1]
        assert ([opener], [closer]) in tokens.targets  # the copy ends with the closer of its own opener
        source = [i for i in range(1, start - len(run)) if row[i:i + len(run)] == run
                  and ([row[i - 1]], [row[i + len(run)]]) in tokens.sources]
        assert len(source) == 1  # the run stands before the copy, set off by a source pair
        starts.add(start)
        spaced += tokens.space in run
        kinds.add((row[source[0] - 1], opener))
    assert len(starts) > 5  # the copy is at no fixed offset: position alone cannot predict it
    assert 0 < spaced < 48 and len(kinds) > 4  # one-word and several-word runs; the pairs vary


def test_the_first_half_of_the_drill_copies_one_long_word_the_second_phrases(tiny):
    tokens = drill_tokens(load_processor(tiny).tokenizer)

    def runs(shape):
        ids, labels = drill_batch(random.Random(2), tokens, 32, shape)
        return [[t for t, v in zip(row, lab) if v != -100][:-1] for row, lab in zip(ids.tolist(), labels.tolist())]

    one_word = runs(ONE_WORD)
    assert all(6 <= len(run) <= 30 and tokens.space not in run for run in one_word)
    phrases = runs(PHRASES)
    assert max(run.count(tokens.space) for run in phrases) >= 2  # spaces recur inside a run
    assert all(len(run) <= 30 for run in phrases)


def test_copy_accuracy_scores_a_copier_full_and_a_non_copier_zero():
    tokens = DrillTokens(lower=list(range(10, 200)), upper=list(range(200, 220)), space=5,
                         sources=[([1], [2])], targets=[([3], [4])])
    ids, labels = drill_batch(random.Random(1), tokens, 8)

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
