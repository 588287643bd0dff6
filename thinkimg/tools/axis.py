"""Reading a value axis from its tick labels: which numbers stand in one column (a y axis) or one row (an x axis),
and the straight pixel -> value map through them. The line-drawing tools use it to say what value a line marks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thinkimg.tools.ocr.base import TextLine

#: Most tick labels a fit may leave off the line by more than this share of a tick step (misread labels).
MAX_RESIDUAL = 0.1


@dataclass
class AxisFit:
    """A value axis: the tick labels read (pixel, value) and the least-squares line through them."""

    axis: str  # "x" or "y": the pixel coordinate the values map from
    ticks: list[tuple[float, float]]
    slope: float
    intercept: float
    decimals: int

    def value_at(self, pixel: float) -> float:
        """The axis value at ``pixel``, rounded to the decimals worth reading at the ticks' spacing."""
        return round(self.intercept + self.slope * pixel, self.decimals)

    def format(self, value: float) -> str:
        text = f"{value:.{self.decimals}f}"
        return "0" if text.strip("-0.") == "" else text


def parse_tick(text: str) -> float | None:
    """The number a tick label shows ("1,200", "-5", "40%", "$3.5", "1.2k" is not read), or None."""
    cleaned = text.strip().replace(",", "").replace("\u2212", "-").replace("\u2013", "-").rstrip("%").lstrip("$€£")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _decimals(values: list[float]) -> int:
    distinct = sorted(set(values))
    step = min(b - a for a, b in zip(distinct, distinct[1:]))
    return max(0, -math.floor(math.log10(step / 10))) if step > 0 else 2


def _fit(axis: str, group: list[tuple[TextLine, float]]) -> AxisFit | None:
    pixels = np.array([(ln.box[1] + ln.box[3]) / 2 if axis == "y" else (ln.box[0] + ln.box[2]) / 2
                       for ln, _ in group], dtype=float)
    values = np.array([v for _, v in group], dtype=float)
    if len(set(values.tolist())) < 2 or np.ptp(pixels) == 0:
        return None
    slope, intercept = np.polyfit(pixels, values, 1)
    if (axis == "y" and slope >= 0) or (axis == "x" and slope <= 0):  # values grow upwards / rightwards
        return None
    distinct = sorted(set(values.tolist()))
    step = min(b - a for a, b in zip(distinct, distinct[1:]))
    residual = np.abs(values - (intercept + slope * pixels))
    if np.count_nonzero(residual > MAX_RESIDUAL * step) > len(group) // 4:
        return None
    return AxisFit(axis, [(float(p), float(v)) for p, v in zip(pixels, values)], float(slope), float(intercept),
                   _decimals(distinct))


def read_axis(lines: list[TextLine], axis: str) -> AxisFit | None:
    """The value axis along ``axis`` ("y": numbers stacked in a column, flush right or left; "x": numbers in one
    row, tops level) with the most tick labels that a straight line fits; None when no such axis is found."""
    numbers = [(ln, v) for ln in lines if (v := parse_tick(ln.text)) is not None]
    if len(numbers) < 2:
        return None
    heights = [ln.box[3] - ln.box[1] for ln, _ in numbers]
    tolerance = max(3.0, float(np.median(heights)) / 2)
    edges = (2, 0) if axis == "y" else (1,)
    best: AxisFit | None = None
    for anchor, _ in numbers:
        for edge in edges:
            group = [(ln, v) for ln, v in numbers if abs(ln.box[edge] - anchor.box[edge]) <= tolerance]
            if len(group) < 2 or (best is not None and len(group) <= len(best.ticks)):
                continue
            fit = _fit(axis, group)
            if fit is not None:
                best = fit
    return best
