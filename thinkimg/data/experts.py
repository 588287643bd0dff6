"""The scripted expert that answers data-engine questions with real tool calls.

It plays the agent protocol through :class:`~thinkimg.agent.policies.scripted.ScriptedPolicy`: one tool call per
turn (``content: []`` on those turns, as the training templates expect), then ``<answer>``. It follows the
question's plan (:mod:`thinkimg.data.questions`) for *where* to look and takes *what* it reports only from the
tools' outputs: the numbers and words OCR read, the crop/zoom mapping the tool stated, the tick labels OCR found.
When a reading fails (OCR missed or misread a label) it answers from what it has, and the data engine drops the
trajectory because the answer does not match the gold one.

Plan keys: ``view`` (``{"tool": "Crop", "box"}`` or ``{"tool": "ZoomInSubfigure", "description"}``), ``lines``
(axis readings: ``{"key", "axis": "x"|"y", "at": pixel}``), ``ticks`` (boxes of the value axis' tick labels),
``read`` (key -> box of a printed value), ``labels`` (name -> box of a point label), ``text`` (box of a text to
copy) and ``op`` (how the readings become the answer). Boxes are in pixels of the original image (``img_0``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.protocol import format_answer, format_call
from thinkimg.data.questions import format_number
from thinkimg.eval.metrics import parse_number
from thinkimg.tools.boxes import Box, overlap_of_smaller
from thinkimg.tools.ocr.base import TextLine
from thinkimg.tools.text import parse_ocr_text

#: How much of the smaller box must overlap for an OCR line to count as the planned text.
MIN_OVERLAP = 0.5

_BOX = re.compile(r"\[(-?\d+), (-?\d+), (-?\d+), (-?\d+)\]")
_SCALE = re.compile(r"upscaled x([0-9.]+)")


class ReadingError(Exception):
    """A planned reading found nothing in the tool output."""


def planned_calls(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The tool calls the plan makes, in order, each with the image it acts on.

    A view (Crop / ZoomInSubfigure of ``img_0``) is followed by OCR of the view. Axis readings draw their lines
    one on top of the other (``img_0`` -> ``img_1`` -> ``img_2``), then OCR reads the tick labels of ``img_0`` (the
    lines only mark where to read; the original's text is the same, and its OCR is shared by every question on
    the chart). Otherwise OCR reads ``img_0``."""
    calls: list[tuple[str, dict[str, Any]]] = []
    view = plan.get("view")
    if view:
        if view["tool"] == "Crop":
            calls.append(("Crop", {"image": "img_0", "box": view["box"]}))
        else:
            calls.append(("ZoomInSubfigure", {"image": "img_0", "description": view["description"]}))
        calls.append(("OCR", {"image": "img_1"}))
        return calls
    for n, line in enumerate(plan.get("lines", [])):
        if line["axis"] == "y":
            calls.append(("DrawHorizontalLineByY", {"image": f"img_{n}", "y": line["at"]}))
        else:
            calls.append(("DrawVerticalLineByX", {"image": f"img_{n}", "x": line["at"]}))
    calls.append(("OCR", {"image": "img_0"}))
    return calls


def expert(conv: Conversation) -> str:
    """The next assistant turn for a data-engine question (``conv.meta["plan"]``)."""
    plan = conv.meta["plan"]
    calls = planned_calls(plan)
    observations = [m for m in conv.messages if m["role"] == "tool"]
    for message in observations:
        if _text(message).startswith("Error"):
            return format_answer("unknown")
    if len(observations) < len(calls):
        name, args = calls[len(observations)]
        return format_call(name, args)
    try:
        return format_answer(answer_from(plan, [_text(m) for m in observations]))
    except ReadingError:
        return format_answer("unknown")


def _text(message: dict[str, Any]) -> str:
    return " ".join(p["text"] for p in message["content"] if p.get("type") == "text")


def answer_from(plan: dict[str, Any], observations: list[str]) -> str:
    """Turn the tool observations (in call order, OCR last) into the answer the plan's ``op`` asks for."""
    lines = parse_ocr_text(observations[-1])
    origin, scale = (0, 0), 1.0
    if plan.get("view"):
        origin, scale = _mapping(observations[0])

    def mapped(box: Box) -> Box:
        x0, y0, x1, y1 = box
        ox, oy = origin
        return (int((x0 - ox) * scale), int((y0 - oy) * scale), int(math.ceil((x1 - ox) * scale)),
                int(math.ceil((y1 - oy) * scale)))

    values: dict[str, float] = {}
    for key, box in plan.get("read", {}).items():
        values[key] = _read_number(lines, mapped(box))
    decimals = None
    if plan.get("lines"):
        fit, decimals = _axis_fit(lines, [mapped(b) for b in plan["ticks"]], plan["lines"][0]["axis"])
        for line in plan["lines"]:
            values[line["key"]] = fit(line["at"])
    op = plan["op"]
    name = op["name"]
    if name == "lookup":
        value = values[op["key"]]
        return format_number(round(value, decimals)) if decimals is not None else format_number(value)
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


def _axis_fit(lines: list[TextLine], ticks: list[Box], axis: str):
    """A least-squares pixel -> value map from the tick labels OCR read, and the decimals worth answering with."""
    points = []
    for box in ticks:
        try:
            value = _read_number(lines, box)
        except ReadingError:
            continue
        found = _overlapping(lines, box)[0].box
        pixel = (found[1] + found[3]) / 2 if axis == "y" else (found[0] + found[2]) / 2
        points.append((pixel, value))
    if len({v for _, v in points}) < 2:
        raise ReadingError("fewer than two tick labels read")
    n = len(points)
    mp = sum(p for p, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((p - mp) ** 2 for p, _ in points)
    if var == 0:
        raise ReadingError("tick labels at one pixel")
    slope = sum((p - mp) * (v - mv) for p, v in points) / var
    values = sorted({v for _, v in points})
    step = min(b - a for a, b in zip(values, values[1:]))
    decimals = max(0, -math.floor(math.log10(step / 10))) if step > 0 else 2
    return (lambda pixel: mv + slope * (pixel - mp)), decimals
