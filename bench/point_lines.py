#!/usr/bin/env python
"""Benchmark: how often Point finds the point of a line, and reads the right value through a drawn line.

    .venv/bin/python bench/point_lines.py                 # 100 + 100 sampled line charts, 2 points each (~6 min)
    .venv/bin/python bench/point_lines.py --charts 40

Line charts are sampled as the data engine samples them (synthetic tables, ``sample_style``: palettes, markers or
none, slanted or level tick labels, legends in every place); for two categories of each, Point is asked for "the
point of S at X" (a random series S; "the point at X" on one-line charts) and the answer is checked against the
renderer's marker anchor (``within 3 px``), then DrawHorizontalLineByY at the answer's y reads the axis and the
reading is checked against the table (``reads within 5 %``, ChartQA's relaxed accuracy). Failures are counted by
kind (the label not read by OCR, no point found, a wrong point). Then as many line charts again with their values
printed: Point is asked for "the value label of S for X" ("the value label of X" on one-line charts) and the
number it quotes is checked against the table (``reads within 5 %``); failures: the label not read, no point
found, no value found at it, a wrong value. Prints two tables and writes ``bench/results/point_lines.json``.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=100, help="line charts sampled")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    client = InProcessToolClient(ToolsConfig(tools=["OCR", "Point", "DrawHorizontalLineByY"]))
    counts: dict[str, collections.Counter] = {"one line": collections.Counter(), "several": collections.Counter()}
    start = time.perf_counter()
    for rng, table, chart in _charts(args.charts, args.seed):
        n_series = len(table.series_names)
        row = counts["one line" if n_series == 1 else "several"]
        for category in rng.sample(table.categories, 2):
            series = rng.choice(table.series_names) if n_series > 1 else None
            (mark,) = chart.find("point", category=category, **({"series": series} if series else {}))
            description = f"the point of {series} at {category}" if series else f"the point at {category}"
            row["asked"] += 1
            try:
                point = client.call("Point", chart.image, {"description": description})
            except ToolError as err:
                row["label not read" if "no text matches the category" in err.message else "no point found"] += 1
                continue
            x, y = point.data["points"][0]
            near = abs(y - mark.anchor[1]) <= 3 and abs(x - mark.anchor[0]) <= 6
            row["within 3 px"] += near
            line = client.call("DrawHorizontalLineByY", chart.image, {"y": y})
            reading = re.search(r"reads (-?[\d.]+)", line.text)
            value = table.value(category, series)
            ok = reading is not None and abs(float(reading.group(1)) - value) <= 0.05 * abs(value)
            row["reads within 5 %"] += ok
            row["wrong point"] += not near
    seconds = time.perf_counter() - start
    total = _print(counts, f"Point: the point of a line ({args.charts} sampled line charts, {seconds:.0f} s)",
                   ["asked", "within 3 px", "reads within 5 %", "label not read", "no point found", "wrong point"])

    printed: dict[str, collections.Counter] = {"one line": collections.Counter(), "several": collections.Counter()}
    start = time.perf_counter()
    for rng, table, chart in _charts(args.charts, args.seed, value_labels=True):
        n_series = len(table.series_names)
        row = printed["one line" if n_series == 1 else "several"]
        for category in rng.sample(table.categories, 2):
            series = rng.choice(table.series_names) if n_series > 1 else None
            if len(chart.find("value_label", category=category, **({"series": series} if series else {}))) != 1:
                continue  # the renderer left crowded values out
            description = f"the value label of {series} for {category}" if series else f"the value label of {category}"
            row["asked"] += 1
            try:
                point = client.call("Point", chart.image, {"description": description})
            except ToolError as err:
                row["label not read" if "no text matches" in err.message else "no point found"] += 1
                continue
            if point.data["kind"] == "no_value":  # the point, but the value printed at it missed
                row["no value found"] += 1
                continue
            number = re.sub(r"[^\d.\-]", "", point.data["matched"][0])
            value = table.value(category, series)
            try:
                ok = abs(float(number) - value) <= 0.05 * abs(value) if value else float(number) == 0
            except ValueError:
                ok = False
            row["reads within 5 %"] += ok
            row["wrong value"] += not ok
    value_seconds = time.perf_counter() - start
    printed_total = _print(printed, f"Point: the value printed at a line's point ({args.charts} sampled line charts "
                                    f"with printed values, {value_seconds:.0f} s)",
                           ["asked", "reads within 5 %", "label not read", "no point found", "no value found",
                            "wrong value"])
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "point_lines.json").write_text(json.dumps({
        "charts": args.charts, "seed": args.seed, "seconds": round(seconds, 1),
        "counts": {name: dict(row) for name, row in [*counts.items(), ("all", total)]},
        "value_labels": {"seconds": round(value_seconds, 1),
                         "counts": {name: dict(row) for name, row in [*printed.items(), ("all", printed_total)]}},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }, indent=2) + "\n", encoding="utf-8")


def _charts(n: int, seed: int, value_labels: bool | None = None):
    """``n`` line charts sampled as the data engine samples them: (rng, table, chart); ``value_labels`` forces the
    style's printed values on or off (None: as sampled)."""
    for i in range(n):
        rng = random.Random(f"{seed}/{i}" if value_labels is None else f"{seed}/{i}/values")
        n_series, n_categories = rng.choice([1, 1, 2, 3]), rng.randint(4, 8)
        try:
            table = synthetic_table(rng, n_categories=n_categories, n_series=n_series, ordered=True)
        except ValueError:
            continue
        style = sample_style(rng, "line", n_series=n_series, n_categories=n_categories)
        if value_labels is not None:
            style = dataclasses.replace(style, value_labels=value_labels)
        yield rng, table, render_chart(table, style)


def _print(counts: dict[str, collections.Counter], title: str, columns: list[str]) -> collections.Counter:
    """Print one row per kind of chart and their total; returns the total."""
    out = Table(title=title)
    out.add_column("charts")
    for c in columns:
        out.add_column(c, justify="right")
    total = sum(counts.values(), collections.Counter())
    for name, row in [*counts.items(), ("all", total)]:
        asked = max(1, row["asked"])
        out.add_row(name, str(row["asked"]), *[f"{row[c]} ({100 * row[c] / asked:.0f} %)" for c in columns[1:]])
    Console().print(out)
    return total


if __name__ == "__main__":
    main()
