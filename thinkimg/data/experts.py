"""The scripted expert that answers data-engine questions with real tool calls.

It plays the agent protocol through :class:`~thinkimg.agent.policies.scripted.ScriptedPolicy`: one tool call per
turn (``content: []`` on those turns, as the training templates expect), then ``<answer>``. It follows the
question's plan (:mod:`thinkimg.data.questions`) for *where* to look and takes *what* it reports only from the
tools' outputs: the text Point quotes, the value a drawn line reads on the axis, the box Point gives a bar, the
numbers and words OCR read, the crop/zoom mapping the tool stated. When a reading fails (OCR missed or misread a
label) it answers from what it has, and the data engine drops the trajectory because the answer does not match the
gold one.

Plan keys, in the order their calls are made: ``view`` (``{"tool": "Crop", "box"}`` or ``{"tool":
"ZoomInSubfigure", "description"}``: later calls look at the view, ``img_1``), ``values`` (``{"keys",
"description"}``: one Point call for several printed values, 'the value labels of "A" and "B"' or every bar's, "the
value labels" with ``keys`` None; each key's reading is the number listed for it, in order), ``points`` (key -> a Point
description: "the value label of X", "the highest bar", "the chart title"; the key's reading is the text Point
quotes), ``bar_lines`` (``{"key", "category", "axis", "end"}``: Point "the bar for X" — or its ``description``,
"the bar of S for X" for ``series`` S — then a line at the bar's end ``end`` (an index into the box Point gave)
whose axis reading is the key's value), ``point_lines`` (``{"key",
"category", "series", "description", "axis"}``: Point "the point of S at X", then a line through the point it
gives, read on the axis), ``heights`` (key -> ``{"category", "series", "description", "axis", "end"}``: Point at a
bar or a line's point; the key's reading is
the pixel of its value end on the value axis, the bar's box index ``end`` or the point (``end`` None), signed so
that a higher value reads larger: it orders marks without reading the axis), ``lines`` (``{"key", "axis",
"at"}``: a line at a known pixel, read on the axis), and the OCR readings: ``read`` (key -> box of a printed value),
``labels`` (name -> box of a point label), ``text`` (box of a text to copy). ``names``: labels the descriptions
name besides the keys (the series of "the value label of S for X"; relabelled with the rest). ``op`` says how the
readings become the answer; with ``calculate`` the arithmetic ops (``absdiff``, ``sum``, ``mean``) are written as an
expression over the numbers read (``abs(257 - 44)``, ``(12 + 3.5 + 8) / 3``) for a last Calculate call, and the
answer is the result it states. Boxes and pixels are of the original image (``img_0``).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.protocol import format_answer, format_call
from thinkimg.data.questions import format_number, line_tool
from thinkimg.eval.metrics import parse_number
from thinkimg.tools.boxes import Box, overlap_of_smaller
from thinkimg.tools.ocr.base import TextLine
from thinkimg.tools.text import parse_ocr_text, parse_value_list

#: How much of the smaller box must overlap for an OCR line to count as the planned text.
MIN_OVERLAP = 0.5

_BOX = re.compile(r"\[(-?\d+), (-?\d+), (-?\d+), (-?\d+)\]")
_SCALE = re.compile(r"upscaled x([0-9.]+)")
#: Point quotes what it found after a dash: ``(x, y) — "8.9", the value label of ...`` (group 1: the JSON string).
POINT_QUOTE = re.compile(r' — ("(?:[^"\\]|\\.)*")')
#: The first point a Point observation gives: ``Point: (312, 140) — ...`` or ``Point: 2 matches: (312, 140) — ...``.
_POINT = re.compile(r"\((-?\d+), (-?\d+)\) — ")
_READS = re.compile(r"axis reads (-?[0-9.]+) at")
_RESULT = re.compile(r"The result is (img_\d+)\.")
_CALCULATED = re.compile(r" = (\S+)$")
#: How Point names the bar's end at each index of its box ``[x0, y0, x1, y1]`` (``top at y=80`` for index 1).
_BAR_ENDS = {0: ("left", "x"), 1: ("top", "y"), 2: ("right", "x"), 3: ("bottom", "y")}
#: How each arithmetic op is written for Calculate, from the numbers read (in plan order).
CALCULATIONS = {
    "absdiff": lambda xs: f"abs({xs[0]} - {xs[1]})",
    "sum": lambda xs: f"sum({', '.join(xs)})",
    "mean": lambda xs: f"mean({', '.join(xs)})",
}


class ReadingError(Exception):
    """A planned reading found nothing in the tool output."""


def _steps(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The plan's calls in order, as (kind, details); arguments that depend on earlier outputs are filled in by
    :func:`next_call`."""
    steps: list[tuple[str, dict[str, Any]]] = []
    if plan.get("view"):
        steps.append(("view", plan["view"]))
    if plan.get("values"):
        steps.append(("values", plan["values"]))
    for key, description in plan.get("points", {}).items():
        steps.append(("point", {"key": key, "description": description}))
    for key, height in plan.get("heights", {}).items():
        steps.append(("height", {"key": key, **height}))
    for line in plan.get("bar_lines", []):
        description = line.get("description", f"the bar for {line['category']}")
        steps.append(("point", {"key": None, "description": description}))
        steps.append(("bar_line", line))
    for line in plan.get("point_lines", []):
        steps.append(("point", {"key": None, "description": line["description"]}))
        steps.append(("point_line", line))
    for line in plan.get("lines", []):
        steps.append(("line", line))
    if plan.get("read") or plan.get("text") or plan.get("labels"):
        steps.append(("ocr", {}))
    if plan.get("calculate"):
        if plan["op"]["name"] not in CALCULATIONS:
            raise ValueError(f"plan op {plan['op']['name']!r} has no calculation; known: {', '.join(CALCULATIONS)}")
        steps.append(("calc", {}))
    return steps


def planned_calls(plan: dict[str, Any]) -> list[str]:
    """The names of the tools the plan calls, in order."""
    names = {"point": "Point", "values": "Point", "height": "Point", "ocr": "OCR", "calc": "Calculate"}
    out = []
    for kind, step in _steps(plan):
        if kind == "view":
            out.append(step["tool"])
        elif kind in ("line", "bar_line", "point_line"):
            out.append(line_tool(step["axis"]))
        else:
            out.append(names[kind])
    return out


def next_call(plan: dict[str, Any], observations: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The next tool call of the plan after ``observations`` (the tool outputs so far, in order), or None when
    every call has been made. Raises :class:`ReadingError` when an argument cannot be read from an output."""
    steps = _steps(plan)
    if len(observations) >= len(steps):
        return None
    kind, step = steps[len(observations)]
    base = "img_1" if plan.get("view") else "img_0"
    if kind == "view":
        if step["tool"] == "Crop":
            return "Crop", {"image": "img_0", "box": step["box"]}
        return "ZoomInSubfigure", {"image": "img_0", "description": step["description"]}
    if kind in ("point", "values", "height"):
        return "Point", {"image": base, "description": step["description"]}
    if kind == "ocr":
        return "OCR", {"image": base}
    if kind == "calc":
        return "Calculate", {"expression": calculation(plan, observations)}
    # a line: drawn on the newest image of the line chain (each line stays visible on the next)
    image = base
    for text in observations:
        produced = _RESULT.search(text)
        if produced and "Drew a" in text:
            image = produced.group(1)
    if kind == "bar_line":
        at = value_end(observations[-1], step["axis"], step["end"])
    elif kind == "point_line":
        at = value_end(observations[-1], step["axis"], None)
    else:
        at = step["at"]
    return line_tool(step["axis"]), {"image": image, step["axis"]: at}


def expert(conv: Conversation) -> str:
    """The next assistant turn for a data-engine question (``conv.meta["plan"]``)."""
    plan = conv.meta["plan"]
    observations = [_text(m) for m in conv.messages if m["role"] == "tool"]
    if any(text.startswith("Error") for text in observations):
        return format_answer("unknown")
    try:
        call = next_call(plan, observations)
        if call is not None:
            return format_call(*call)
        return format_answer(answer_from(plan, observations))
    except ReadingError:
        return format_answer("unknown")


def _text(message: dict[str, Any]) -> str:
    return " ".join(p["text"] for p in message["content"] if p.get("type") == "text")


def quoted_text(observation: str) -> str:
    """The text a Point observation quotes after its point: ``(x, y) — "8.9", ...`` -> ``8.9``."""
    found = POINT_QUOTE.search(observation)
    if found is None:
        raise ReadingError("Point quoted no text")
    return json.loads(found.group(1))


def pointed(observation: str) -> tuple[int, int]:
    """The (first) point a Point observation gives: ``Point: (312, 140) — ...`` -> ``(312, 140)``."""
    found = _POINT.search(observation)
    if found is None:
        raise ReadingError("Point gave no point")
    return int(found.group(1)), int(found.group(2))


def listed_values(observation: str, keys: list[str] | None) -> dict[str, float]:
    """The numbers of Point's several-values reply (``Point: 2 value labels: 252, 430 (for "Spain", "Italy")``), by
    ``keys`` in the order asked (by the labels it names when ``keys`` is None)."""
    try:
        texts, labels = parse_value_list(observation)
    except ValueError as err:
        raise ReadingError(str(err)) from None
    if keys is not None and len(texts) != len(keys):
        raise ReadingError(f"{len(texts)} printed values where {len(keys)} were asked for: {observation[:120]!r}")
    out: dict[str, float] = {}
    for key, text, label in zip(keys or labels, texts, labels):
        number = None if text is None else parse_number(text)
        if number is None:
            raise ReadingError(f"no number printed for {label!r} ({text!r})")
        out[key] = number
    return out


def value_end(observation: str, axis: str, end: int | None) -> int:
    """The pixel (on the ``axis`` "x" or "y") of a mark's value end in a Point observation: the point Point gave
    (``end`` None) or the bar's end Point names for index ``end`` of its box (``top at y=80`` for index 1)."""
    if end is None:
        x, y = pointed(observation)
        return x if axis == "x" else y
    side, pixel = _BAR_ENDS[end]
    found = re.search(rf"\b{side} at {pixel}=(-?\d+)", observation)
    if found is None:
        raise ReadingError(f"Point named no {side} end of a bar")
    return int(found.group(1))


def height_reading(observation: str, axis: str, end: int | None) -> float:
    """A mark's value end (:func:`value_end`) signed so that higher values read larger (pixel y grows downwards)."""
    at = value_end(observation, axis, end)
    return float(at if axis == "x" else -at)


def axis_reading(observation: str) -> float:
    """The value a drawn line reads on the axis (``... The y axis reads 4.8 at y=66.``)."""
    found = _READS.search(observation)
    if found is None:
        raise ReadingError("the line's axis reading is missing")
    return float(found.group(1))


def _readings(plan: dict[str, Any], observations: list[str]) -> tuple[dict[str, float], dict[str, str],
                                                                      list[TextLine], Any]:
    """What the reading calls found: numbers by key, Point's quoted texts by key, the OCR lines and the function
    mapping a box of the original image into the view they were read on."""
    steps = [step for step in _steps(plan) if step[0] != "calc"]
    if len(observations) < len(steps):
        raise ReadingError("fewer observations than planned calls")
    values: dict[str, float] = {}
    texts: dict[str, str] = {}
    lines: list[TextLine] = []
    origin, scale = (0, 0), 1.0
    for (kind, step), text in zip(steps, observations):
        if kind == "view":
            origin, scale = _mapping(text)
        elif kind == "point" and step["key"] is not None:
            texts[step["key"]] = quoted_text(text)
            number = parse_number(texts[step["key"]])
            if number is not None:
                values[step["key"]] = number
        elif kind == "values":
            values.update(listed_values(text, step["keys"]))
        elif kind == "height":
            values[step["key"]] = height_reading(text, step["axis"], step["end"])
        elif kind in ("line", "bar_line", "point_line"):
            values[step["key"]] = axis_reading(text)
        elif kind == "ocr":
            lines = parse_ocr_text(text)

    def mapped(box: Box) -> Box:
        x0, y0, x1, y1 = box
        ox, oy = origin
        return (int((x0 - ox) * scale), int((y0 - oy) * scale), int(math.ceil((x1 - ox) * scale)),
                int(math.ceil((y1 - oy) * scale)))

    for key, box in plan.get("read", {}).items():
        values[key] = _read_number(lines, mapped(box))
    wanted = {k for k in plan.get("points", {}) if plan["op"]["name"] != "pick"} | \
        {line["key"] for line in plan.get("bar_lines", []) + plan.get("point_lines", []) + plan.get("lines", [])} | \
        set(plan.get("heights", {}))
    if wanted - set(values):
        raise ReadingError(f"no number read for {sorted(wanted - set(values))}")
    return values, texts, lines, mapped


def calculation(plan: dict[str, Any], observations: list[str]) -> str:
    """The expression the plan's Calculate call evaluates, written from the numbers read (``abs(257 - 44)``)."""
    values = _readings(plan, observations)[0]
    op = plan["op"]
    keys = op.get("keys") or list(values)
    return CALCULATIONS[op["name"]]([format_number(values[k]) for k in keys])


def answer_from(plan: dict[str, Any], observations: list[str]) -> str:
    """Turn the tool observations (in call order) into the answer the plan's ``op`` asks for; with ``calculate``,
    the result the Calculate call stated."""
    if plan.get("calculate"):
        steps = _steps(plan)
        if len(observations) < len(steps):
            raise ReadingError("fewer observations than planned calls")
        found = _CALCULATED.search(observations[len(steps) - 1])
        if found is None:
            raise ReadingError("Calculate stated no result")
        return found.group(1)
    values, texts, lines, mapped = _readings(plan, observations)
    op = plan["op"]
    name = op["name"]
    if name == "pick":
        return texts[op["key"]]
    if name == "lookup":
        return format_number(values[op["key"]])
    if name in ("argmax", "argmin"):
        pick = max if name == "argmax" else min
        return pick(values, key=values.__getitem__)
    if name == "rank":
        return sorted(values, key=values.__getitem__, reverse=True)[op["k"] - 1]
    if name == "absdiff":
        a, b = op["keys"]
        return format_number(abs(values[a] - values[b]))
    if name == "sum":
        return format_number(sum(values.values()))
    if name == "mean":
        return format_number(sum(values.values()) / len(values))
    if name == "trend":
        a, b = op["keys"]
        return "increase" if values[b] > values[a] else "decrease"
    if name == "text":
        found = _overlapping(lines, mapped(plan["text"]))
        if not found:
            raise ReadingError("no text where the plan looks")
        return " ".join(ln.text for ln in sorted(found, key=lambda ln: (ln.box[1] // 8, ln.box[0])))
    if name in ("top_label", "bottom_label"):
        read = {}
        for box in plan["labels"].values():
            found = _overlapping(lines, mapped(box))
            if found:
                best = found[0]
                read[best.text] = (best.box[1] + best.box[3]) / 2
        if len(read) < 2:
            raise ReadingError("fewer than two point labels read")
        pick = min if name == "top_label" else max  # pixel y grows downwards
        return pick(read, key=read.__getitem__)
    raise ValueError(f"unknown plan op {name!r}")


def _mapping(view_text: str) -> tuple[tuple[int, int], float]:
    """The (x0, y0) and scale a Crop / ZoomInSubfigure observation states."""
    box = _BOX.search(view_text)
    if box is None:
        raise ReadingError("the view observation states no box")
    scale = _SCALE.search(view_text)
    return (int(box.group(1)), int(box.group(2))), float(scale.group(1).rstrip(".")) if scale else 1.0


def _overlapping(lines: list[TextLine], box: Box) -> list[TextLine]:
    """OCR lines overlapping ``box``, best overlap first."""
    scored = [(overlap_of_smaller(ln.box, box), ln) for ln in lines]
    return [ln for score, ln in sorted(scored, key=lambda p: -p[0]) if score >= MIN_OVERLAP]


def _read_number(lines: list[TextLine], box: Box) -> float:
    for line in _overlapping(lines, box):
        value = parse_number(line.text)
        if value is not None:
            return value
    raise ReadingError(f"no number read at {list(box)}")
