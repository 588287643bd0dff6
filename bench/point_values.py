#!/usr/bin/env python
"""Benchmark: Point's several values in one reply against one call per value.

    .venv/bin/python bench/point_values.py                # 60 sampled charts of each kind (~4 min)
    .venv/bin/python bench/point_values.py --charts 20

Single-series bar, horizontal bar and line charts with printed values are sampled as the data engine samples them
(synthetic tables, ``sample_style`` with the values printed). On each, two categories A and B: Point 'the value
labels of "A" and "B"' (one call) against "the value label of A" and "the value label of B" (two calls), and on bar
charts "the value labels" (every bar's) against one "the value label of X" call per bar. A reply counts as right
when it lists every value asked for, each within 5 % of the table (ChartQA's relaxed accuracy); failures are an
error (a label or a value not found) or a wrong or missing value. Both ways run in the same process on the same
charts, the OCR of each chart cached for both. Prints a table and writes ``bench/results/point_values.json``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import platform
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from thinkimg.config import ToolsConfig  # noqa: E402
from thinkimg.data.render import render_chart, sample_style  # noqa: E402
from thinkimg.data.synthetic import synthetic_table  # noqa: E402
from thinkimg.tools import InProcessToolClient, ToolError  # noqa: E402

COLUMNS = ["asked", "right", "error", "wrong or missing", "seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=60, help="charts sampled of each kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    client = InProcessToolClient(ToolsConfig(tools=["Point"]))
    rows: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for kind in ("bar", "hbar", "line"):
        for rng, table, chart in _charts(kind, args.charts, args.seed):
            try:  # OCR once, cached for both ways
                client.call("Point", chart.image, {"description": "the chart title"})
            except ToolError:
                pass
            pair = rng.sample(table.categories, 2)
            quoted = " and ".join(json.dumps(c) for c in pair)
            _ask_one_call(client, chart, table, f"the value labels of {quoted}", pair,
                          rows[f"{kind}: A and B, one call"])
            _ask_each(client, chart, table, pair, rows[f"{kind}: A and B, a call each"])
            if kind != "line":
                _ask_one_call(client, chart, table, "the value labels", list(table.categories),
                              rows[f"{kind}: every bar, one call"])
                _ask_each(client, chart, table, list(table.categories), rows[f"{kind}: every bar, a call each"])
    _print(rows, f"Point: several printed values ({args.charts} sampled charts of each kind)")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "point_values.json").write_text(json.dumps({
        "charts": args.charts, "seed": args.seed, "rows": {name: dict(row) for name, row in rows.items()},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }, indent=2) + "\n", encoding="utf-8")


def _close(text: str | None, value: float) -> bool:
    number = re.sub(r"[^\d.\-]", "", text or "")
    try:
        return abs(float(number) - value) <= 0.05 * abs(value) if value else float(number) == 0
    except ValueError:
        return False


def _ask_one_call(client, chart, table, description: str, categories: list[str], row: collections.Counter) -> None:
    row["asked"] += 1
    start = time.perf_counter()
    try:
        result = client.call("Point", chart.image, {"description": description})
    except ToolError:
        row["error"] += 1
        return
    finally:
        row["seconds"] += time.perf_counter() - start
    got = result.data["matched"]
    if len(got) == len(categories):  # every bar's comes in the chart's order; the table's may run the other way
        ok = all(_close(t, table.value(c)) for t, c in zip(got, categories)) or \
            all(_close(t, table.value(c)) for t, c in zip(got, reversed(categories)))
    else:
        ok = False
    row["right" if ok else "wrong or missing"] += 1


def _ask_each(client, chart, table, categories: list[str], row: collections.Counter) -> None:
    row["asked"] += 1
    start = time.perf_counter()
    try:
        results = [client.call("Point", chart.image, {"description": f"the value label of {c}"}) for c in categories]
    except ToolError:
        row["error"] += 1
        return
    finally:
        row["seconds"] += time.perf_counter() - start
    ok = all(r.data.get("kind") in ("value", "line_value") and len(r.data["matched"]) == 1
             and _close(r.data["matched"][0], table.value(c)) for r, c in zip(results, categories))
    row["right" if ok else "wrong or missing"] += 1


def _charts(kind: str, n: int, seed: int):
    """``n`` single-series charts of ``kind`` with their values printed, sampled as the data engine samples them."""
    for i in range(n):
        rng = random.Random(f"{seed}/{kind}/{i}")
        n_categories = rng.randint(3, 8)
        try:
            table = synthetic_table(rng, n_categories=n_categories, n_series=1, ordered=kind == "line")
        except ValueError:
            continue
        style = dataclasses.replace(sample_style(rng, kind, n_series=1, n_categories=n_categories), value_labels=True)
        chart = render_chart(table, style)
        if all(len(chart.find("value_label", category=c)) == 1 for c in table.categories):
            yield rng, table, chart


def _print(rows: dict[str, collections.Counter], title: str) -> None:
    out = Table(title=title)
    out.add_column("charts, values asked, calls")
    for c in COLUMNS:
        out.add_column(c, justify="right")
    for name, row in rows.items():
        asked = max(1, row["asked"])
        out.add_row(name, str(row["asked"]), *[f"{row[c]} ({100 * row[c] / asked:.0f} %)" for c in COLUMNS[1:-1]],
                    f"{row['seconds'] / asked:.2f} / chart")
    Console().print(out)


if __name__ == "__main__":
    main()
