"""Questions with programmatic answers over a rendered chart, each with the plan a scripted expert follows to
answer it with the tools (:mod:`thinkimg.data.experts`).

The answer is computed from the chart's :class:`~thinkimg.data.tables.Table`, never from pixels. The plan holds
what a teacher knows about *where* to look (which element to point at, the boxes of printed values, which end of
a bar marks its value, the pixel of a line's point, the panel's title); *what* is there comes only from the tools'
outputs when the expert runs. Every question type says which tools its answer needs: on bar and line charts Point
finds a printed value ("the value label of X"; "the value label of S for X" for one series of several); on bar
charts the highest or lowest bar, and the title; values between gridlines need the bar (Point) and a line at its end
(DrawHorizontalLineByY / DrawVerticalLineByX read the axis there); other printed values (all of them at once for
a ranking or a sum, pie shares, scatter labels) need OCR (or Crop/ZoomInSubfigure then OCR). On grouped and stacked
bars Point finds one series' bar ("the bar of S for X") and the top of a stack, where a line reads the total. On
line charts Point finds where a series passes over a category ("the point of S at X"), and a line through that
point reads its value. Which of two marks is higher (a trend between two categories, two series compared) is told by
the pixels Point gave them, without reading the axis. Differences, totals and averages of the values read are
computed with Calculate (plan key ``calculate``).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from thinkimg.data.render import RenderedChart
from thinkimg.data.tables import Table
from thinkimg.tools.boxes import Box


@dataclass
class Question:
    """One question: its type, text, gold answer, the tools its answer needs and the expert's plan."""

    type: str
    text: str
    answer: str
    tools: list[str]
    plan: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_number(value: float) -> str:
    """A number as an answer: integers without a decimal point, others with at most two decimals, or, below 1, three
    significant digits (a chart printing 0.085 is answered 0.085: 0.09 is 6 % off, wrong under relaxed accuracy)."""
    value = float(value)
    decimals = 2 if abs(value) >= 1 or value == 0 else 2 - math.floor(math.log10(abs(value)))
    value = round(value, decimals)
    if value == int(value):
        return str(int(value))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


Generator = Callable[[RenderedChart, random.Random], "Question | None"]


@dataclass
class QuestionType:
    """A registered question type: which charts it applies to and how to make one question."""

    name: str
    description: str
    applies: Callable[[RenderedChart], bool]
    make: Generator
    #: Relative chance of being asked when several types apply (below 1: also the chance of being asked at all).
    weight: float = 1.0


QUESTION_TYPES: dict[str, QuestionType] = {}


def question_type(name: str, description: str, applies: Callable[[RenderedChart], bool], weight: float = 1.0):
    """Register a question generator under ``name``."""

    def decorate(make: Generator) -> Generator:
        if name in QUESTION_TYPES:
            raise ValueError(f"question type {name!r} registered twice")
        QUESTION_TYPES[name] = QuestionType(name, description, applies, make, weight)
        return make

    return decorate


def ask(chart: RenderedChart, rng: random.Random, n: int) -> list[Question]:
    """Up to ``n`` questions of distinct types that apply to ``chart`` (fewer when fewer apply); types are drawn
    without replacement in proportion to their weights, and a type weighing less than 1 is asked at most with that
    probability (so a type that fits every chart, like the title, does not fill the charts few others fit)."""
    types = [t for t in QUESTION_TYPES.values() if t.applies(chart)]
    types.sort(key=lambda t: -rng.random() ** (1.0 / t.weight))
    out = []
    for qtype in types:
        if len(out) >= n:
            break
        if qtype.weight < 1 and rng.random() >= qtype.weight:
            continue
        question = qtype.make(chart, rng)
        if question is not None:
            out.append(question)
    return out


# ------------------------------------------------------------------------------------------ chart facts


def chart_kind(chart: RenderedChart) -> str:
    """The chart's kind ("bar", "pie", ...); "panels" for a multi-panel figure."""
    return "panels" if isinstance(chart.table, list) else chart.meta["kind"]


def _style(chart: RenderedChart) -> dict[str, Any]:
    return chart.meta.get("style", {})


def _tables(chart: RenderedChart) -> list[Table]:
    return chart.table if isinstance(chart.table, list) else [chart.table]


def _single(chart: RenderedChart) -> Table:
    return _tables(chart)[0]


def _labelled(chart: RenderedChart) -> bool:
    return bool(_style(chart).get("value_labels"))


def _is(*kinds: str, labelled: bool | None = None, single: bool | None = None, ordered: bool | None = None):
    def applies(chart: RenderedChart) -> bool:
        if chart_kind(chart) not in kinds:
            return False
        if labelled is not None and _labelled(chart) != labelled:
            return False
        table = _single(chart)
        if single is not None and table.single != single:
            return False
        return not (ordered is not None and table.ordered != ordered)

    return applies


def _value_box(chart: RenderedChart, category: str, series: str | None = None, panel: str | None = None) -> Box | None:
    filters: dict[str, Any] = {"category": category}
    if series is not None:
        filters["series"] = series
    if panel is not None:
        filters["panel"] = panel
    found = chart.find("value_label", **filters)
    return list(found[0].box) if len(found) == 1 else None


def _mark(chart: RenderedChart, category: str, series: str | None = None) -> Any:
    kind = "point" if chart_kind(chart) in ("line", "scatter") else "bar"
    filters: dict[str, Any] = {"category": category}
    if series is not None:
        filters["series"] = series
    found = chart.find(kind, **filters)
    return found[0] if len(found) == 1 else None


def _bars(chart: RenderedChart) -> bool:
    """A single-series bar chart (vertical or horizontal): Point finds its bars, their value labels and ranks."""
    return chart_kind(chart) in ("bar", "hbar") and _single(chart).single


def _value_label(category: str) -> str:
    return f"the value label of {category}"


def _value_labels(categories: list[str] | None) -> dict[str, Any]:
    """One Point call for several printed values: the categories' (in order), or every bar's (None)."""
    if categories is None:
        return {"keys": None, "description": "the value labels"}
    names = [json.dumps(c, ensure_ascii=False) for c in categories]
    return {"keys": list(categories), "description": f"the value labels of {', '.join(names[:-1])} and {names[-1]}"}


def _series_bar(series: str, category: str) -> str:
    """Point's description of one series' bar over a category (grouped or stacked bars)."""
    return f"the bar of {series} for {category}"


def _series_value_label(series: str, category: str) -> str:
    """Point's description of the value printed at one series' bar over a category."""
    return f"the value label of {series} for {category}"


def _value_label_of(category: str, series: str | None) -> str:
    """Point's description of the value printed at (category, series): the series' one, or the only mark's."""
    return _series_value_label(series, category) if series is not None else _value_label(category)


def _bar_line(chart: RenderedChart, key: str, category: str, series: str | None = None,
              value_label: bool = False) -> dict[str, Any]:
    """Point at the bar of ``category`` (of ``series`` on a grouped chart: its ``description``), then a line at its
    value end: the top of a vertical bar (its bottom when the value is negative), the right end of a horizontal one
    (its left end when negative); ``end`` indexes the bar's box ``[x0, y0, x1, y1]``. With ``value_label`` Point is
    asked for the bar's value label, as where values are printed: on a chart that prints none it names the bar's
    ends (so one question serves both)."""
    axis = _value_axis(chart)
    negative = _single(chart).value(category, series) < 0
    end = (3 if negative else 1) if axis == "y" else (0 if negative else 2)
    line = {"key": key, "category": category, "axis": axis, "end": end}
    if series is not None:
        line.update(series=series, description=_series_bar(series, category))
    if value_label:
        line["description"] = _value_label_of(category, series)
    return line


def _point_of(category: str, series: str | None = None) -> str:
    """Point's description of where a line passes over ``category``: "the point of S at X" (series S), "the point
    at X" on a chart of one line."""
    return f"the point of {series} at {category}" if series is not None else f"the point at {category}"


def _point_line(chart: RenderedChart, key: str, category: str, series: str | None = None,
                value_label: bool = False) -> dict[str, Any]:
    """Point at the line's point over ``category``, then a line through it (its pixel on the value axis). With
    ``value_label`` Point is asked for the point's value label, which on a chart that prints none gives the point."""
    description = _value_label_of(category, series) if value_label else _point_of(category, series)
    return {"key": key, "category": category, "series": series, "description": description,
            "axis": _value_axis(chart)}


def _height(chart: RenderedChart, category: str, series: str | None = None) -> dict[str, Any]:
    """Point at the mark of (category, series) — asking for its value label, as on a chart that prints values; on
    one that prints none Point gives the mark — and take its value end's pixel on the value axis as the reading:
    enough to tell which of two marks is higher without reading the axis. A bar's value end is ``end`` of
    :func:`_bar_line`; a line's point is the point Point gives."""
    if chart_kind(chart) == "line":
        line = _point_line(chart, category, category, series, value_label=True)
        return {"category": category, "series": series, "description": line["description"],
                "axis": line["axis"], "end": None}
    line = _bar_line(chart, category, category, series, value_label=True)
    return {"category": category, "series": series, "description": line.get("description", f"the bar for {category}"),
            "axis": line["axis"], "end": line["end"]}


def _value_axis(chart: RenderedChart) -> str:
    return "x" if chart_kind(chart) == "hbar" else "y"


def line_tool(axis: str) -> str:
    """The tool that draws a line reading the ``axis`` ("x": a vertical line, "y": a horizontal one)."""
    return "DrawVerticalLineByX" if axis == "x" else "DrawHorizontalLineByY"


def _span(chart: RenderedChart) -> float:
    axes = chart.meta.get("axes") or []
    if not axes:
        return 0.0
    lo, hi = axes[0]["lim"]
    return abs(hi - lo)


def _line(chart: RenderedChart, key: str, category: str, series: str | None = None) -> dict[str, Any] | None:
    """An axis reading at the data value of (category, series): where the expert draws its line."""
    mark = _mark(chart, category, series)
    if mark is None or mark.anchor is None:
        return None
    axis = _value_axis(chart)
    at = int(round(mark.anchor[0] if axis == "x" else mark.anchor[1]))
    return {"key": key, "axis": axis, "at": at}


def _readable_on_axis(chart: RenderedChart, value: float) -> bool:
    """Far enough from zero (relative to the axis span) that a pixel-accurate reading is within 5 %."""
    span = _span(chart)
    return span > 0 and abs(value) >= 0.15 * span


def _noun(table: Table) -> str:
    return table.category_name.lower() if table.category_name else "category"


def _distinct(values: list[float]) -> bool:
    return len(set(values)) == len(values)


def _reads(chart: RenderedChart, table: Table, series: str | None = None, panel: str | None = None) -> dict | None:
    boxes = {c: _value_box(chart, c, series, panel) for c in table.categories}
    return None if any(b is None for b in boxes.values()) else boxes


_ORDINALS = {2: "second", 3: "third"}


def _extreme(table: Table, rng: random.Random, words: tuple[str, str] = ("highest", "lowest")) -> tuple[str, str, dict]:
    """A coin flip between the category with the largest and the smallest value: (answer, word, op)."""
    top = rng.random() < 0.5
    answer = (max if top else min)(table.categories, key=table.value)
    return answer, words[0] if top else words[1], {"name": "argmax" if top else "argmin"}


# ------------------------------------------------------------------------------------------ printed values (OCR)

_LABELLED_SINGLE = _is("bar", "hbar", "line", labelled=True, single=True)


@question_type("value_lookup", "the printed value of one category (Point)", _LABELLED_SINGLE)
def _value_lookup(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    cat = rng.choice(table.categories)
    if _value_box(chart, cat) is None:
        return None
    text = rng.choice(["What is the value of {c}?", "What value does the chart show for {c}?",
                       "How much is {c} according to the chart?"]).format(c=cat)
    return Question("value_lookup", text, format_number(table.value(cat)), ["Point"],
                    {"points": {cat: _value_label(cat)}, "op": {"name": "lookup", "key": cat}})


@question_type("comparison", "which of two categories is higher or lower (Point)", _LABELLED_SINGLE)
def _comparison(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    if len(table.categories) < 2:
        return None
    a, b = rng.sample(table.categories, 2)
    va, vb = table.value(a), table.value(b)
    boxes = {a: _value_box(chart, a), b: _value_box(chart, b)}
    if va == vb or None in boxes.values():
        return None
    higher = rng.random() < 0.5
    word = "higher" if higher else "lower"
    answer = (a if va > vb else b) if higher else (a if va < vb else b)
    op = {"name": "argmax" if higher else "argmin"}
    return Question("comparison", f"Which is {word}, {a} or {b}?", answer, ["Point"],
                    {"values": _value_labels([a, b]), "op": op})


@question_type("extremum", "the category with the highest or lowest value (Point on bars, else OCR)", _LABELLED_SINGLE)
def _extremum(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    boxes = _reads(chart, table)
    values = table.series[table.series_names[0]]
    if boxes is None or not _distinct(values):
        return None
    answer, word, op = _extreme(table, rng)
    text = f"Which {_noun(table)} has the {word} value?"
    if _bars(chart):
        return Question("extremum", text, answer, ["Point"],
                        {"points": {"bar": f"the {word} bar"}, "op": {"name": "pick", "key": "bar"}})
    return Question("extremum", text, answer, ["OCR"], {"read": boxes, "op": op})


@question_type("difference", "the difference between two categories' values (Point, then Calculate)",
               _LABELLED_SINGLE)
def _difference(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    if len(table.categories) < 2:
        return None
    a, b = rng.sample(table.categories, 2)
    boxes = {a: _value_box(chart, a), b: _value_box(chart, b)}
    if None in boxes.values():
        return None
    answer = format_number(abs(table.value(a) - table.value(b)))
    text = f"What is the difference between the values of {a} and {b}?"
    op = {"name": "absdiff", "keys": [a, b]}
    return Question("difference", text, answer, ["Point", "Calculate"],
                    {"values": _value_labels([a, b]), "op": op, "calculate": True})


@question_type("sum_average", "the total or the average of all values (Point's value labels on bars, else OCR; then "
               "Calculate)", _LABELLED_SINGLE)
def _sum_average(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    boxes = _reads(chart, table)
    if boxes is None:
        return None
    values = table.series[table.series_names[0]]
    total = rng.random() < 0.5
    text = "What is the sum of all the values shown?" if total else "What is the average of the values shown?"
    answer = format_number(sum(values) if total else sum(values) / len(values))
    op = {"name": "sum" if total else "mean"}
    if _bars(chart):  # every bar's value in one reply, in order: the numbers to add are side by side
        return Question("sum_average", text, answer, ["Point", "Calculate"],
                        {"values": _value_labels(None), "op": op, "calculate": True})
    return Question("sum_average", text, answer, ["OCR", "Calculate"], {"read": boxes, "op": op, "calculate": True})


@question_type("ranking", "the category ranked second or third highest (Point on bars, else OCR)", _LABELLED_SINGLE)
def _ranking(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    boxes = _reads(chart, table)
    values = table.series[table.series_names[0]]
    if boxes is None or len(values) < 3 or not _distinct(values):
        return None
    k = rng.choice([k for k in _ORDINALS if k < len(values)])
    answer = sorted(table.categories, key=table.value, reverse=True)[k - 1]
    text = f"Which {_noun(table)} has the {_ORDINALS[k]} highest value?"
    if _bars(chart):
        return Question("ranking", text, answer, ["Point"],
                        {"points": {"bar": f"the {_ORDINALS[k]} highest bar"}, "op": {"name": "pick", "key": "bar"}})
    return Question("ranking", text, answer, ["OCR"], {"read": boxes, "op": {"name": "rank", "k": k}})


# ------------------------------------------------------------------------------------------ values off the axis


@question_type("axis_value", "a value between gridlines, read off the axis (a line at the bar's end or the "
               "point reads the axis)", _is("bar", "hbar", "line", labelled=False, single=True))
def _axis_value(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    cats = [c for c in table.categories if _readable_on_axis(chart, table.value(c))]
    if not cats:
        return None
    cat = rng.choice(cats)
    text = rng.choice(["About what value does {c} have?", "Approximately what is the value of {c}?",
                       "Estimate the value of {c} from the axis."]).format(c=cat)
    tool = line_tool(_value_axis(chart))
    op = {"name": "lookup", "key": cat}
    if _bars(chart):
        return Question("axis_value", text, format_number(table.value(cat)), ["Point", tool],
                        {"bar_lines": [_bar_line(chart, cat, cat)], "op": op})
    if _line(chart, cat, cat) is None:
        return None
    return Question("axis_value", text, format_number(table.value(cat)), ["Point", tool],
                    {"point_lines": [_point_line(chart, cat, cat)], "op": op})


def _trend(chart: RenderedChart, rng: random.Random, series: str | None) -> Question | None:
    table = _single(chart)
    column = table.column(series)
    span = _span(chart) or (max(column.values()) - min(column.values()))
    pairs = [(a, b) for i, a in enumerate(table.categories) for b in table.categories[i + 1:]
             if abs(column[b] - column[a]) >= 0.1 * span]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    answer = "increase" if column[b] > column[a] else "decrease"
    name = f"{series} " if series is not None else "the value "
    text = f"Did {name}increase or decrease from {a} to {b}?"
    op = {"name": "trend", "keys": [a, b]}
    bars = _bars(chart)
    if _labelled(chart):
        if bars:
            return Question("trend", text, answer, ["Point"],
                            {"points": {a: _value_label(a), b: _value_label(b)}, "op": op})
        if None in (_value_box(chart, a, series), _value_box(chart, b, series)):
            return None
        if series is None:  # a chart of one line
            return Question("trend", text, answer, ["Point"],
                            {"points": {a: _value_label(a), b: _value_label(b)}, "op": op})
        return Question("trend", text, answer, ["Point"],
                        {"points": {a: _series_value_label(series, a), b: _series_value_label(series, b)},
                         "names": [series], "op": op})
    if not bars and None in (_line(chart, a, a, series), _line(chart, b, b, series)):
        return None
    return Question("trend", text, answer, ["Point"],
                    {"heights": {a: _height(chart, a, series), b: _height(chart, b, series)}, "op": op})


def _ordered_xy(chart: RenderedChart) -> bool:
    return chart_kind(chart) in ("bar", "line", "grouped_bar") and _single(chart).ordered


@question_type("trend", "whether a series rose or fell between two ordered categories (years, months)",
               _ordered_xy)
def _trend_question(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    return _trend(chart, rng, None if table.single else rng.choice(table.series_names))


# ------------------------------------------------------------------------------------------ several series


@question_type("series_value", "one series' value in one category of a grouped/stacked/multi-line chart (Point "
               "at its printed value, or read off the axis)", _is("grouped_bar", "stacked_bar", "line", single=False))
def _series_value(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    cat, series = rng.choice(table.categories), rng.choice(table.series_names)
    value = table.value(cat, series)
    text = f"What is the value of {series} for {cat}?"
    lookup = {"name": "lookup", "key": cat}
    if _labelled(chart):
        if _value_box(chart, cat, series) is None:
            return None
        return Question("series_value", text, format_number(value), ["Point"],
                        {"points": {cat: _series_value_label(series, cat)}, "names": [series], "op": lookup})
    if chart_kind(chart) == "stacked_bar" or not _readable_on_axis(chart, value):
        return None
    if _line(chart, cat, cat, series) is None:
        return None
    if chart_kind(chart) == "line":
        return Question("series_value", text, format_number(value), ["Point", "DrawHorizontalLineByY"],
                        {"point_lines": [_point_line(chart, cat, cat, series, value_label=True)], "op": lookup})
    return Question("series_value", text, format_number(value), ["Point", "DrawHorizontalLineByY"],
                    {"bar_lines": [_bar_line(chart, cat, cat, series, value_label=True)], "op": lookup})


@question_type("series_compare", "which of two series is higher in one category",
               _is("grouped_bar", "line", "stacked_bar", single=False))
def _series_compare(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    cat = rng.choice(table.categories)
    s1, s2 = rng.sample(table.series_names, 2)
    v1, v2 = table.value(cat, s1), table.value(cat, s2)
    if v1 == v2:
        return None
    text = f"For {cat}, which is higher: {s1} or {s2}?"
    answer = s1 if v1 > v2 else s2
    if _labelled(chart):
        if None in (_value_box(chart, cat, s1), _value_box(chart, cat, s2)):
            return None
        return Question("series_compare", text, answer, ["Point"],
                        {"points": {s1: _series_value_label(s1, cat), s2: _series_value_label(s2, cat)},
                         "names": [cat], "op": {"name": "argmax"}})
    if chart_kind(chart) == "stacked_bar" or abs(v1 - v2) < 0.05 * (_span(chart) or 1):
        return None
    if None in (_line(chart, s1, cat, s1), _line(chart, s2, cat, s2)):
        return None
    return Question("series_compare", text, answer, ["Point"],
                    {"heights": {s1: _height(chart, cat, s1), s2: _height(chart, cat, s2)}, "op": {"name": "argmax"}})


@question_type("stack_total", "the total of one stacked bar (read at its top, or its printed segments summed with "
               "Calculate where the axis cannot tell it within 5 %)",
               _is("stacked_bar"))
def _stack_total(chart: RenderedChart, rng: random.Random) -> Question | None:
    """A line at the stack's top reads the total in two calls, printed segments or not (summing the printed ones
    takes OCR's whole dump and a Calculate over every segment); OCR and Calculate where the top is too near zero
    to read on the axis within 5 % or a segment is negative."""
    table = _single(chart)
    cat = rng.choice(table.categories)
    total = sum(table.value(cat, s) for s in table.series_names)
    text = f"What is the total for {cat} across all series?"
    if any(table.value(cat, s) < 0 for s in table.series_names) or not _readable_on_axis(chart, total):
        if not _labelled(chart):
            return None
        boxes = {s: _value_box(chart, cat, s) for s in table.series_names}
        if None in boxes.values():
            return None
        return Question("stack_total", text, format_number(total), ["OCR", "Calculate"],
                        {"read": boxes, "op": {"name": "sum"}, "calculate": True})
    return Question("stack_total", text, format_number(total), ["Point", "DrawHorizontalLineByY"],
                    {"point_lines": [{"key": cat, "category": cat, "series": None, "axis": _value_axis(chart),
                                      "description": f"the top of the stack for {cat}"}],
                     "op": {"name": "lookup", "key": cat}})


# ------------------------------------------------------------------------------------------ pies, scatter, title


@question_type("pie_share", "a wedge's printed share of the whole (crop and OCR)", _is("pie", labelled=True))
def _pie_share(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    if "%" not in _style(chart).get("value_format", ""):
        return None
    cat = rng.choice(table.categories)
    box = _value_box(chart, cat)
    if box is None:
        return None
    total = sum(table.column().values())
    answer = format_number(round(100 * table.value(cat) / total, 1))
    return Question("pie_share", f"What percentage of the total does {cat} account for?", answer, ["Crop", "OCR"],
                    {"view": {"tool": "Crop", "box": _around(chart, box)}, "read": {cat: box},
                     "op": {"name": "lookup", "key": cat}})


@question_type("pie_largest", "the largest or smallest wedge (OCR of the printed shares)", _is("pie", labelled=True))
def _pie_largest(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    boxes = _reads(chart, table)
    values = table.series[table.series_names[0]]
    if boxes is None or not _distinct(values):
        return None
    answer, word, op = _extreme(table, rng, ("largest", "smallest"))
    return Question("pie_largest", f"Which {_noun(table)} has the {word} share?", answer, ["OCR"],
                    {"read": boxes, "op": op})


@question_type("scatter_top", "the labelled point highest on the y axis (OCR of the point labels)", _is("scatter"))
def _scatter_top(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    labels = {e.category: list(e.box) for e in chart.find("point_label")}
    if len(labels) < 2 or set(labels) != set(table.categories):
        return None
    ys = sorted(((table.value(c, "y"), c) for c in table.categories), reverse=True)
    if ys[0][0] - ys[1][0] < 0.05 * (_span(chart) or 1):
        return None
    highest = rng.random() < 0.5
    answer = ys[0][1] if highest else ys[-1][1]
    if not highest and ys[-2][0] - ys[-1][0] < 0.05 * (_span(chart) or 1):
        return None
    y_name = table.meta.get("y_label") or "y value"
    word = "highest" if highest else "lowest"
    return Question("scatter_top", f"Which labelled point has the {word} {y_name}?", answer, ["OCR"],
                    {"labels": labels, "op": {"name": "top_label" if highest else "bottom_label"}})


@question_type("scatter_value", "a labelled point's y value, read off the axis", _is("scatter"))
def _scatter_value(chart: RenderedChart, rng: random.Random) -> Question | None:
    table = _single(chart)
    cats = [c for c in table.categories if _readable_on_axis(chart, table.value(c, "y"))]
    if not cats:
        return None
    cat = rng.choice(cats)
    line = _line(chart, cat, cat)
    if line is None:
        return None
    y_name = table.meta.get("y_label") or "y value"
    return Question("scatter_value", f"What is the {y_name} of {cat}?", format_number(table.value(cat, "y")),
                    ["DrawHorizontalLineByY"], {"lines": [line], "op": {"name": "lookup", "key": cat}})


@question_type("title", "the chart's title (Point)", lambda chart: chart_kind(chart) != "panels", weight=0.3)
def _title(chart: RenderedChart, rng: random.Random) -> Question | None:
    found = chart.find("title")
    if len(found) != 1 or not found[0].text:
        return None
    return Question("title", "What is the title of the chart?", " ".join(found[0].text.split()), ["Point"],
                    {"points": {"title": "the chart title"}, "op": {"name": "pick", "key": "title"}})


# ------------------------------------------------------------------------------------------ multi-panel figures


def _zoom(table: Table) -> dict[str, str]:
    """The view that zooms into the panel showing ``table`` (named by its title)."""
    return {"tool": "ZoomInSubfigure", "description": table.title}


def _panel_pick(chart: RenderedChart, rng: random.Random) -> tuple[Table, dict] | None:
    table = rng.choice(_tables(chart))
    boxes = _reads(chart, table, panel=table.title)
    return None if boxes is None else (table, boxes)


@question_type("panel_value", "a printed value inside one named panel (ZoomInSubfigure, then Point)",
               lambda chart: chart_kind(chart) == "panels" and _labelled(chart))
def _panel_value(chart: RenderedChart, rng: random.Random) -> Question | None:
    picked = _panel_pick(chart, rng)
    if picked is None:
        return None
    table, boxes = picked
    cat = rng.choice(table.categories)
    return Question("panel_value", f"In the panel titled '{table.title}', what is the value of {cat}?",
                    format_number(table.value(cat)), ["ZoomInSubfigure", "Point"],
                    {"view": _zoom(table), "points": {cat: _value_label(cat)}, "op": {"name": "lookup", "key": cat}})


@question_type("panel_extremum", "the highest or lowest category inside one named panel (ZoomInSubfigure, then Point)",
               lambda chart: chart_kind(chart) == "panels" and _labelled(chart))
def _panel_extremum(chart: RenderedChart, rng: random.Random) -> Question | None:
    picked = _panel_pick(chart, rng)
    if picked is None:
        return None
    table, boxes = picked
    values = table.series[table.series_names[0]]
    if not _distinct(values):
        return None
    answer, word, _ = _extreme(table, rng)
    return Question("panel_extremum", f"In the panel titled '{table.title}', which {_noun(table)} has the {word} "
                    "value?", answer, ["ZoomInSubfigure", "Point"],
                    {"view": _zoom(table), "points": {"bar": f"the {word} bar"}, "op": {"name": "pick", "key": "bar"}})


def _around(chart: RenderedChart, box: Box, margin: int = 24) -> list[int]:
    """A crop box around ``box`` with some context, inside the image."""
    w, h = chart.image.size
    x0, y0, x1, y1 = box
    return [max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin)]
