#!/usr/bin/env python
"""Benchmark: how often Point finds one series' bar, the value printed at it, and the top of a stack.

    .venv/bin/python bench/point_series_bars.py                 # 60 grouped + 60 stacked bar charts (~4 min)
    .venv/bin/python bench/point_series_bars.py --charts 20

Grouped and stacked bar charts are sampled as the data engine samples them (synthetic tables, ``sample_style``:
palettes, legends in every place, slanted or level tick labels, values printed or not); for two (category, series)
pairs of each, Point is asked for

- "the bar of S for X": right when the box it gives has the renderer's bar's value end within 3 px (``bar``);
- "the value label of S for X" (charts that print it): right when the quoted text is the printed one, or the same
  number (``value``);
- "the top of the stack for X" (stacked charts of positive values): right when its y is within 3 px of the stack's
  top, and DrawHorizontalLineByY there reads the category's total within 5 % (``stack``, ``stack reads``).

Failures are counted by kind: a label OCR did not read (``not read``), nothing found (``none``), a wrong answer.
Prints a table and writes ``bench/results/point_series_bars.json``.
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

ASKS = ("bar", "value", "stack")


def _ask(client, image, description: str, row: collections.Counter, ask: str):
    """Point's result for ``description``, or None with the failure counted."""
    row[f"{ask} asked"] += 1
    try:
        return client.call("Point", image, {"description": description})
    except ToolError as err:
        row[f"{ask} not read" if "no text matches" in err.message or "no legend entry" in err.message
            else f"{ask} none"] += 1
        return None


def _same_value(read: str, printed: str) -> bool:
    """The same text, or the same number ("7" for "7.0", "1204" for "1,204")."""
    def number(text: str) -> float | None:
        try:
            return float(text.replace(",", "").rstrip("%"))
        except ValueError:
            return None
    return read == printed or (number(read) is not None and number(read) == number(printed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charts", type=int, default=60, help="charts sampled of each kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="print this many wrong answers (chart kind, index)")
    args = parser.parse_args()

    client = InProcessToolClient(ToolsConfig(tools=["OCR", "Point", "DrawHorizontalLineByY"]))
    counts = {kind: collections.Counter() for kind in ("grouped_bar", "stacked_bar")}
    misses: list[tuple] = []
    start = time.perf_counter()
    for kind, row in counts.items():
        for i in range(args.charts):
            rng = random.Random(f"{args.seed}/{kind}/{i}")
            n_series, n_categories = rng.choice([2, 2, 3, 4]), rng.randint(3, 7)
            try:
                table = synthetic_table(rng, n_categories=n_categories, n_series=n_series, ordered=rng.random() < 0.5)
            except ValueError:
                continue
            chart = render_chart(table, sample_style(rng, kind, n_series=n_series, n_categories=n_categories))
            for category in rng.sample(table.categories, 2):
                series = rng.choice(table.series_names)
                (bar,) = chart.find("bar", category=category, series=series)
                value = table.value(category, series)
                got = _ask(client, chart.image, f"the bar of {series} for {category}", row, "bar")
                if got is not None:
                    box = got.data["boxes"][0]
                    end = 3 if value < 0 else 1  # the value end: the top of a positive bar, the bottom of a negative
                    right = abs(box[end] - bar.box[end]) <= 3 and \
                        abs((box[0] + box[2]) / 2 - (bar.box[0] + bar.box[2]) / 2) <= 3
                    row["bar right"] += right
                    if not right:
                        misses.append((kind, i, got.text, list(bar.box)))
                printed = chart.find("value_label", category=category, series=series)
                if len(printed) == 1:
                    got = _ask(client, chart.image, f"the value label of {series} for {category}", row, "value")
                    if got is not None and got.data["kind"] == "no_value":  # the bar, but its printed value missed
                        row["value none"] += 1
                    elif got is not None:
                        right = _same_value(got.data["matched"][0], printed[0].text)
                        row["value right"] += right
                        if not right:
                            misses.append((kind, i, got.text, printed[0].text))
                values = [table.value(category, s) for s in table.series_names]
                if kind == "stacked_bar" and min(values) >= 0:
                    got = _ask(client, chart.image, f"the top of the stack for {category}", row, "stack")
                    if got is not None:
                        y = got.data["points"][0][1]
                        top = min(b.box[1] for b in chart.find("bar", category=category))
                        row["stack right"] += abs(y - top) <= 3
                        line = client.call("DrawHorizontalLineByY", chart.image, {"y": y})
                        reading = re.search(r"reads (-?[\d.]+)", line.text)
                        total = sum(values)
                        row["stack reads"] += reading is not None and \
                            abs(float(reading.group(1)) - total) <= 0.05 * abs(total)
    seconds = time.perf_counter() - start

    out = Table(title=f"Point: series bars and stacks ({args.charts} charts of each kind, {seconds:.0f} s)")
    out.add_column("charts")
    out.add_column("asked")
    for c in ("right", "not read", "none", "wrong"):
        out.add_column(c, justify="right")
    out.add_column("stack reads", justify="right")
    for kind, row in counts.items():
        for ask in ASKS:
            asked = row[f"{ask} asked"]
            if not asked:
                continue
            wrong = asked - row[f"{ask} right"] - row[f"{ask} not read"] - row[f"{ask} none"]
            cells = [row[f"{ask} right"], row[f"{ask} not read"], row[f"{ask} none"], wrong]
            reads = f"{row['stack reads']} ({100 * row['stack reads'] / asked:.0f} %)" if ask == "stack" else ""
            out.add_row(f"{kind}: {ask}", str(asked), *[f"{c} ({100 * c / asked:.0f} %)" for c in cells], reads)
    Console().print(out)
    for case in misses[:args.show]:
        print(*case)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "point_series_bars.json").write_text(json.dumps({
        "charts": args.charts, "seed": args.seed, "seconds": round(seconds, 1),
        "counts": {kind: dict(row) for kind, row in counts.items()},
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
