#!/usr/bin/env python
"""Benchmark: where a GRPO step's time goes — generation, waiting on tools, the rest of the rollout, forward/backward.

    .venv/bin/python bench/grpo_step.py                                   # the SFT model of params.yaml if built
    .venv/bin/python bench/grpo_step.py --model artifacts/models/sft --steps 3 --generations 8

The model should already call tools (the SFT output); a random model never does, and then the table says so.
Real ``GRPOTrainer`` steps on the first questions of the dataset's ``rl`` split, tools in-process (or over HTTP with
``--tool-server URL``), run twice: with the tool-result cache and without it. Timed phases per step:

* ``generation``: ``_generate_single_turn`` (every model turn of every rollout);
* ``tools``: time inside ToolClient calls (what the rollouts waited on);
* ``rollout other``: the rest of producing the batch (templating, tokenizing, rewards, old log-probs);
* ``forward/backward``: the rest of the training step (loss forward, backward, optimizer).

Each run gets a fresh ToolClient (the in-process tools keep their own OCR cache by image content, so "uncached" means
without the client-level result cache only); the OCR engine is loaded before timing. Over HTTP (``--http`` starts a
local tool server) the client cache also saves the request, the PNG transfer and the server's work.

Prints a table and writes ``bench/results/grpo_step.json``. Goal: tools < 10 % of the step (with the cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from trl import GRPOTrainer  # noqa: E402

from thinkimg.tools import CachedToolClient, ToolClient  # noqa: E402
from thinkimg.train.grpo import GRPOParams, build_trainer, tool_client  # noqa: E402


class TimedClient(ToolClient):
    """Adds up the wall time spent inside tool calls (from any thread)."""

    def __init__(self, client: ToolClient):
        self.client = client
        self.seconds = 0.0
        self.calls = 0
        self._lock = threading.Lock()

    def call(self, name, image, arguments=None):
        start = time.perf_counter()
        try:
            return self.client.call(name, image, arguments)
        finally:
            with self._lock:
                self.seconds += time.perf_counter() - start
                self.calls += 1

    def specs(self):
        return self.client.specs()


class TimedGRPOTrainer(GRPOTrainer):
    """GRPOTrainer that adds up the time of generation, of producing the batch, and of whole steps."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timings = {"generation": 0.0, "rollout": 0.0, "step": 0.0}

    def _timed(self, phase: str, method, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            self.timings[phase] += time.perf_counter() - start

    def _generate_single_turn(self, *args, **kwargs):
        return self._timed("generation", super()._generate_single_turn, *args, **kwargs)

    def _generate_and_score_completions(self, *args, **kwargs):
        return self._timed("rollout", super()._generate_and_score_completions, *args, **kwargs)

    def training_step(self, *args, **kwargs):
        return self._timed("step", super().training_step, *args, **kwargs)


def run(params: GRPOParams, cached: bool, tool_server: str | None) -> dict:
    inner = tool_client(params.model_copy(update={"tool_cache_entries": 0, "tool_server_url": tool_server}))
    timed = TimedClient(inner)
    client = CachedToolClient(timed) if cached else timed
    trainer, _ = build_trainer(params, resume=False, mlflow_run=False, trainer_cls=TimedGRPOTrainer, client=client)
    trainer.train()
    t = trainer.timings
    steps = trainer.state.global_step
    history = [e for e in trainer.state.log_history if "tools/call_frequency" in e]
    phases = {
        "generation": t["generation"], "tools": timed.seconds,
        "rollout other": t["rollout"] - t["generation"] - timed.seconds,
        "forward/backward": t["step"] - t["rollout"],
    }
    return {
        "steps": steps,
        "seconds_per_step": {k: round(v / steps, 3) for k, v in phases.items()},
        "step_seconds": round(t["step"] / steps, 3),
        "share": {k: round(v / t["step"], 3) for k, v in phases.items()},
        "tool_calls_run": timed.calls,
        "cache": {"hits": client.hits, "misses": client.misses} if cached else None,
        "tool_call_frequency": [e["tools/call_frequency"] for e in history],
    }


def _warm_up(url: str | None) -> None:
    """Load the OCR engine before timing (in this process, or the server's), on an image no run will see."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 60), "white")
    ImageDraw.Draw(image).text((10, 20), "warm up 123", fill="black")
    if url:
        from thinkimg.server.client import HTTPToolClient

        with HTTPToolClient(url) as client:
            client.call("OCR", image, {})
    else:
        from thinkimg.tools import InProcessToolClient

        InProcessToolClient().call("OCR", image, {})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "artifacts" / "models" / "sft")
    ap.add_argument("--dataset", type=Path, default=ROOT / "artifacts" / "datasets" / "charts")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--max-completion-length", type=int, default=1024)
    ap.add_argument("--tool-server", default=None, help="tool server URL (default: tools in-process)")
    ap.add_argument("--http", action="store_true", help="start a local tool server and call the tools over HTTP")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "2")))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not (args.model / "config.json").is_file():
        sys.exit(f"{args.model}: no model (run `thinkimg train base-model` and `thinkimg train sft` first)")
    results = {}
    server = None
    if args.http and not args.tool_server:
        from thinkimg.server.launcher import ToolServer

        server = ToolServer(ROOT / "configs" / "tools.yaml").start()
        args.tool_server = server.url
    _warm_up(args.tool_server)
    with tempfile.TemporaryDirectory() as tmp:
        for cached in (False, True):
            params = GRPOParams(model=args.model, dataset=args.dataset, out=Path(tmp) / "out", max_steps=args.steps,
                                num_generations=args.generations, per_device_batch_size=args.generations,
                                max_completion_length=args.max_completion_length, max_tool_calls=3,
                                save_steps=10_000, tools_config=ROOT / "configs" / "tools.yaml")
            results["cached" if cached else "uncached"] = run(params, cached, args.tool_server)
    if server is not None:
        server.stop()

    table = Table(title=f"GRPO step ({args.generations} rollouts of 1 prompt, {args.steps} steps, "
                        f"{args.threads} threads)")
    table.add_column("phase")
    for label in results:
        table.add_column(f"{label} s/step", justify="right")
        table.add_column(f"{label} share", justify="right")
    for phase in results["uncached"]["seconds_per_step"]:
        cells = []
        for r in results.values():
            cells += [f"{r['seconds_per_step'][phase]:.3f}", f"{100 * r['share'][phase]:.1f} %"]
        table.add_row(phase, *cells)
    table.add_row("step", *[c for r in results.values() for c in (f"{r['step_seconds']:.3f}", "100 %")])
    console = Console()
    console.print(table)
    ratio = round(results["uncached"]["step_seconds"] / results["cached"]["step_seconds"], 2)
    calls = [f for r in results.values() for f in r["tool_call_frequency"]]
    console.print(f"step time uncached / cached: {ratio}x; tool calls per rollout per step: {calls}")
    if not any(calls):
        console.print("[yellow]the model made no tool call: tool timings are empty (train SFT first)[/yellow]")
    out = ROOT / "bench" / "results" / "grpo_step.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "uncached_vs_cached": ratio, "args": {
        k: str(v) for k, v in vars(args).items()}, "machine": {"cores": os.cpu_count(), "cpu": platform.processor()
                                                              or platform.machine()}}, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
