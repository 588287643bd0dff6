"""The learning result over several seeds: mean and spread, since one run cannot tell a recipe change from luck.

    python scripts/learning_seeds.py [--params configs/learning_result.yaml] [--seeds 0 1 2]
                                     [--out artifacts/learning/seeds] [--table metrics/learning_result_seeds]
                                     [--keep-models]

For each seed it writes ``OUT/seed-N/params.yaml`` (the params with ``model.seed``, ``model.pretrain.seed``,
``sft.seed`` and ``grpo.seed`` set to N: the initialisation, the drill, the warm start's stream, SFT's order and
relabelling, GRPO's sampling; the dataset and the eval questions stay the same), runs scripts/learning_result.sh on
it (~35 min on 2 CPU cores) and keeps its table as ``OUT/seed-N/learning_result.json`` and its episodes (the eval's
``*.jsonl``) under ``OUT/seed-N/eval/``; with ``--keep-models`` also its SFT and GRPO models (without checkpoints)
under ``OUT/seed-N/models/``, for later stages to start from each seed's model. A seed whose table is there is not
run again, so an interrupted sweep continues where it stopped. Then it writes TABLE.json and TABLE.md: per model,
each seed's numbers and their mean, minimum and maximum, and per question type the answers right with tools summed
over the seeds whose episodes are kept. The stages write into the params' own folders, so after the sweep
artifacts/learning/ and metrics/learning_result.* hold the last seed's run.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: The numbers summarised, as the eval's table names them, and how they are printed.
COLUMNS = {"accuracy": "with tools", "accuracy_without_tools": "without tools", "valid_format_rate": "valid format",
           "valid_call_rate": "valid calls"}


def seeded(params: dict, seed: int) -> dict:
    """``params`` with every training seed set to ``seed`` (the data engine's seed left alone)."""
    out = copy.deepcopy(params)
    for section in ("model", "sft", "grpo"):
        if section not in out:
            raise SystemExit(f"params: no `{section}` section to seed")
        out[section]["seed"] = seed
    out["model"].setdefault("pretrain", {})["seed"] = seed
    return out


def summarise(results: dict[int, dict]) -> dict:
    """Per model and column: each seed's value, the mean, minimum and maximum (from the eval's table JSONs)."""
    if not results:
        raise SystemExit("no seed has a result to summarise")
    models = next(iter(results.values()))["models"]
    out: dict = {"seeds": sorted(results), "models": {}}
    for model in models:
        out["models"][model] = {}
        for column in COLUMNS:
            values = [results[s]["models"][model][column] for s in sorted(results)]
            out["models"][model][column] = {"values": values, "mean": statistics.fmean(values),
                                            "min": min(values), "max": max(values)}
    return out


def by_type(folders: dict[int, Path], models: list[str]) -> dict[str, dict[str, dict[str, int]]]:
    """Per model and question type: answers right with tools and questions, summed over the seeds whose episodes
    (``FOLDER/eval/MODEL.jsonl``) are kept."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for model in models:
        counts: dict[str, dict[str, int]] = {}
        for folder in folders.values():
            episodes = folder / "eval" / f"{model}.jsonl"
            if not episodes.is_file():
                continue
            for number, line in enumerate(episodes.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    kind, correct = str(record["question_type"]), bool(record["correct"])
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise SystemExit(f"{episodes}:{number}: not an episode record ({err})") from err
                cell = counts.setdefault(kind, {"right": 0, "n": 0})
                cell["right"] += correct
                cell["n"] += 1
        if counts:
            out[model] = dict(sorted(counts.items()))
    return out


def markdown(summary: dict) -> str:
    """The summary as a table: mean (min-max) in %, one row per model."""
    seeds = ", ".join(str(s) for s in summary["seeds"])
    lines = [f"Seeds {seeds}: mean (min - max) over {len(summary['seeds'])} runs", "",
             "| model | " + " | ".join(COLUMNS.values()) + " |", "|---|" + "---|" * len(COLUMNS)]
    for model, columns in summary["models"].items():
        cells = [f"{100 * c['mean']:.1f} % ({100 * c['min']:.1f} - {100 * c['max']:.1f})" for c in columns.values()]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    types = summary.get("by_type") or {}
    if types:
        models = list(types)
        kinds = sorted({kind for counts in types.values() for kind in counts})
        lines += ["", f"Per question type, with tools: right of n, summed over seeds "
                      f"{', '.join(str(s) for s in summary.get('by_type_seeds', []))}", "",
                  "| type | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for kind in kinds:
            cells = [f"{types[m][kind]['right']} of {types[m][kind]['n']}" if kind in types[m] else "-" for m in models]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=REPO / "configs" / "learning_result.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=REPO / "artifacts" / "learning" / "seeds")
    parser.add_argument("--table", type=Path, default=REPO / "metrics" / "learning_result_seeds")
    parser.add_argument("--runner", default=str(REPO / "scripts" / "learning_result.sh"),
                        help="The command run on each seed's params file (its one argument).")
    parser.add_argument("--keep-models", action="store_true",
                        help="Keep each seed's SFT and GRPO models (no checkpoints) under OUT/seed-N/models/.")
    args = parser.parse_args(argv)
    if not args.params.is_file():
        raise SystemExit(f"{args.params}: params file not found")
    params = yaml.safe_load(args.params.read_text(encoding="utf-8"))
    metrics = REPO / params.get("eval", {}).get("metrics", "metrics/learning_result.json")
    episodes = REPO / params.get("eval", {}).get("out", "artifacts/learning/eval")
    results, folders = {}, {}
    for seed in args.seeds:
        folder = args.out / f"seed-{seed}"
        result = folder / "learning_result.json"
        if not result.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            seed_params = folder / "params.yaml"
            seed_params.write_text(yaml.safe_dump(seeded(params, seed), sort_keys=False), encoding="utf-8")
            print(f"seed {seed}: {args.runner} {seed_params}", flush=True)
            done = subprocess.run(["bash", args.runner, str(seed_params)], cwd=REPO)
            if done.returncode:
                raise SystemExit(f"seed {seed}: {args.runner} {seed_params} failed (exit {done.returncode}; its "
                                 "output is above); rerun to continue from this seed")
            (folder / "eval").mkdir(exist_ok=True)
            for path in sorted(episodes.glob("*.jsonl")) if episodes.is_dir() else []:
                shutil.copy2(path, folder / "eval" / path.name)
            for stage in ("sft", "grpo") if args.keep_models else ():
                model = REPO / params[stage]["out"]
                shutil.copytree(model, folder / "models" / stage, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("checkpoint-*"))
            result.write_text(metrics.read_text(encoding="utf-8"), encoding="utf-8")
        results[seed] = json.loads(result.read_text(encoding="utf-8"))
        folders[seed] = folder
    summary = summarise(results)
    kept = {seed: folder for seed, folder in folders.items() if (folder / "eval").is_dir()
            and any((folder / "eval").glob("*.jsonl"))}
    summary["by_type"] = by_type(kept, list(summary["models"]))
    summary["by_type_seeds"] = sorted(kept)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    table = markdown(summary)
    args.table.with_suffix(".md").write_text(table, encoding="utf-8")
    sys.stdout.write(table)


if __name__ == "__main__":
    main()
