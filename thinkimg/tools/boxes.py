"""Pixel-box geometry shared by the tools and the OCR backends: ``(x0, y0, x1, y1)``, x1 and y1 exclusive."""

from __future__ import annotations

Box = tuple[int, int, int, int]


def area(b: Box) -> int:
    """Pixels inside ``b`` (0 for an empty or inverted box)."""
    return max(0, b[2] - b[0]) * max(0, b[3] - b[1])


def intersection(a: Box, b: Box) -> int:
    """Pixels the two boxes share."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    i = intersection(a, b)
    u = area(a) + area(b) - i
    return i / u if u else 0.0


def overlap_of_smaller(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area (1.0 when the smaller box lies inside the other)."""
    small = min(area(a), area(b))
    return intersection(a, b) / small if small else 0.0


def overlap_1d(a0: float, a1: float, b0: float, b1: float) -> float:
    """How much of the shorter of two intervals ``[a0, a1)`` and ``[b0, b1)`` the other covers, in [0, 1]."""
    inter = min(a1, b1) - max(a0, b0)
    return max(0.0, inter) / max(1.0, min(a1 - a0, b1 - b0))
