"""How well a model copies what it read: teacher-forced on relabelled training trajectories.

The diagnostic behind the README's "what limits it": ``n`` trajectories of the dataset's ``sft`` split, each
relabelled (:mod:`thinkimg.train.relabel`: the labels and copied answers replaced by made-up ones, so that only
copying predicts them) and rendered as the warm start reads them (text only, no tool block, no image spans). The
model predicts every next token from the true prefix. Reported: the answers that copy a made-up label and those that
copy a made-up number, how many of each come out whole, their first token and later tokens right (choosing which
string to copy against spelling it out), and the share of copied tokens (every repeat of a made-up string after its
first) predicted right. Then, free running: from the true prefix up to ``<answer>`` the model writes the answer
greedily; reported are the answers it writes whole and closes right after, and those it does not close within four
tokens of the answer's length (it runs on copying, as a model that learnt to copy but not to stop does). The sample
and the made-up words are fixed by ``seed``, so two models are compared on the same text.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Callable, Literal

from thinkimg.train.pretrain import copy_mask, text_records
from thinkimg.train.relabel import PieceWords, relabel_with_mapping

#: ``ids -> predicted next ids`` (prediction ``i`` is for token ``i + 1``).
Predictor = Callable[[list[int]], list[int]]
#: ``(prefix ids, most new tokens) -> the greedy continuation's ids``.
Generator = Callable[[list[int], int], list[int]]
#: Tokens past the answer's length a written answer may take before it counts as running on.
RUN_ON = 4


def examples(processor: Any, dataset: Path, n: int = 80, seed: int = 7,
             words: Literal["pieces", "letters"] = "pieces") -> list[dict[str, Any]]:
    """The probe's text: ``n`` relabelled trajectories as token ids, each with its answer's token positions, the
    copy mask and what the answer copies (``"label"``, ``"number"`` or ``None``)."""
    from thinkimg.train.common import TrainError

    records = text_records(dataset)
    if not records:
        raise TrainError(f"{dataset}: the sft split has no trajectories to probe")
    rng = random.Random(seed)
    sample = rng.sample(records, min(n, len(records)))
    maker = PieceWords(processor.tokenizer) if words == "pieces" else None
    out = []
    for messages, meta in sample:
        new, mapping = relabel_with_mapping(messages, meta, rng, maker)
        text = processor.apply_chat_template(new, tokenize=False)
        enc = processor.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        start = text.rfind("<answer>") + len("<answer>")
        end = text.find("</answer>", start)
        if start < len("<answer>") or end < 0:
            raise TrainError(f"{dataset}: a trajectory ({meta.get('id', '?')}) does not end in <answer>...</answer>")
        answer = text[start:end]
        made = {v: k for k, v in mapping.items()}
        kind = None
        if answer in made:
            kind = "number" if answer.replace(".", "", 1).lstrip("-").isdigit() else "label"
        out.append({"ids": enc["input_ids"], "kind": kind,
                    "answer": [i for i, (a, b) in enumerate(offsets) if a >= start and b <= end and b > a],
                    "mask": copy_mask(text, offsets, sorted(mapping.values()))})
    return out


def score(items: list[dict[str, Any]], predict: Predictor, generate: Generator | None = None) -> dict[str, Any]:
    """Answers copied whole (by kind) and copied tokens right under ``predict``; with ``generate``, the answers written
    whole and closed, and those run on; see the module docstring."""
    whole = {"label": 0, "number": 0}
    written = {"label": 0, "number": 0}
    run_on = {"label": 0, "number": 0}
    total = {"label": 0, "number": 0}
    first = {"label": 0, "number": 0}
    later = {"label": 0, "number": 0}
    later_right = {"label": 0, "number": 0}
    right = copied = 0
    for item in items:
        ids = item["ids"]
        pred = predict(ids)
        if item["kind"] is not None and item["answer"]:
            kind, answer = item["kind"], item["answer"]
            total[kind] += 1
            whole[kind] += all(pred[i - 1] == ids[i] for i in answer)
            first[kind] += pred[answer[0] - 1] == ids[answer[0]]
            later[kind] += len(answer) - 1
            later_right[kind] += sum(pred[i - 1] == ids[i] for i in answer[1:])
            if generate is not None:
                gold = [ids[i] for i in answer] + [ids[answer[-1] + 1]]  # the answer and its </answer>
                out = generate(ids[:answer[0]], len(gold) + RUN_ON)
                written[kind] += out[:len(gold)] == gold
                run_on[kind] += gold[-1] not in out
        for i, m in enumerate(item["mask"]):
            if m and i > 0:
                copied += 1
                right += pred[i - 1] == ids[i]
    return {"trajectories": len(items),
            "labels_whole": whole["label"], "label_answers": total["label"],
            "numbers_whole": whole["number"], "number_answers": total["number"],
            "label_first_tokens_right": first["label"], "label_later_tokens": later["label"],
            "label_later_tokens_right": later_right["label"],
            "number_first_tokens_right": first["number"], "number_later_tokens": later["number"],
            "number_later_tokens_right": later_right["number"],
            "copied_tokens": copied, "copied_tokens_right": right,
            "copied_token_rate": round(right / copied, 4) if copied else None,
            **({"labels_written_whole": written["label"], "labels_run_on": run_on["label"],
                "numbers_written_whole": written["number"], "numbers_run_on": run_on["number"]}
               if generate is not None else {})}


def copy_probe(model_dir: Path, dataset: Path, n: int = 80, seed: int = 7,
               words: Literal["pieces", "letters"] = "pieces") -> dict[str, Any]:
    """Probe the model in ``model_dir`` on ``n`` relabelled trajectories of ``dataset`` (see the module docstring)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from thinkimg.agent.policies.hf_processor import load_processor
    from thinkimg.train.common import TrainError

    if not Path(model_dir).is_dir():
        raise TrainError(f"{model_dir}: model folder not found")
    if not Path(dataset).is_dir():
        raise TrainError(f"{dataset}: dataset folder not found")
    processor = load_processor(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()

    def predict(ids: list[int]) -> list[int]:
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()

    def generate(prefix: list[int], new: int) -> list[int]:
        with torch.no_grad():
            out = model.generate(input_ids=torch.tensor([prefix]), max_new_tokens=new, do_sample=False,
                                 pad_token_id=processor.tokenizer.pad_token_id)
        return out[0, len(prefix):].tolist()

    result = score(examples(processor, dataset, n, seed, words), predict, generate)
    return {"model": str(model_dir), "dataset": str(dataset), "seed": seed, "words": words, **result}
