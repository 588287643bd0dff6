"""Copy drill: dense practice in copying by content, for the tiny model before its warm start.

Each sequence is a random run of the tokenizer's word pieces (those made-up labels are built of) after a random
prefix, a quote, then the same run again; the loss is on the repeat only. Prefix and run lengths vary, so only the content tells where to copy
from: the model has to grow an induction head (attend to the token after the earlier occurrence of the current one).
On the tiny 128 x 4 model that head forms suddenly after ~2,500 steps of 16 sequences; the warm start's copies, a few
tokens in hundreds, do not make it form at all (README, "what limits it": after a 4,000-step drill, 1,000 warm-start
steps spell made-up labels 115 of 126 word pieces right, against 10 of 126 after 6,000 steps without it).
Deterministic for a seed; it has no checkpoint of its own (a few minutes; an interrupted drill starts over).
"""

from __future__ import annotations

import random
import time
from typing import Any

from thinkimg.train.relabel import PieceWords

#: Random prefix and run lengths (tokens).
PREFIX = (0, 30)
RUN = (6, 30)


def drill_pieces(tokenizer: Any) -> tuple[list[int], int]:
    """The token ids a drill sequence is made of (the word pieces of :class:`~thinkimg.train.relabel.PieceWords`)
    and the separator id (a double quote, as a tool quotes what the model copies)."""
    words = PieceWords(tokenizer)
    separator = tokenizer.convert_tokens_to_ids(tokenizer.tokenize('"'))
    if len(separator) != 1:
        raise ValueError("the tokenizer has no single-token quote to drill copying with")
    return tokenizer.convert_tokens_to_ids(words.lower + words.upper), separator[0]


def drill_batch(rng: random.Random, pieces: list[int], separator: int, batch_size: int):
    """(input ids, labels): ``batch_size`` sequences prefix + run + separator + run, padded with the separator;
    labels -100 except on the repeated run."""
    import torch

    rows = []
    for _ in range(batch_size):
        prefix = [rng.choice(pieces) for _ in range(rng.randint(*PREFIX))]
        run = [rng.choice(pieces) for _ in range(rng.randint(*RUN))]
        rows.append((prefix + run + [separator] + run, len(prefix) + len(run) + 1))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((batch_size, width), separator)
    labels = torch.full((batch_size, width), -100)
    for i, (row, start) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        labels[i, start:len(row)] = ids[i, start:len(row)]
    return ids, labels


def copy_drill(model: Any, tokenizer: Any, steps: int, batch_size: int, learning_rate: float, seed: int,
               progress: bool = True) -> dict[str, Any]:
    """Train ``model`` in place for ``steps`` drill steps (AdamW, constant ``learning_rate``). Returns the copy
    accuracy on a fresh batch before and after (teacher-forced tokens of the repeat after its first), and seconds."""
    import torch
    from tqdm.auto import tqdm

    pieces, separator = drill_pieces(tokenizer)
    rng = random.Random(seed)
    held = drill_batch(random.Random(seed + 1), pieces, separator, 32)
    before = copy_accuracy(model, *held)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    model.train()
    start = time.perf_counter()
    for _ in tqdm(range(steps), desc="copy drill", disable=not progress):
        ids, labels = drill_batch(rng, pieces, separator, batch_size)
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"steps": steps, "copy_accuracy_before": before, "copy_accuracy_after": copy_accuracy(model, *held),
            "seconds": round(time.perf_counter() - start, 1)}


def scored_positions(labels):
    """The positions of a drill batch that only copying predicts: the repeat's tokens after its first (nothing says
    which run comes)."""
    import torch

    labelled = labels != -100
    return labelled & torch.roll(labelled, 1, dims=1)


def copy_accuracy(model: Any, ids, labels) -> float:
    """Share of the repeated tokens after each run's first that ``model`` predicts right (teacher forced)."""
    import torch

    with torch.no_grad():
        pred = model(input_ids=ids).logits[:, :-1].argmax(-1)
    scored = scored_positions(labels)[:, 1:]
    return round(((pred == ids[:, 1:]) & scored).sum().item() / max(1, scored.sum().item()), 4)
