"""The learning result: base -> SFT -> GRPO, each evaluated on the held-out eval split, with tools and without.

    python scripts/learning_result.py --params params.yaml --n 200

Reads the model folders from the params (model.out, sft.out, grpo.out; a stage whose folder is missing is skipped),
runs the eval harness (``charts`` task, eval split, first ``n`` questions; the no-tool ablation withholds the tools),
prints a table and writes ``bench/results/learning.json`` and the table as Markdown beside it. Eval results are
resumable JSONL under ``--runs``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thinkimg.agent.policies.hf import HFPolicy  # noqa: E402
from thinkimg.config import load_yaml  # noqa: E402
from thinkimg.eval.evaluator import evaluate  # noqa: E402
from thinkimg.eval.tasks import load_task  # noqa: E402
from thinkimg.train.base import ModelParams  # noqa: E402
from thinkimg.train.grpo import GRPOParams  # noqa: E402
from thinkimg.train.sft import SFTParams  # noqa: E402


def valid_call_rate(records: list[dict]) -> float | None:
    """Tool calls that parsed and ran, over all attempted calls (successful, refused and malformed turns)."""
    calls = sum(r["tool_calls"] for r in records)
    attempted = calls + sum(r["format_errors"] for r in records)
    return (calls - sum(r["tool_failures"] for r in records)) / attempted if attempted else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--n", type=int, default=200, help="eval questions (the first n of the eval split)")
    ap.add_argument("--runs", type=Path, default=REPO / "artifacts" / "runs" / "learning")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "learning.json")
    ap.add_argument("--max-rounds", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--stages", default="base,sft,grpo", help="comma-separated stages to evaluate")
    args = ap.parse_args()

    model = load_yaml(args.params, ModelParams, section="model")
    sft = load_yaml(args.params, SFTParams, section="sft")
    grpo = load_yaml(args.params, GRPOParams, section="grpo")
    stages = {"base": model.pretrained or model.out, "sft": sft.out, "grpo": grpo.out}
    rows = load_task("charts", path=sft.dataset, split="eval", n=args.n)
    table = {}
    previous = json.loads(args.out.read_text())["stages"] if args.out.is_file() else {}
    for stage, path in stages.items():
        if stage not in args.stages.split(","):
            if stage in previous:
                table[stage] = previous[stage]
            continue
        if not (Path(path) / "config.json").is_file():
            print(f"{stage}: {path} not found, skipped")
            continue
        start = time.perf_counter()
        policy = HFPolicy(str(path), max_new_tokens=96, batch_size=args.batch_size, device="cpu")
        output = args.runs / f"{stage}.jsonl"
        summary = evaluate(policy, rows, output=output, max_rounds=args.max_rounds, batch_size=args.batch_size,
                           viewer=False)
        records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines() if line.strip()]
        table[stage] = {
            "model": str(path), "n": summary["n"], "accuracy": summary["accuracy"],
            "accuracy_without_tools": summary["accuracy_without_tools"],
            "valid_format_rate": summary["valid_format_rate"], "valid_call_rate": valid_call_rate(records),
            "calls_per_episode": summary["calls_per_episode"], "tool_failure_rate": summary["tool_failure_rate"],
            "by_type": {k: v["accuracy"] for k, v in summary["by_type"].items()},
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(stage, json.dumps({k: v for k, v in table[stage].items() if k != "by_type"}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"n": args.n, "params": str(args.params), "stages": table}, indent=2) + "\n")
    lines = ["| stage | accuracy with tools | without tools | valid format | valid calls | calls/episode |",
             "|---|---|---|---|---|---|"]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    for stage, row in table.items():
        lines.append(f"| {stage} | {pct(row['accuracy'])} | {pct(row['accuracy_without_tools'])} | "
                     f"{pct(row['valid_format_rate'])} | {pct(row['valid_call_rate'])} | "
                     f"{row['calls_per_episode']:.2f} |")
    markdown = "\n".join(lines)
    args.out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
