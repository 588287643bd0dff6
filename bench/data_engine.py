#!/usr/bin/env python
"""Benchmark: the data engine's throughput — charts rendered per second, trajectories verified per second.

    .venv/bin/python bench/data_engine.py                  # 48 charts, 4 trajectory chunks, 1 and 2 processes
    .venv/bin/python bench/data_engine.py --charts 96 --sft-chunks 8 --workers 2

* ``render``: sample a chart (kind, table, style), render it with matplotlib and its metadata, encode the PNG —
  what every chart of every split costs;
* ``trajectories``: the ``sft`` chunk work — render, ask, run the scripted expert with the real tools (OCR is most of
  it), keep what reaches the gold answer.

Each is run in one process and in ``--workers`` processes (the way ``thinkimg data curate`` runs); prints a table
and writes ``bench/results/data_engine.json``. Goal: >= 20 charts/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from thinkimg.data import curate as engine  # noqa: E402
from thinkimg.images import encode_png  # noqa: E402


def _render(indices: list[int]) -> int:
    params: engine.DataParams = engine._WORKER["params"]
    for i in indices:
        rng = random.Random(f"bench/{i}")
        chart = engine.sample_chart(rng, "train", engine._WORKER["tables"], params.chart_kinds)
        encode_png(chart.image)
    return len(indices)


def _sft(chunk: int) -> tuple[int, int]:
    result = engine.run_chunk("sft", chunk)
    attempted = sum(a for a, _ in result["stats"].values())
    return attempted, len(result["records"])


def _timed(fn, jobs: list, workers: int, params_json: str):
    start = time.perf_counter()
    if workers == 1:
        engine._worker_init(params_json)
        fn(jobs[0])  # warm: imports, OCR engine
        start = time.perf_counter()
        out = [fn(job) for job in jobs[1:]]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=engine._worker_init,
                                 initargs=(params_json,)) as pool:
            list(pool.map(fn, jobs[:workers]))  # warm every worker
            start = time.perf_counter()
            out = list(pool.map(fn, jobs[workers:]))
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=48, help="charts rendered per measurement")
    parser.add_argument("--sft-chunks", type=int, default=4, help="trajectory chunks per measurement")
    parser.add_argument("--chunk-charts", type=int, default=6, help="charts per trajectory chunk")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        params = engine.DataParams(out=Path(tmp) / "ds", data_dir=ROOT / "data",
                                   tools_config=ROOT / "configs" / "tools.yaml", chunk_charts=args.chunk_charts)
        for workers in sorted({1, args.workers}):
            pj = params.model_copy(update={"workers": workers}).model_dump_json()
            per = 8
            jobs = [list(range(i, i + per)) for i in range(0, args.charts + per * workers, per)]
            seconds, counts = _timed(_render, jobs, workers, pj)
            n = sum(counts)
            results[f"render, {workers} process(es)"] = {"items": n, "seconds": round(seconds, 3),
                                                         "per_second": round(n / seconds, 2)}
            seconds, out = _timed(_sft, list(range(args.sft_chunks + workers)), workers, pj)
            attempted, kept = sum(a for a, _ in out), sum(k for _, k in out)
            results[f"trajectories, {workers} process(es)"] = {
                "items": attempted, "kept": kept, "seconds": round(seconds, 3),
                "per_second": round(attempted / seconds, 2), "kept_per_second": round(kept / seconds, 2)}

    table = Table(title="data engine throughput")
    for col in ("measurement", "items", "seconds", "per second", "kept per second"):
        table.add_column(col)
    for label, r in results.items():
        table.add_row(label, str(r["items"]), f"{r['seconds']:.2f}", f"{r['per_second']:.2f}",
                      f"{r['kept_per_second']:.2f}" if "kept_per_second" in r else "-")
    Console().print(table)
    if args.workers > 1:
        one, many = results["render, 1 process(es)"], results[f"render, {args.workers} process(es)"]
        print(f"render speed-up with {args.workers} processes: {many['per_second'] / one['per_second']:.2f}x")
    out = ROOT / "bench" / "results" / "data_engine.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "args": vars(args), "cpus": os.cpu_count(),
                               "python": platform.python_version()}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
