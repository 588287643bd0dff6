#!/usr/bin/env python
"""Benchmark: how often Point finds the point of a line, and reads the right value through a drawn line.

    .venv/bin/python bench/point_lines.py                 # 100 sampled line charts, 2 points each (~3 min)
    .venv/bin/python bench/point_lines.py --charts 40

Line charts are sampled as the data engine samples them (synthetic tables, ``sample_style``: palettes, markers or
none, slanted or level tick labels, legends in every place); for two categories of each, Point is asked for "the
point of S at X" (a random series S; "the point at X" on one-line charts) and the answer is checked against the
renderer's marker anchor (``within 3 px``), then DrawHorizontalLineByY at the answer's y reads the axis and the
reading is checked against the table (``reads within 5 %``, ChartQA's relaxed accuracy). Failures are counted by
kind (the label not read by OCR, no point found, a wrong point). Prints a table and writes
``bench/results/point_lines.json``.
"""

from __future__ import annotations

import argparse
import collections
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
    for i in range(args.charts):
        rng = random.Random(f"{args.seed}/{i}")
        n_series, n_categories = rng.choice([1, 1, 2, 3]), rng.randint(4, 8)
        try:
            table = synthetic_table(rng, n_categories=n_categories, n_series=n_series, ordered=True)
        except ValueError:
            continue
        chart = render_chart(table, sample_style(rng, "line", n_series=n_series, n_categories=n_categories))
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

    columns = ["asked", "within 3 px", "reads within 5 %", "label not read", "no point found", "wrong point"]
    out = Table(title=f"Point: the point of a line ({args.charts} sampled line charts, {seconds:.0f} s)")
    out.add_column("charts")
    for c in columns:
        out.add_column(c, justify="right")
    total = sum(counts.values(), collections.Counter())
    for name, row in [*counts.items(), ("all", total)]:
        asked = max(1, row["asked"])
        out.add_row(name, str(row["asked"]), *[f"{row[c]} ({100 * row[c] / asked:.0f} %)" for c in columns[1:]])
    Console().print(out)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "point_lines.json").write_text(json.dumps({
        "charts": args.charts, "seed": args.seed, "seconds": round(seconds, 1),
        "counts": {name: dict(row) for name, row in [*counts.items(), ("all", total)]},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
