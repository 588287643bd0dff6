#!/usr/bin/env python
"""Probe: which kinds of copying the tiny model's text stack learns from scratch, on synthetic token sequences.

    .venv/bin/python scripts/probe_copy_tasks.py                          # 3,000 steps a task, tiny Qwen2-VL 128 x 4
    .venv/bin/python scripts/probe_copy_tasks.py --steps 500 --tasks fixed,shifted --arch llama

Each task trains a fresh model (plain torch, AdamW, batch ``--batch``) on its own sequences and reports, every
``--every`` steps, the share of the copied tokens predicted right that only copying can predict:

* ``fixed``: 8 random tokens, 24 random tokens, a separator, the same 24 again — the copy sits at a fixed offset, so
  attending by position solves it;
* ``shifted``: the same with a random prefix (0-30 tokens) and length (6-30): only the content says where to copy from
  (the first layout of :mod:`thinkimg.train.copy_drill`'s sequences, before they got delimiters);
* ``recall``: ten words of 2-4 pieces, a separator, one of the ten again (its first piece is not predictable; the
  later pieces are scored, not the closing comma) — a label answered from a list;
* ``periodic``: a random prefix, then a pattern of 3-12 tokens repeated to the end (scored after its first period).

Tasks joined by ``>`` (``shifted>recall``) train one model through each in turn, ``--steps`` each: does a copy
learnt on one kind of sequence carry over to the next? Tokens are drawn from ``--pieces`` ids of the model's
vocabulary. Prints a table and writes JSON (``--output``).
Used for the README's "what limits it"; the model is built by :func:`thinkimg.train.tiny.build_tiny_model`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ("fixed", "shifted", "recall", "periodic")
SEP, COMMA, FIRST_PIECE = 301, 300, 400


def make_batch(task: str, rng: random.Random, pieces: list[int], batch: int):
    """(input ids, labels with -100 outside the copy, mask of the scored positions) for one batch of ``task``."""
    import torch

    rows = []  # (ids, first position with a loss, first scored position[, end of the scored positions])
    for _ in range(batch):
        draw = lambda n: [rng.choice(pieces) for _ in range(n)]  # noqa: E731
        if task == "shifted":  # a random prefix, a run of random length, the separator, the run again
            pre, x = draw(rng.randint(0, 30)), draw(rng.randint(6, 30))
            rows.append((pre + x + [SEP] + x, len(pre) + len(x) + 1, len(pre) + len(x) + 2))
        elif task == "fixed":
            pre, x = draw(8), draw(24)
            rows.append((pre + x + [SEP] + x, 33, 34))
        elif task == "recall":
            words = [draw(rng.randint(2, 4)) for _ in range(10)]
            ids = [t for w in words for t in w + [COMMA]] + [SEP]
            start = len(ids)
            word = rng.choice(words)
            rows.append((ids + word + [COMMA], start, start + 1, start + len(word)))
        elif task == "periodic":
            pre, k = draw(rng.randint(0, 20)), rng.randint(3, 12)
            pattern = draw(k)
            ids = (pre + pattern * (96 // k + 1))[:96]
            rows.append((ids, len(pre) + k, len(pre) + k))
        else:
            raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    width = max(len(r[0]) for r in rows)
    ids = torch.full((batch, width), COMMA)
    labels = torch.full((batch, width), -100)
    scored = torch.zeros((batch, width), dtype=torch.bool)
    for i, (row, start, first_scored, *end) in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        labels[i, start:len(row)] = ids[i, start:len(row)]
        scored[i, first_scored:end[0] if end else len(row)] = True
    return ids, labels, scored


def build_model(arch: str, layers: int, tmp: Path):
    import torch

    if arch == "llama":
        from transformers import LlamaConfig, LlamaForCausalLM

        return LlamaForCausalLM(LlamaConfig(vocab_size=2100, hidden_size=128, num_hidden_layers=layers,
                                            num_attention_heads=4, num_key_value_heads=2, intermediate_size=256,
                                            tie_word_embeddings=True, rope_theta=10000.0))
    from transformers import AutoModelForImageTextToText

    from thinkimg.train.tiny import build_tiny_model

    path = build_tiny_model(tmp / f"tiny-{layers}", seed=0, num_layers=layers)
    return AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32)


def run_curriculum(spec: str, args) -> dict[str, list[dict]]:
    """Train a fresh model on each task of ``spec`` ("a>b") in turn; each task's accuracy curve on fresh batches."""
    import torch

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(args.arch, args.layers, Path(tmp))
    return {task: train_task(model, task, rng, args) for task in spec.split(">")}


def train_task(model, task: str, rng: random.Random, args) -> list[dict]:
    """``args.steps`` steps of ``task`` on ``model`` (a fresh optimizer); the accuracy curve on fresh batches."""
    import torch

    pieces = list(range(FIRST_PIECE, FIRST_PIECE + args.pieces))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    curve, start = [], time.time()
    for step in range(1, args.steps + 1):
        ids, labels, _ = make_batch(task, rng, pieces, args.batch)
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % args.every == 0 or step == args.steps:
            right = total = 0
            with torch.no_grad():
                for _ in range(4):
                    ids, _, scored = make_batch(task, rng, pieces, args.batch)
                    pred = model(input_ids=ids).logits[:, :-1].argmax(-1)
                    mask = scored[:, 1:]
                    right += ((pred == ids[:, 1:]) & mask).sum().item()
                    total += mask.sum().item()
            curve.append({"step": step, "accuracy": round(right / total, 4), "loss": round(loss.item(), 4),
                          "seconds": round(time.time() - start, 1)})
            print(f"{task:9s} step {step:5d}  copied right {right / total:6.1%}  loss {loss.item():.3f}", flush=True)
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS),
                        help="comma-separated, each a fresh model: " + ", ".join(TASKS) + "; a>b: one model, a then b")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pieces", type=int, default=400, help="how many token ids the sequences are drawn from")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--arch", choices=("qwen2vl", "llama"), default="qwen2vl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=ROOT / "artifacts" / "probes" / "copy_tasks.json")
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for spec in tasks for t in spec.split(">") if t not in TASKS]
    if unknown or not tasks:
        parser.error(f"--tasks: unknown {unknown}; choose from {', '.join(TASKS)}")
    if args.steps < 1 or args.every < 1 or args.batch < 1 or not 1 <= args.pieces <= 1600:
        parser.error("--steps, --every and --batch must be >= 1, --pieces 1-1600")

    import torch

    torch.set_num_threads(1)
    results = {}
    for spec in tasks:
        for task, curve in run_curriculum(spec, args).items():
            results[f"{spec}:{task}" if ">" in spec else task] = curve
    width = max(len(name) for name in results) + 2
    print(f"\n{'task':{width}s}" + "".join(f"{p['step']:>8d}" for p in next(iter(results.values()))))
    for task, curve in results.items():
        print(f"{task:{width}s}" + "".join(f"{p['accuracy']:8.1%}" for p in curve))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.output.write_text(json.dumps({"settings": settings, "curves": results}, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
