"""Copy drill: dense practice in copying by content, for the tiny model before its warm start.

Each sequence holds a random run of word pieces (those made-up labels are built of) set off by a delimiter pair
after a random prefix, then, after a random gap, an opening delimiter of another kind, the same run again and the
matching closer: ``… "Run words" … <answer>Run words</answer>``. The loss is on the repeat and its closer. Prefix,
gap and run lengths vary, so only content says where to copy from: the model has to grow an induction head (attend
to the token after the earlier occurrence of the current one) and stop where the source's delimiter comes, closing
with its own. The first half of the steps copies one long word (6-30 pieces), on which the head forms (the tiny
128 x 4 model: ~1,500 steps of 16 sequences); the second half copies phrases of one to six words of one to four
pieces, where a space recurs inside the run and the head has to look further back than one token (from scratch it
had not learnt that in 4,000 steps; after the first half, in 500). The warm start's copies, a few tokens in
hundreds, do not make such a head form at all (README, "what limits it"). A first layout without delimiters (run,
quote, run to the end of the sequence) taught copying but not stopping: its models copied on past a label, into
the JSON after it, or round a loop ("Household water usehold water usehold ...").
Deterministic for a seed; it has no checkpoint of its own (a few minutes; an interrupted drill starts over).

Training on other text afterwards wears the head away: after the learning result's warm start (3,000 steps at
learning rate 2e-3) held-out phrases were copied 31 % and long words 2 %, against 99 % when the drill ended.
:class:`Rehearsal` mixes a few drill sequences into every later step to keep it; :func:`held_out_copy` measures it.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from thinkimg.train.relabel import PieceWords

#: Random prefix and gap lengths (tokens), most tokens in a run.
PREFIX = (0, 30)
GAP = (0, 20)
MAX_RUN = 30
log = logging.getLogger(__name__)
#: Steps between held-out accuracy checks when the drill runs to a target.
CHECK_EVERY = 250
#: One-word copy accuracy that shows a copy head has formed: without one it stays under ~10 %, and once the head
#: forms it climbs past 60 % within a few hundred steps (then on to the target, sometimes slowly).
HEAD_FORMED = 0.5
#: Offset of a rehearsal's random seed from the stage's seed (its sequences differ from the drill's).
REHEARSAL_SEED = 1000
#: Runs of the first half of the drill (words per run, pieces per word) and of the second half.
ONE_WORD = ((1, 1), (6, 30))
PHRASES = ((1, 6), (1, 4))
#: Delimiters around the source run (as a tool quotes or a question names what is copied) and around the copy (an
#: answer, a quoted call argument, a parenthesis).
SOURCE_PAIRS = (('"', '"'), ("(", ")"), ("[", "]"))
TARGET_PAIRS = (("<answer>", "</answer>"), ('"', '"'), ("(", ")"))


@dataclass(frozen=True)
class DrillTokens:
    """Token ids the drill sequences are made of: word pieces (``lower``: within a word; ``upper``: may start one),
    the space between words, and the delimiter pairs (each side a list of ids)."""

    lower: list[int]
    upper: list[int]
    space: int
    sources: list[tuple[list[int], list[int]]]
    targets: list[tuple[list[int], list[int]]]


def drill_tokens(tokenizer: Any) -> DrillTokens:
    """The drill's tokens from ``tokenizer``: the word pieces of :class:`~thinkimg.train.relabel.PieceWords`, its
    space and the delimiters above (each must be one token)."""
    words = PieceWords(tokenizer)

    def one(text: str) -> int:
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
        if len(ids) != 1:
            raise ValueError(f"the tokenizer has no single token for {text!r} to drill copying with")
        return ids[0]

    spaced = tokenizer.tokenize(" a")
    if len(spaced) != 2:
        raise ValueError("the copy drill needs a tokenizer that keeps a space as a token of its own (the tiny model's)")
    space = tokenizer.convert_tokens_to_ids(spaced[:1])[0]
    return DrillTokens(lower=tokenizer.convert_tokens_to_ids(words.lower),
                       upper=tokenizer.convert_tokens_to_ids(words.upper), space=space,
                       sources=[([one(a)], [one(b)]) for a, b in SOURCE_PAIRS],
                       targets=[([one(a)], [one(b)]) for a, b in TARGET_PAIRS])


def _run(rng: random.Random, tokens: DrillTokens, shape: tuple[tuple[int, int], tuple[int, int]]) -> list[int]:
    words, pieces = shape
    run: list[int] = []
    for _ in range(rng.randint(*words)):
        word = [rng.choice(tokens.upper if rng.random() < 0.5 else tokens.lower)]
        word += [rng.choice(tokens.lower) for _ in range(rng.randint(*pieces) - 1)]
        if run and len(run) + 1 + len(word) > MAX_RUN:
            break
        run += ([tokens.space] if run else []) + word
    return run[:MAX_RUN]


def drill_batch(rng: random.Random, tokens: DrillTokens, batch_size: int,
                shape: tuple[tuple[int, int], tuple[int, int]] = PHRASES):
    """(input ids, labels): ``batch_size`` sequences prefix + source pair around a run + gap + target opener + the
    run + target closer, padded with the first target closer; labels -100 except on the repeat and its closer.
    ``shape``: (words per run, pieces per word), :data:`ONE_WORD` or :data:`PHRASES`."""
    import torch

    pieces = tokens.lower + tokens.upper
    rows = []
    for _ in range(batch_size):
        prefix = [rng.choice(pieces) for _ in range(rng.randint(*PREFIX))]
        run = _run(rng, tokens, shape)
        (s_open, s_close), (t_open, t_close) = rng.choice(tokens.sources), rng.choice(tokens.targets)
        gap = [rng.choice(pieces) for _ in range(rng.randint(*GAP))]
        head = prefix + s_open + run + s_close + gap + t_open
        rows.append((head + run + t_close, len(head)))
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((batch_size, width), tokens.targets[0][1][0])
    labels = torch.full((batch_size, width), -100)
    for i, (row, start) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        labels[i, start:len(row)] = ids[i, start:len(row)]
    return ids, labels


def copy_drill(model: Any, tokenizer: Any, steps: int, batch_size: int, learning_rate: float, seed: int,
               target: float = 0.0, restart_steps: int = 0, progress: bool = True) -> dict[str, Any]:
    """Train ``model`` in place with the drill (AdamW, constant ``learning_rate``): one-word runs, then phrases.

    ``target`` 0: ``steps`` steps, the first half one word. ``target`` > 0: each part runs until its held-out copy
    accuracy reaches ``target`` (checked every :data:`CHECK_EVERY` steps), the one-word part for at most three
    quarters of the steps left and both together for at most ``steps``. When the head forms differs from one
    initialisation to another (measured on the 128 x 4 model: ~1,250 steps with one seed, over 9,000 with
    another), so with ``restart_steps`` > 0 an attempt with no copy head after that many steps (one-word copy under
    :data:`HEAD_FORMED`) starts over from a fresh initialisation (seed + 1, + 2, ...) while at least
    ``restart_steps`` of the budget are left; an attempt whose head has formed goes on towards ``target``. Returns
    the copy accuracy on held-out phrases before and after (teacher-forced: the repeat and its closer), the steps in
    all and of the last attempt's one-word part, each attempt (seed, steps, which parts reached ``target``), the
    accuracies checked, and seconds."""
    import torch
    from tqdm.auto import tqdm

    tokens = drill_tokens(tokenizer)
    held = drill_batch(random.Random(seed + 1), tokens, 32)
    # the checks that end a part use their own batches, so the reported accuracy is not the one stopped on
    checked = {"one_word": drill_batch(random.Random(seed + 2), tokens, 32, ONE_WORD),
               "phrases": drill_batch(random.Random(seed + 3), tokens, 32)}
    before = copy_accuracy(model, *held)
    checks: list[tuple[int, str, float]] = []
    attempts: list[dict[str, Any]] = []
    total = 0
    start = time.perf_counter()
    bar = tqdm(total=steps, desc="copy drill", disable=not progress)
    while True:
        attempt_seed = seed + len(attempts)
        if attempts:
            _reinitialise(model, attempt_seed)
        rng = random.Random(attempt_seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
        budget = steps - total
        word_steps = (3 * budget) // 4 if target else budget // 2
        reached = {"one_word": False, "phrases": False}
        step, restart = 0, False
        model.train()
        while step < budget:
            part = "one_word" if step < word_steps else "phrases"
            ids, labels = drill_batch(rng, tokens, batch_size, ONE_WORD if part == "one_word" else PHRASES)
            model(input_ids=ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            if target and step % CHECK_EVERY == 0:
                accuracy = copy_accuracy(model, *checked[part])
                checks.append((total + step, part, accuracy))
                bar.set_postfix(part=part, copy=accuracy)
                if accuracy >= target:
                    reached[part] = True
                    if part == "phrases":
                        break
                    word_steps = step
                elif (part == "one_word" and restart_steps and step >= restart_steps and accuracy < HEAD_FORMED
                      and steps - total - step >= restart_steps):
                    restart = True
                    break
        total += step
        attempts.append({"seed": attempt_seed, "steps": step, "reached": reached})
        if not restart:
            break
        log.warning("copy drill: no copy head after %d steps with seed %d (one-word copy %.3f); starting over "
                    "with seed %d", step, attempt_seed, checks[-1][2], attempt_seed + 1)
    bar.close()
    after = copy_accuracy(model, *held)
    out = {"steps": total, "one_word_steps": min(word_steps, step), "copy_accuracy_before": before,
           "copy_accuracy_after": after, "seconds": round(time.perf_counter() - start, 1)}
    if target:
        out.update(target=target, reached=reached, attempts=attempts, checks=checks)
        if not reached["phrases"]:
            log.warning("copy drill: held-out copy accuracy %.3f after %d steps, short of the target %.2f "
                        "(one-word part %s it); the warm start will copy less well", after, total, target,
                        "reached" if reached["one_word"] else "did not reach")
    return out


class Rehearsal:
    """Drill sequences mixed into a later stage's steps (the warm start, SFT) so the copy head the drill grew is
    kept: :meth:`loss` is the copy loss of ``batch_size`` fresh sequences, one-word runs and phrases in turn, for
    the caller to add to its own. Deterministic for the stage's ``seed``; :meth:`state` and :meth:`load_state`
    carry the draw across a checkpoint."""

    def __init__(self, tokenizer: Any, batch_size: int, seed: int):
        self.tokens = drill_tokens(tokenizer)
        self.batch_size = batch_size
        self.rng = random.Random(seed + REHEARSAL_SEED)
        self.count = 0

    def loss(self, model: Any):
        """The drill loss of the next batch on ``model`` (a tensor with its graph, on the model's device)."""
        shape = ONE_WORD if self.count % 2 == 0 else PHRASES
        self.count += 1
        ids, labels = drill_batch(self.rng, self.tokens, self.batch_size, shape)
        device = next(model.parameters()).device
        return model(input_ids=ids.to(device), labels=labels.to(device)).loss

    def state(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "count": self.count}

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.setstate(state["rng"])
        self.count = state["count"]


def held_out_copy(model: Any, tokenizer: Any, seed: int = 0, batch_size: int = 64) -> dict[str, float]:
    """Teacher-forced copy accuracy of ``model`` on held-out drill sequences (phrases and long single words; the
    draw depends on ``seed`` only), to see how much of the drill's copying a stage kept."""
    tokens = drill_tokens(tokenizer)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = {}
    for name, shape, offset in (("phrases", PHRASES, 101), ("one_word", ONE_WORD, 102)):
        ids, labels = drill_batch(random.Random(seed + offset), tokens, batch_size, shape)
        out[name] = copy_accuracy(model, ids.to(device), labels.to(device))
    model.train(was_training)
    return out


def _reinitialise(model: Any, seed: int) -> None:
    """Give ``model`` the weights a fresh build of its config draws with ``seed``."""
    import torch

    torch.manual_seed(seed)
    fresh = type(model)(model.config)
    model.load_state_dict(fresh.state_dict())


def copy_accuracy(model: Any, ids, labels) -> float:
    """Share of the labelled tokens (the repeats and their closers) that ``model`` predicts right (teacher forced)."""
    import torch

    with torch.no_grad():
        pred = model(input_ids=ids).logits[:, :-1].argmax(-1)
    scored = labels[:, 1:] != -100
    return round(((pred == ids[:, 1:]) & scored).sum().item() / max(1, scored.sum().item()), 4)
