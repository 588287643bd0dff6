"""The data engine end to end: questions with answers recomputed independently from the tables, verified
trajectories (format, replay against a real tool server), the dataset on disk, determinism and resume."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest

from thinkimg.config import ToolsConfig
from thinkimg.data import curate as engine
from thinkimg.data.curate import CurateError, DataParams, curate, load_params, sample_chart
from thinkimg.data.dataset import DatasetError, load_conversation, load_split, read_split
from thinkimg.data.experts import ReadingError, answer_from, next_call, planned_calls
from thinkimg.data.questions import QUESTION_TYPES, ask, format_number
from thinkimg.data.tables import Table
from thinkimg.eval.metrics import relaxed_match
from thinkimg.images import image_hash, load_image
from thinkimg.server.client import HTTPToolClient
from thinkimg.server.launcher import ToolServer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


def small_params(out: Path, **kw) -> DataParams:
    values = dict(out=out, data_dir=DATA, tools_config=ROOT / "configs" / "tools.yaml", sft_trajectories=10,
                  rl_questions=24, eval_questions=12, chunk_charts=4, workers=1, seed=7)
    values.update(kw)
    return DataParams(**values)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, data_dir) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ds") / "charts"
    card = curate(small_params(out), progress=False)
    return out, card


@pytest.fixture(scope="module")
def tables(data_dir) -> engine._Tables:
    return engine._Tables(DATA, 0.5)


# ------------------------------------------------------------------------------------------ independent answers


def _oracle(question: str, qtype: str, tables: list[Table]) -> set[str] | None:
    """The answer(s) computed straight from the table by parsing the question (not the engine's code)."""
    t = tables[0]
    num = lambda v: f"{round(v, 2):g}" if abs(v) >= 1 else f"{v:.3g}"  # noqa: E731

    def col(series=None):
        return dict(zip(t.categories, t.series[series or t.series_names[0]]))

    if qtype in ("value_lookup", "axis_value"):
        for pattern in (r"What is the value of (.+)\?", r"What value does the chart show for (.+)\?",
                        r"How much is (.+) according to the chart\?", r"About what value does (.+) have\?",
                        r"Approximately what is the value of (.+)\?", r"Estimate the value of (.+) from the axis\."):
            m = re.fullmatch(pattern, question)
            if m:
                return {num(col()[m.group(1)])}
    if qtype == "comparison":
        m = re.fullmatch(r"Which is (higher|lower), (.+) or (.+)\?", question)
        a, b = m.group(2), m.group(3)
        va, vb = col()[a], col()[b]
        return {a if (va > vb) == (m.group(1) == "higher") else b}
    if qtype in ("extremum", "pie_largest"):
        values = col()
        pick = max if re.search(r"highest|largest", question) else min
        return {pick(values, key=values.get)}
    if qtype == "difference":
        m = re.fullmatch(r"What is the difference between the values of (.+) and (.+)\?", question)
        return {num(abs(col()[m.group(1)] - col()[m.group(2)]))}
    if qtype == "sum_average":
        values = list(col().values())
        return {num(sum(values) if "sum" in question else sum(values) / len(values))}
    if qtype == "ranking":
        k = 2 if "second" in question else 3
        return {sorted(col(), key=col().get, reverse=True)[k - 1]}
    if qtype == "trend":
        m = re.fullmatch(r"Did (.+) increase or decrease from (.+) to (.+)\?", question)
        series = None if m.group(1) == "the value" else m.group(1)
        values = col(series)
        return {"increase" if values[m.group(3)] > values[m.group(2)] else "decrease"}
    if qtype == "series_value":
        m = re.fullmatch(r"What is the value of (.+) for (.+)\?", question)
        return {num(col(m.group(1))[m.group(2)])}
    if qtype == "series_compare":
        m = re.fullmatch(r"For (.+), which is higher: (.+) or (.+)\?", question)
        c, s1, s2 = m.groups()
        return {s1 if col(s1)[c] > col(s2)[c] else s2}
    if qtype == "stack_total":
        m = re.fullmatch(r"What is the total for (.+) across all series\?", question)
        return {num(sum(col(s)[m.group(1)] for s in t.series_names))}
    if qtype == "pie_share":
        m = re.fullmatch(r"What percentage of the total does (.+) account for\?", question)
        values = col()
        return {num(round(100 * values[m.group(1)] / sum(values.values()), 1))}
    if qtype in ("scatter_top", "scatter_value"):
        ys = dict(zip(t.categories, t.series["y"]))
        if qtype == "scatter_value":
            name = next(c for c in t.categories if question.endswith(f" of {c}?"))
            return {num(ys[name])}
        pick = max if "highest" in question else min
        return {pick(ys, key=ys.get)}
    if qtype == "title":
        return {t.title}
    if qtype in ("panel_value", "panel_extremum"):
        m = re.match(r"In the panel titled '(.+?)', ", question)
        panel = next(p for p in tables if p.title == m.group(1))
        values = dict(zip(panel.categories, panel.series[panel.series_names[0]]))
        if qtype == "panel_value":
            name = next(c for c in panel.categories if question.endswith(f"value of {c}?"))
            return {num(values[name])}
        pick = max if "highest" in question else min
        return {pick(values, key=values.get)}
    return None


def test_answers_match_an_independent_computation_from_the_table(tables):
    seen: set[str] = set()
    for i in range(60):
        rng = random.Random(f"answers/{i}")
        chart = sample_chart(rng, "train", tables, DataParams().chart_kinds)
        table_list = chart.table if isinstance(chart.table, list) else [chart.table]
        for q in ask(chart, rng, 4):
            expected = _oracle(q.text, q.type, table_list)
            assert expected is not None, f"no oracle for {q.type}: {q.text}"
            assert any(relaxed_match(q.answer, e, tolerance=0.0) or q.answer == e for e in expected), \
                (q.type, q.text, q.answer, expected)
            seen.add(q.type)
    assert len(seen) >= 12, f"only {sorted(seen)} of {sorted(QUESTION_TYPES)} came up"


def test_small_answers_keep_the_digits_a_chart_prints():
    # A chart printing 0.085 must not be answered 0.09: that is 6 % off, wrong under relaxed accuracy.
    assert [format_number(v) for v in (0.085, 0.053, 0.0534, 0.123, 0.2333333, 0.5, 0)] == \
        ["0.085", "0.053", "0.0534", "0.123", "0.233", "0.5", "0"]
    assert [format_number(v) for v in (1.234, 12.3456, 100.0, -0.085, -3.5)] == \
        ["1.23", "12.35", "100", "-0.085", "-3.5"]
    assert relaxed_match("0.085", format_number(0.085))


def test_every_question_type_is_produced_for_some_chart(tables):
    seen = set()
    for i in range(200):
        rng = random.Random(f"types/{i}")
        chart = sample_chart(rng, "train", tables, DataParams().chart_kinds)
        seen.update(q.type for q in ask(chart, rng, 10))
        if seen == set(QUESTION_TYPES):
            break
    assert seen == set(QUESTION_TYPES)


def test_plans_name_the_tools_their_questions_need(tables):
    seen = set()
    for i in range(40):
        rng = random.Random(f"plans/{i}")
        chart = sample_chart(rng, "train", tables, DataParams().chart_kinds)
        for q in ask(chart, rng, 4):
            names = planned_calls(q.plan)
            assert set(names) == set(q.tools), (q.type, names, q.tools)
            seen.update(names)
    assert {"Point", "OCR", "DrawHorizontalLineByY", "ZoomInSubfigure"} <= seen


def test_expert_reads_the_answer_from_tool_output_not_from_the_plan():
    plan = {"read": {"A": [10, 10, 40, 24], "B": [60, 10, 90, 24]}, "op": {"name": "argmax"}}
    ocr = '"12" [12, 11, 38, 23]\n"30" [62, 11, 88, 23]'
    assert answer_from(plan, [ocr]) == "B"
    assert answer_from(plan, ['"50" [12, 11, 38, 23]\n"30" [62, 11, 88, 23]']) == "A"
    # a line's value is what the line tool read on the axis
    plan = {"lines": [{"key": "X", "axis": "y", "at": 130}], "op": {"name": "lookup", "key": "X"}}
    assert answer_from(plan, ["Drew a horizontal red line at y=130 on img_0 (400x300). The y axis reads 70 at "
                              "y=130. The result is img_1."]) == "70"
    # Point quotes the value label; a comparison picks the key with the larger value read
    plan = {"points": {"A": "the value label of A", "B": "the value label of B"}, "op": {"name": "argmin"}}
    assert answer_from(plan, ['Point: (1, 2) — "7.5", the value label of the bar for "A"',
                              'Point: (3, 4) — "-2", the value label of the bar for "B"']) == "B"
    plan = {"points": {"bar": "the highest bar"}, "op": {"name": "pick", "key": "bar"}}
    assert answer_from(plan, ['Point: (1, 2) — "Cloud \\"services\\"", the label of the highest bar']) == \
        'Cloud "services"'
    # a crop: boxes of img_0 map through the stated origin and scale
    plan = {"view": {"tool": "Crop", "box": [100, 100, 200, 150]}, "read": {"A": [120, 110, 140, 120]},
            "op": {"name": "lookup", "key": "A"}}
    view = "Cropped [100, 100, 200, 150] (100x50 px) from img_0, upscaled x4 to 400x200."
    assert answer_from(plan, [view, '"8.5" [82, 42, 158, 78]']) == "8.5"


def test_expert_draws_its_line_where_point_found_the_bar():
    plan = {"bar_lines": [{"key": "X", "category": "X", "axis": "y", "end": 1},
                          {"key": "Y", "category": "Y", "axis": "x", "end": 2}],
            "op": {"name": "trend", "keys": ["X", "Y"]}}
    assert next_call(plan, []) == ("Point", {"image": "img_0", "description": "the bar for X"})
    bar = 'Point: (120, 200) — bar for "X", top at y=150, bottom at y=300, box [100, 150, 140, 300]'
    hbar = 'Point: (120, 200) — bar for "Y", left at x=100, right at x=140, box [100, 150, 140, 300]'
    assert next_call(plan, [bar]) == ("DrawHorizontalLineByY", {"image": "img_0", "y": 150})
    line = "Drew a horizontal red line at y=150 on img_0 (400x300). The y axis reads 5 at y=150. The result is img_1."
    assert next_call(plan, [bar, line]) == ("Point", {"image": "img_0", "description": "the bar for Y"})
    # the second line goes on the image the first one made
    assert next_call(plan, [bar, line, hbar]) == ("DrawVerticalLineByX", {"image": "img_1", "x": 140})
    assert next_call(plan, [bar, line, hbar, line.replace("reads 5", "reads 3")]) is None
    assert answer_from(plan, [bar, line, hbar, line.replace("reads 5", "reads 3")]) == "decrease"
    with pytest.raises(ReadingError):
        next_call(plan, ['Point: (1, 2) — "12"'])
    with pytest.raises(ReadingError, match="no right end"):  # the end is read where Point names it, not by index
        next_call(plan, [bar, line, bar])


def test_expert_draws_its_line_through_the_point_point_found_on_a_line():
    plan = {"point_lines": [{"key": "May", "category": "May", "series": "Oslo",
                             "description": "the point of Oslo at May", "axis": "y"}],
            "op": {"name": "lookup", "key": "May"}}
    assert planned_calls(plan) == ["Point", "DrawHorizontalLineByY"]
    assert next_call(plan, []) == ("Point", {"image": "img_0", "description": "the point of Oslo at May"})
    point = 'Point: 2 matches: (179, 158) — the point of the line for "Oslo" at "May"; (240, 90) — ...'
    assert next_call(plan, [point]) == ("DrawHorizontalLineByY", {"image": "img_0", "y": 158})
    line = "Drew a horizontal red line at y=158 on img_0 (400x300). The y axis reads 14.1 at y=158. The result is img_1."
    assert next_call(plan, [point, line]) is None
    assert answer_from(plan, [point, line]) == "14.1"
    with pytest.raises(ReadingError):
        next_call(plan, ["Point: no point here"])


def _expert_episode(chart, question):
    """The scripted expert's episode on ``question`` with the real tools."""
    from thinkimg.agent.policies.scripted import ScriptedPolicy
    from thinkimg.agent.rollout import rollout
    from thinkimg.data.experts import expert
    from thinkimg.tools import InProcessToolClient

    row = {"id": "q", "image": chart.image, "question": question.text, "answer": question.answer,
           "question_type": question.type, "plan": question.plan}
    (episode,) = rollout(ScriptedPolicy(expert), [row], client=InProcessToolClient(ToolsConfig()), max_rounds=6,
                         batch_size=1, tool_workers=1)
    return episode


def _assert_expert_answers_pointing_at(chart, question, description: str) -> None:
    """The expert's episode asks Point only for descriptions starting with ``description``, every call succeeds and
    the answer is right."""
    episode = _expert_episode(chart, question)
    calls = [call for message in episode.conversation.messages for call in message.get("tool_calls") or []]
    points = [c["function"]["arguments"]["description"] for c in calls if c["function"]["name"] == "Point"]
    assert points and all(p.startswith(description) for p in points), (question.type, points)
    assert episode.tool_failures == 0 and relaxed_match(episode.answer, question.answer), \
        (question.type, question.text, question.answer, episode.answer)


def test_grouped_and_stacked_bar_plans_point_at_one_series_bar_and_the_expert_answers():
    """Printed values: Point "the value label of S for X" (one call a value); unprinted: the same question, which
    Point answers with the bar and its value end (a line there reads the axis; two ends tell which is higher) — the
    plan does not depend on whether values are printed, which a model may not see; a stack's total: a line at "the
    top of the stack for X"."""
    from thinkimg.data.render import ChartStyle, render_chart
    from thinkimg.data.questions import QUESTION_TYPES

    table = Table("Household water use", ["2019", "2020", "2021", "2022"],
                  {"Indoor": [412.0, 388.0, 402.0, 371.0], "Garden": [96.0, 171.0, 133.0, 158.0],
                   "Leaks": [41.0, 37.0, 29.0, 55.0]}, unit="litres a day", category_name="Year", ordered=True)
    charts = {"labelled": render_chart(table, ChartStyle(kind="grouped_bar", value_labels=True,
                                                         legend_loc="outside right")),
              "plain": render_chart(table, ChartStyle(kind="grouped_bar", value_labels=False,
                                                      legend_loc="upper left")),
              "stacked": render_chart(table, ChartStyle(kind="stacked_bar", value_labels=False,
                                                        legend_loc="outside right")),
              "stacked labelled": render_chart(table, ChartStyle(kind="stacked_bar", value_labels=True,
                                                                 legend_loc="outside right"))}
    expected = {("labelled", "series_value"): "the value label of ",
                ("labelled", "series_compare"): "the value label of ", ("labelled", "trend"): "the value label of ",
                ("plain", "series_value"): "the value label of ",
                ("plain", "series_compare"): "the value label of ", ("plain", "trend"): "the value label of ",
                ("stacked", "stack_total"): "the top of the stack for ",
                # printed segments too: two calls at the top, not OCR's dump and a sum of every segment
                ("stacked labelled", "stack_total"): "the top of the stack for "}
    for (name, qtype), description in expected.items():
        for i in range(3):
            question = QUESTION_TYPES[qtype].make(charts[name], random.Random(f"sb/{i}"))
            if question is None:  # a value too near zero to read off the axis, or two too close to tell apart
                continue
            _assert_expert_answers_pointing_at(charts[name], question, description)


def test_line_chart_plans_point_at_printed_values_and_the_expert_answers():
    """Printed values on line charts are read as on bars: Point "the value label of X" on a chart of one line, "the
    value label of S for X" on several (one call a value, a short reply to copy), where the plans used OCR's
    whole-chart dump or a Crop."""
    from thinkimg.data.render import ChartStyle, render_chart
    from thinkimg.data.questions import QUESTION_TYPES

    years = ["2016", "2017", "2018", "2019", "2020"]
    one = Table("CO2 emissions per person", years, {"Somalia": [0.019, 0.044, 0.085, 0.111, 0.07]},
                unit="tonnes", category_name="Year", ordered=True)
    two = Table("Net migration", years, {"Germany": [830.0, 760.0, 805.0, 815.0, 798.0],
                                         "United Kingdom": [265.0, 292.0, 348.0, 352.0, 505.0]},
                unit="thousand people", category_name="Year", ordered=True)
    charts = {"one": render_chart(one, ChartStyle(kind="line", value_labels=True)),
              "two": render_chart(two, ChartStyle(kind="line", value_labels=True, legend_loc="outside right")),
              "two plain": render_chart(two, ChartStyle(kind="line", value_labels=False, legend_loc="upper left"))}
    expected = {("one", "value_lookup"): "the value label of ", ("one", "comparison"): "the value labels of ",
                ("one", "difference"): "the value labels of ", ("one", "trend"): "the value label of ",
                ("two", "series_value"): "the value label of ", ("two", "series_compare"): "the value label of ",
                ("two", "trend"): "the value label of ",
                # no value printed: the same questions, answered with the point, a line through it reads the axis
                ("two plain", "series_value"): "the value label of ",
                ("two plain", "series_compare"): "the value label of ", ("two plain", "trend"): "the value label of "}
    for (name, qtype), description in expected.items():
        for i in range(2):
            question = QUESTION_TYPES[qtype].make(charts[name], random.Random(f"lines/{i}"))
            assert question is not None and "OCR" not in question.tools and "Crop" not in question.tools, question
            _assert_expert_answers_pointing_at(charts[name], question, description)


def test_expert_orders_marks_by_the_pixels_point_gave_without_reading_the_axis():
    """Heights: a line's point (pixel y grows downwards: higher on the image is the higher value) or a bar's value
    end (the box index ``end``: the top of a positive bar, the bottom of a negative one)."""
    plan = {"heights": {"2019": {"category": "2019", "series": None, "description": "the point at 2019",
                                 "axis": "y", "end": None},
                        "2021": {"category": "2021", "series": None, "description": "the point at 2021",
                                 "axis": "y", "end": None}},
            "op": {"name": "trend", "keys": ["2019", "2021"]}}
    assert planned_calls(plan) == ["Point", "Point"]
    assert next_call(plan, []) == ("Point", {"image": "img_0", "description": "the point at 2019"})
    a = 'Point: (100, 210) — the point of the line at "2019"'
    b = 'Point: (180, 95) — the point of the line at "2021"'
    assert next_call(plan, [a]) == ("Point", {"image": "img_0", "description": "the point at 2021"})
    assert next_call(plan, [a, b]) is None
    assert answer_from(plan, [a, b]) == "increase"
    assert answer_from(plan, [b.replace("95)", "250)"), a]) == "increase"  # order of plan keys, not of calls
    assert answer_from(plan, [a, b.replace("95)", "250)")]) == "decrease"
    plan = {"heights": {"Tokyo": {"category": "May", "series": "Tokyo", "description": "the point of Tokyo at May",
                                  "axis": "y", "end": None},
                        "Oslo": {"category": "May", "series": "Oslo", "description": "the point of Oslo at May",
                                 "axis": "y", "end": None}},
            "op": {"name": "argmax"}}
    assert answer_from(plan, ['Point: (9, 120) — ...', 'Point: (9, 180) — ...']) == "Tokyo"
    bars = {"heights": {"A": {"category": "A", "series": None, "description": "the bar for A", "axis": "y", "end": 1},
                        "B": {"category": "B", "series": None, "description": "the bar for B", "axis": "y", "end": 3}},
            "op": {"name": "trend", "keys": ["A", "B"]}}
    positive = 'Point: (120, 200) — bar for "A", top at y=150, bottom at y=250, box [100, 150, 140, 250]'
    negative = 'Point: (170, 270) — bar for "B", top at y=250, bottom at y=290, box [150, 250, 190, 290]'
    assert answer_from(bars, [positive, negative]) == "decrease"
    with pytest.raises(ReadingError):
        answer_from(bars, [positive, 'Point: (170, 270) — "12"'])


def test_expert_computes_with_calculate_from_the_numbers_read_and_answers_its_result():
    plan = {"points": {"A": "the value label of A", "B": "the value label of B"},
            "op": {"name": "absdiff", "keys": ["A", "B"]}, "calculate": True}
    a = 'Point: (1, 2) — "7.5", the value label of the bar for "A"'
    b = 'Point: (3, 4) — "12", the value label of the bar for "B"'
    assert planned_calls(plan) == ["Point", "Point", "Calculate"]
    assert next_call(plan, [a, b]) == ("Calculate", {"expression": "abs(7.5 - 12)"})
    # the answer is what Calculate stated, even where the expert's own arithmetic would differ
    assert answer_from(plan, [a, b, "abs(7.5 - 12) = 4.5"]) == "4.5"
    assert answer_from(plan, [a, b, "abs(7.5 - 12) = 99"]) == "99"
    assert next_call(plan, [a, b, "abs(7.5 - 12) = 4.5"]) is None
    # totals and averages take every number OCR read, in plan order, printed separators dropped
    ocr = '"1,200" [12, 11, 38, 23]\n"30.5" [62, 11, 88, 23]\n"-4" [112, 11, 138, 23]'
    boxes = {"A": [10, 10, 40, 24], "B": [60, 10, 90, 24], "C": [110, 10, 140, 24]}
    assert next_call({"read": boxes, "op": {"name": "sum"}, "calculate": True}, [ocr]) == \
        ("Calculate", {"expression": "sum(1200, 30.5, -4)"})
    assert next_call({"read": boxes, "op": {"name": "mean"}, "calculate": True}, [ocr]) == \
        ("Calculate", {"expression": "mean(1200, 30.5, -4)"})
    with pytest.raises(ReadingError):  # Calculate refused: no result to copy
        answer_from(plan, [a, b, "Error: Calculate: division by zero"])
    with pytest.raises(ValueError, match="no calculation"):
        planned_calls({"points": {"bar": "the highest bar"}, "op": {"name": "pick", "key": "bar"}, "calculate": True})


def test_expert_reads_several_values_from_one_point_reply():
    """'The value labels of "A" and "B"': both numbers in one reply, read by the keys in the order asked (every
    bar's, by the labels the reply names, for "the value labels")."""
    reply = 'Point: 2 value labels: 7.5, 1,200 (for "May \\"24", "June")'
    plan = {"values": {"keys": ['May "24', "June"], "description": 'the value labels of "May \\"24" and "June"'},
            "op": {"name": "absdiff", "keys": ['May "24', "June"]}, "calculate": True}
    assert planned_calls(plan) == ["Point", "Calculate"]
    assert next_call(plan, []) == ("Point", {"image": "img_0", "description": plan["values"]["description"]})
    assert next_call(plan, [reply]) == ("Calculate", {"expression": "abs(7.5 - 1200)"})
    assert answer_from({"values": plan["values"], "op": {"name": "argmax"}}, [reply]) == "June"
    every = {"values": {"keys": None, "description": "the value labels"}, "op": {"name": "mean"}, "calculate": True}
    assert next_call(every, ['Point: 3 value labels: 4, -2, 10.5 (for "A", "B", "C")']) == \
        ("Calculate", {"expression": "mean(4, -2, 10.5)"})
    with pytest.raises(ReadingError):  # one value where two were asked for
        next_call(plan, ['Point: (1, 2) — "7.5", the value label of the bar for "May"'])
    with pytest.raises(ReadingError):  # no value printed: nothing to compute with
        next_call(every, ['Point: 2 value labels: ?, 3 (for "A", "B"); no value printed at the bar for "A", top at '
                          'y=4, bottom at y=9, box [1, 4, 9, 9]'])


def test_difference_comparison_and_bar_totals_ask_point_for_their_values_in_one_call():
    """The numbers a difference, a comparison or a total needs stand side by side in one reply (they were read
    over two or more turns, or out of OCR's whole dump, and copied from there)."""
    from thinkimg.data.questions import QUESTION_TYPES
    from thinkimg.data.render import ChartStyle, render_chart

    table = Table("Household water use", ["Spain", "Italy", "Peru", "Chile"], {"Use": [252.0, 430.0, 175.0, 88.0]},
                  unit="litres", category_name="Country")
    charts = {kind: render_chart(table, ChartStyle(kind=kind, value_labels=True)) for kind in ("bar", "hbar")}
    for name, chart in charts.items():
        for qtype in ("difference", "comparison", "sum_average"):
            for i in range(2):
                question = QUESTION_TYPES[qtype].make(chart, random.Random(f"values/{qtype}/{i}"))
                assert question is not None and planned_calls(question.plan)[0] == "Point", question
                assert planned_calls(question.plan).count("Point") == 1 and "OCR" not in question.tools
                _assert_expert_answers_pointing_at(chart, question, "the value labels")


# ------------------------------------------------------------------------------------------ the dataset


def test_curate_writes_the_splits_the_card_promises(dataset):
    out, card = dataset
    for split, target in (("sft", 10), ("rl", 24), ("eval", 12)):
        records = read_split(out, split)
        assert len(records) >= target
        assert card["counts"][split]["records"] == len(records)
    assert (out / "README.md").read_text().startswith("---\nconfigs:")
    assert card["data_sha256"] == engine.data_hash(DATA)
    kept = card["sft_kept"].values()
    assert all(0 <= v["kept"] <= v["attempted"] for v in kept)
    assert sum(v["kept"] for v in kept) == card["counts"]["sft"]["records"]
    assert "kept rate" in (out / "README.md").read_text()
    ds = load_split(out, "rl")
    assert ds[0]["image"].size == load_image(out / read_split(out, "rl")[0]["image"]).size
    assert len(load_split(out, "sft")) == card["counts"]["sft"]["records"]


def test_eval_split_uses_only_eval_tables(dataset):
    out, _ = dataset
    charts = {c["id"]: c for c in map(json.loads, (out / "charts.jsonl").read_text().splitlines())}
    for split in ("eval", "rl", "sft"):
        groups = {t["split_group"] for r in read_split(out, split) for t in charts[r["chart_id"]]["tables"]}
        assert groups == ({"eval"} if split == "eval" else {"train"}), (split, groups)


def test_trajectories_have_the_training_format(dataset):
    out, _ = dataset
    for record in read_split(out, "sft"):
        conv = load_conversation(out, record)
        assistant = [m for m in conv.messages if m["role"] == "assistant"]
        for turn in assistant[:-1]:
            assert turn["content"] == [] and len(turn["tool_calls"]) == 1
        assert assistant[-1]["content"][0]["text"].startswith("<answer>")
        answer = re.search(r"<answer>(.*)</answer>", assistant[-1]["content"][0]["text"]).group(1)
        assert relaxed_match(answer, record["answer"])
        assert conv.image_refs()[0] == "img_0"


def test_replaying_a_trajectory_on_a_fresh_tool_server_gives_the_same_observations(dataset):
    out, _ = dataset
    records = read_split(out, "sft")[:4]
    with ToolServer(ToolsConfig()) as server, HTTPToolClient(server.url) as client:
        for record in records:
            conv = load_conversation(out, record)
            images = {"img_0": conv.images["img_0"]}
            messages = conv.messages
            for i, message in enumerate(messages):
                if message["role"] != "assistant" or not message.get("tool_calls"):
                    continue
                call = message["tool_calls"][0]["function"]
                observed = messages[i + 1]
                result = client.call(call["name"], images[call["arguments"].get("image", "img_0")], call["arguments"])
                text = " ".join(p["text"] for p in observed["content"] if p["type"] == "text")
                if result.images:
                    ref = next(p["ref"] for p in observed["content"] if p["type"] == "image")
                    assert image_hash(result.images[0]) == image_hash(conv.images[ref])
                    images[ref] = result.images[0]
                    assert text == f"{result.text} The result is {ref}."
                else:
                    assert text == result.text


def test_curate_is_deterministic_and_resumes_after_a_crash(dataset, tmp_path, monkeypatch):
    out, card = dataset
    again = tmp_path / "again"
    real = engine.run_chunk
    calls = {"n": 0}

    def crash_on_third(split, chunk):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # an interrupted run
        return real(split, chunk)

    monkeypatch.setattr(engine, "run_chunk", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        curate(small_params(again), progress=False)
    monkeypatch.setattr(engine, "run_chunk", real)
    resumed = curate(small_params(again), progress=False)
    assert resumed["resumed_chunks"] == 2
    for name in ("sft.jsonl", "rl.jsonl", "eval.jsonl", "charts.jsonl"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    first = read_split(out, "rl")[0]["image"]
    assert (again / first).read_bytes() == (out / first).read_bytes()
    # a finished dataset with the same parameters is not redone; other parameters need --force
    assert curate(small_params(again), progress=False)["seconds"] == resumed["seconds"]
    with pytest.raises(CurateError, match="other parameters"):
        curate(small_params(again, seed=8), progress=False)


@pytest.mark.slow
def test_two_worker_processes_give_the_same_dataset(dataset, tmp_path):
    out, _ = dataset
    two = tmp_path / "two"
    curate(small_params(two, workers=2), progress=False)
    for name in ("sft.jsonl", "rl.jsonl", "eval.jsonl", "charts.jsonl"):
        assert (two / name).read_bytes() == (out / name).read_bytes(), name


def test_params_errors_name_the_file_and_field(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("data:\n  rl_questions: -3\n")
    with pytest.raises(ValueError, match=r"params.yaml.*rl_questions"):
        load_params(path)
    path.write_text("data:\n  chart_kinds: {bar: 1, radar: 2}\n")
    with pytest.raises(ValueError, match=r"radar"):
        load_params(path)
    repo = load_params(ROOT / "params.yaml")  # the repository's own params load (the tiny pipeline's sizes)
    assert repo.sft_trajectories > 0 and repo.rl_questions > 0 and repo.eval_questions > 0


def test_missing_source_tables_fail_before_any_worker_starts_and_block_nothing(tmp_path):
    from thinkimg.data.sources import SourceError

    out = tmp_path / "charts"
    out.mkdir()
    (out / ".parts").mkdir()  # an earlier run that saved no chunk
    with pytest.raises(SourceError, match=r"sources.yaml"):
        curate(small_params(out, data_dir=tmp_path / "no-data", workers=2), progress=False)
    (out / ".parts" / "fingerprint").write_text("other")  # ... under other params: nothing saved, nothing to lose
    card = curate(small_params(out, sft_trajectories=2, rl_questions=4, eval_questions=4), progress=False)
    assert card["counts"]["sft"]["records"] >= 2


def test_read_split_names_the_file_line_and_field(dataset, tmp_path):
    out, _ = dataset
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    lines = (broken / "rl.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    del record["answer"]
    lines[1] = json.dumps(record)
    (broken / "rl.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"rl.jsonl: line 2: field 'answer'"):
        read_split(broken, "rl")
    (broken / read_split(broken, "eval")[0]["image"]).unlink()
    with pytest.raises(DatasetError, match=r"eval.jsonl: line 1: image file not found"):
        read_split(broken, "eval")


def test_the_eval_split_is_an_eval_task(dataset, tmp_path):
    from thinkimg.agent.policies import build_policy
    from thinkimg.eval.evaluator import evaluate
    from thinkimg.eval.tasks import load_task

    out, card = dataset
    data = load_task("charts", path=out, split="eval")
    assert len(data) == card["counts"]["eval"]["records"]
    summary = evaluate(build_policy("scripted"), data, output=tmp_path / "r.jsonl", max_rounds=3, ablation=False,
                       viewer=False)
    assert summary["n"] == len(data)
    assert set(summary["by_type"]) == set(card["counts"]["eval"]["question_types"])
