#!/usr/bin/env python
"""Benchmark: the batched rollout loop vs one episode at a time vs generation alone.

    .venv/bin/python bench/rollout.py                       # tiny HF model built on the fly, 16 episodes
    .venv/bin/python bench/rollout.py --model hf --model-args pretrained=PATH --episodes 32

Same policy, same rows (synthetic value questions on rendered bar charts), three ways:

* ``sequential``: ``batch_size=1`` — one episode at a time, tools called one after another;
* ``batched``: ``batch_size=B`` — up to B episodes in flight, one generation call for all, tool calls concurrent;
* ``generation only``: batched, with tools answered instantly by a stub client (canned text) — the floor set by
  generation itself.

Prints a table and writes ``bench/results/rollout.json``. Goals: batched >= 3x sequential, >= 0.8x generation only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from thinkimg.agent.policies import build_policy  # noqa: E402
from thinkimg.agent.rollout import rollout  # noqa: E402
from thinkimg.config import ToolsConfig  # noqa: E402
from thinkimg.eval.evaluator import coerce_value  # noqa: E402
from thinkimg.eval.tasks import load_task, parse_key_values  # noqa: E402
from thinkimg.tools import REGISTRY, InProcessToolClient, ToolClient, ToolResult  # noqa: E402


class InstantToolClient(ToolClient):
    """Answers every call at once with canned text (no image): isolates generation time."""

    def __init__(self, specs):
        self._specs = specs

    def call(self, name, image, arguments=None):
        return ToolResult(text=f"{name}: done.")

    def specs(self):
        return self._specs


def run(policy, rows, client, batch_size: int, max_rounds: int) -> tuple[float, int]:
    start = time.perf_counter()
    episodes = list(rollout(policy, rows, client=client, max_rounds=max_rounds, batch_size=batch_size))
    return time.perf_counter() - start, sum(e.rounds for e in episodes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="hf")
    ap.add_argument("--model-args", default="", help="key=value,... (default: a tiny model built in a temp dir)")
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-rounds", type=int, default=3)
    ap.add_argument("--tools", default="OCR,Point,DrawHorizontalLineByY,Crop")
    args = ap.parse_args()

    model_args = {k: coerce_value(v) for k, v in parse_key_values(args.model_args, option="--model-args").items()}
    tmp = None
    if args.model == "hf" and "pretrained" not in model_args:
        from thinkimg.train.tiny import build_tiny_model

        tmp = tempfile.TemporaryDirectory(prefix="thinkimg-bench-")
        model_args["pretrained"] = str(build_tiny_model(Path(tmp.name) / "tiny"))
    if "max_new_tokens" not in model_args and args.model == "hf":
        model_args["max_new_tokens"] = 48
    policy = build_policy(args.model, **model_args)
    rows = list(load_task("synthetic_value", n=args.episodes, seed=0))
    warm_rows = list(load_task("synthetic_value", n=args.batch_size, seed=1))
    tools_config = ToolsConfig(tools=args.tools.split(","))

    def fresh_client() -> ToolClient:
        """A client with its own (empty) OCR cache, its engine built and warm, so no mode reuses another's OCR."""
        client = InProcessToolClient(tools_config)
        run(policy, warm_rows[:2], client, 2, 1)  # warm up the OCR engine (other charts than the timed ones)
        return client

    instant = InstantToolClient(REGISTRY.specs(tools_config.tools))
    # Warm the model at every batch shape the timed modes use (CUDA kernels, allocator), on charts not timed.
    run(policy, warm_rows, instant, args.batch_size, args.max_rounds)
    run(policy, warm_rows[:1], instant, 1, args.max_rounds)

    results = {}
    for label, bs in (("sequential", 1), ("batched", args.batch_size), ("generation only", args.batch_size)):
        cl = instant if label == "generation only" else fresh_client()
        seconds, turns = run(policy, rows, cl, bs, args.max_rounds)
        results[label] = {"seconds": round(seconds, 3), "model_turns": turns,
                          "episodes_per_s": round(len(rows) / seconds, 3)}
    b = results["batched"]["seconds"]
    ratios = {"batched_vs_sequential": round(results["sequential"]["seconds"] / b, 2),
              "batched_vs_generation_only": round(results["generation only"]["seconds"] / b, 2)}

    table = Table(title=f"Rollout: {len(rows)} episodes, max {args.max_rounds} rounds, policy {args.model}")
    for col in ("mode", "seconds", "model turns", "episodes/s"):
        table.add_column(col, justify="right")
    for label, r in results.items():
        table.add_row(label, f"{r['seconds']:.2f}", str(r["model_turns"]), f"{r['episodes_per_s']:.2f}")
    console = Console(width=120)
    console.print(table)
    console.print(f"batched / sequential speed-up: {ratios['batched_vs_sequential']}x (goal >= 3x); "
                  f"batched vs generation only: {ratios['batched_vs_generation_only']}x (goal >= 0.8x)")
    out = ROOT / "bench" / "results" / "rollout.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "ratios": ratios, "args": vars(args),
                               "machine": {"cores": os.cpu_count(), "platform": platform.platform()}}, indent=2))
    console.print(f"wrote {out}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
