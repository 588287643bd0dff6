"""Panel (subplot) detection for multi-panel chart figures, without a model.

1. **Axes from axis lines.** Axis spines are long, thin, dark runs. Horizontal and vertical runs are paired where
   they meet at a corner (bottom-left, else top-left), which finds both left+bottom-spine axes and full boxes.
   Light gridlines and legend frames are too light to count, the edges of thick dark bars too thick; rectangles
   inside another axes (bar outlines, legends, insets) are dropped, unless the outer one is a frame around
   several axes.
2. **Axes -> panel.** Each axes box grows to its cell (up to the widest blank band between it and the neighbouring
   axes, or the image edge), then shrinks to the content that hangs together with the axes (title, tick labels,
   axis labels), stopping at wide blank bands, so a figure title or a neighbour's labels stay out.
3. **Fallback for figures without axis lines** (pies, maps, styles without spines): recursive whitespace cuts
   (XY-cut); small pieces (titles, labels) join the nearest large piece.

Large images are shrunk first (min-pooling keeps one-pixel lines dark) and boxes are mapped back. Panels come in
reading order: rows top to bottom, left to right within a row.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from thinkimg.tools.boxes import Box, area, intersection, iou
from thinkimg.tools.segment import as_rgb_array, background_color


#: Images whose long side exceeds this are shrunk (by an integer factor) before detection.
MAX_SIDE = 1600
#: A pixel is "dark" (a candidate axis-line pixel) when its brightest channel is below this.
DARK_MAX = 150
#: A pixel is content ("ink") when some channel differs from the background colour by more than this.
INK_DIFF = 24
#: Dark runs thicker than this (perpendicular to the run) are filled shapes, not lines.
MAX_LINE_THICKNESS = 6


@dataclass(frozen=True)
class Panel:
    """One panel of a figure: ``box`` covers the panel's title, axes and labels; ``axes`` is the plotting area
    found from its axis lines (None for panels found by whitespace cuts). Boxes: ``(x0, y0, x1, y1)``, x1/y1
    exclusive, pixels of the input image."""

    box: Box
    axes: Box | None = None


# ----------------------------------------------------------------------------------------------------------------
# masks


def _pool(a: np.ndarray, k: int, op: str, fill: int) -> np.ndarray:
    """Shrink a 2-D array by an integer factor ``k`` taking the min or max of each k x k block."""
    h, w = a.shape
    ph, pw = -h % k, -w % k
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw)), constant_values=fill)
    f = np.minimum if op == "min" else np.maximum
    rows = a[0::k]
    for i in range(1, k):
        rows = f(rows, a[i::k])
    out = rows[:, 0::k]
    for i in range(1, k):
        out = f(out, rows[:, i::k])
    return out


def _channel_max(a: np.ndarray) -> np.ndarray:
    """Per-pixel maximum over the 3 channels (OpenCV: much faster than ``a.max(axis=2)``)."""
    r, g, b = cv2.split(a)
    return cv2.max(cv2.max(r, g), b)


def _masks(arr: np.ndarray, max_side: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(dark, ink, k): boolean masks of the image shrunk by factor ``k``."""
    bg = background_color(arr)
    value = _channel_max(arr)
    diff = _channel_max(cv2.absdiff(arr, np.array([*bg, 0], np.float64)))  # a per-channel scalar
    k = max(1, math.ceil(max(arr.shape[:2]) / max_side))
    if k > 1:
        value = _pool(value, k, "min", 255)
        diff = _pool(diff, k, "max", 0)
    return value < DARK_MAX, diff > INK_DIFF, k


# ----------------------------------------------------------------------------------------------------------------
# axis lines -> axes boxes


def _runs(mask: np.ndarray, min_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of True along each row of ``mask`` at least ``min_len`` long: (row, start, end exclusive)."""
    candidates = np.flatnonzero(np.count_nonzero(mask, axis=1) >= min_len)
    padded = np.zeros((len(candidates), mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask[candidates]
    d = np.diff(padded, axis=1)
    sr, sc = np.nonzero(d == 1)
    _, ec = np.nonzero(d == -1)
    keep = ec - sc >= min_len
    return candidates[sr[keep]], sc[keep], ec[keep]


def _line_segments(dark: np.ndarray, min_len: int, along_rows: bool) -> np.ndarray:
    """Thin dark line segments (row, start, end) along rows (horizontal) or, on the transposed mask, columns."""
    m = dark if along_rows else dark.T
    if not m.any():
        return np.zeros((0, 3), int)
    t = MAX_LINE_THICKNESS + 1
    # Pixels belonging to dark runs >= t long across the line direction are parts of filled shapes.
    thick = cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, np.ones((t, 1), np.uint8)).astype(bool)
    thin = m & ~thick
    rows, starts, ends = _runs(m, min_len)
    if len(rows) == 0:
        return np.zeros((0, 3), int)
    csum = np.zeros((m.shape[0], m.shape[1] + 1), np.int32)
    np.cumsum(thin, axis=1, out=csum[:, 1:])
    thin_count = csum[rows, ends] - csum[rows, starts]
    # A spine partly covered by dark bars standing on it is still a line; a bar's own rows have no thin pixels.
    keep = thin_count >= 0.2 * (ends - starts)
    seg = np.stack([rows[keep], starts[keep], ends[keep]], axis=1)
    if len(seg) > 400:  # pathological images (dense hatching): keep the longest
        seg = seg[np.argsort(seg[:, 1] - seg[:, 2])[:400]]
    return seg


def _pair_corners(hseg: np.ndarray, vseg: np.ndarray, tol: int, min_w: int, min_h: int) -> list[Box]:
    """Axes boxes where a vertical segment's bottom (else top) end meets the left end of a horizontal segment."""
    if len(hseg) == 0 or len(vseg) == 0:
        return []
    hy, hx0, hx1 = hseg[:, 0][None, :], hseg[:, 1][None, :], hseg[:, 2][None, :]
    vx, vy0, vy1 = vseg[:, 0][:, None], vseg[:, 1][:, None], vseg[:, 2][:, None] - 1
    near_x = np.abs(hx0 - vx) <= tol
    wide = (hx1 - np.minimum(hx0, vx)) >= min_w
    bottom = near_x & wide & (np.abs(hy - vy1) <= tol)
    top = near_x & wide & (np.abs(hy - vy0) <= tol)
    lengths = np.broadcast_to(hx1 - hx0, bottom.shape)
    boxes: list[Box] = []
    for i in range(len(vseg)):
        x, y0, y1 = int(vseg[i, 0]), int(vseg[i, 1]), int(vseg[i, 2])
        if y1 - y0 < min_h:
            continue
        for cand, is_bottom in ((bottom[i], True), (top[i], False)):
            if cand.any():
                j = int(np.argmax(np.where(cand, lengths[i], -1)))
                hrow, hs, he = (int(v) for v in hseg[j])
                if is_bottom:
                    boxes.append((min(x, hs), y0, he, max(hrow + 1, y1)))
                else:
                    boxes.append((min(x, hs), min(hrow, y0), he, y1))
                break
    return boxes


def _select_axes(cands: list[Box], tol: int) -> list[Box]:
    """Drop duplicates, rectangles inside other axes (bar outlines, legends, insets), slivers and specks; keep the
    axes inside a frame that surrounds several of them."""
    cands = sorted(set(cands), key=area, reverse=True)
    inside = {c: [d for d in cands if d != c and intersection(c, d) >= 0.9 * area(d)] for c in cands}

    def is_frame(c: Box) -> bool:
        w, h = c[2] - c[0], c[3] - c[1]
        big = [d for d in inside[c] if d[2] - d[0] >= 0.25 * w and d[3] - d[1] >= 0.25 * h
               and d[0] - c[0] > tol and c[3] - d[3] > tol]
        return any(intersection(a, b) == 0 for i, a in enumerate(big) for b in big[i + 1:])

    kept: list[Box] = []
    for c in cands:
        if is_frame(c):
            continue
        if any(iou(c, k) > 0.7 or intersection(c, k) >= 0.9 * area(c) for k in kept):
            continue
        kept.append(c)
    if not kept:
        return []
    largest = max(area(b) for b in kept)
    out = []
    for b in kept:
        w, h = b[2] - b[0], b[3] - b[1]
        if area(b) < 0.08 * largest or max(w, h) > 8 * min(w, h):  # legends, colour bars
            continue
        out.append(b)
    return out


def detect_axes_lines(dark: np.ndarray) -> list[Box]:
    """Axes rectangles (boxes of the spines) in a dark-pixel mask."""
    h, w = dark.shape
    min_w, min_h = max(20, int(0.05 * w)), max(20, int(0.05 * h))
    hseg = _line_segments(dark, min_w, along_rows=True)
    vseg = _line_segments(dark, min_h, along_rows=False)
    tol = max(3, round(0.015 * min(h, w)))
    return _select_axes(_pair_corners(hseg, vseg, tol, min_w, min_h), tol)


# ----------------------------------------------------------------------------------------------------------------
# axes -> panel cells -> trimmed panels


def _blank_split(profile: np.ndarray, lo: int, hi: int, *, favour_first: bool = False) -> int:
    """Where to split the interval [lo, hi) between two axes: the middle of its widest blank band (else the middle).

    ``favour_first`` doubles the weight of a band that starts at (or within 3 px of) ``lo``: between axes side by
    side, the labels in the gap are usually the right-hand axes' tick labels, so a blank band right after the left
    axes is the border.
    """
    if hi - lo <= 1:
        return (lo + hi) // 2
    seg = profile[lo:hi]
    padded = np.concatenate([[True], seg, [True]]).astype(np.int8)
    d = np.diff(padded)
    starts, ends = np.nonzero(d == -1)[0], np.nonzero(d == 1)[0]
    if len(starts) == 0:
        return (lo + hi) // 2
    first = np.arange(len(starts)) == 0
    weight = (ends - starts) * np.where(first & (starts <= 3) & favour_first, 2, 1)
    i = int(np.argmax(weight))
    return lo + (int(starts[i]) + int(ends[i])) // 2


def _cells(axes: list[Box], ink: np.ndarray) -> list[Box]:
    """Each axes box grown to its cell: up to the widest blank band towards each neighbouring axes, else the edge."""
    h, w = ink.shape
    cells = []
    for i, a in enumerate(axes):
        x0, y0, x1, y1 = 0, 0, w, h
        for j, b in enumerate(axes):
            if i == j:
                continue
            if min(a[3], b[3]) > max(a[1], b[1]):  # side by side
                rows = slice(min(a[1], b[1]), max(a[3], b[3]))
                if b[2] <= a[0] + 2:
                    lo, hi = min(b[2], a[0]), max(b[2], a[0])
                    x0 = max(x0, _blank_split(ink[rows, :].any(axis=0), lo, hi, favour_first=True))
                elif b[0] >= a[2] - 2:
                    lo, hi = min(a[2], b[0]), max(a[2], b[0])
                    x1 = min(x1, _blank_split(ink[rows, :].any(axis=0), lo, hi, favour_first=True))
            if min(a[2], b[2]) > max(a[0], b[0]):  # one above the other
                cols = slice(min(a[0], b[0]), max(a[2], b[2]))
                if b[3] <= a[1] + 2:
                    lo, hi = min(b[3], a[1]), max(b[3], a[1])
                    y0 = max(y0, _blank_split(ink[:, cols].any(axis=1), lo, hi))
                elif b[1] >= a[3] - 2:
                    lo, hi = min(a[3], b[1]), max(a[3], b[1])
                    y1 = min(y1, _blank_split(ink[:, cols].any(axis=1), lo, hi))
        cells.append((x0, y0, x1, y1))
    return cells


def _drop_shared(ink: np.ndarray, cells: list[Box], axes: list[Box]) -> np.ndarray:
    """``ink`` without the content outside every axes that straddles a border between cells: a figure title,
    a shared axis label or legend, a frame around the figure belongs to no single panel."""
    h, w = ink.shape
    vertical = [(c[0], c[1], c[3]) for c in cells if c[0] > 0] + [(c[2], c[1], c[3]) for c in cells if c[2] < w]
    horizontal = [(c[1], c[0], c[2]) for c in cells if c[1] > 0] + [(c[3], c[0], c[2]) for c in cells if c[3] < h]
    if not vertical and not horizontal:
        return ink
    kx = max(3, round(0.015 * w))
    # First lines of text (letters and words joined), then single strokes: a frame along the figure's edge, which
    # the joining may have tied to the tick labels near it.
    for kernel in (np.ones((1, kx), np.uint8), None):
        joined = ink.astype(np.uint8) if kernel is None else cv2.dilate(ink.astype(np.uint8), kernel)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
        # Components reaching into some axes (plots, spines, ticks): outside it they show on its border.
        attached = np.zeros(n, bool)
        for a in axes:
            x0, y0, x1, y1 = a
            for edge in (labels[y0, x0:x1], labels[y1 - 1, x0:x1], labels[y0:y1, x0], labels[y0:y1, x1 - 1]):
                attached[edge] = True
        shared = np.zeros(n, bool)
        for i in range(1, n):
            if attached[i]:
                continue
            x, y, bw, bh = (int(v) for v in stats[i, :4])
            box = (x, y, x + bw, y + bh)
            shared[i] = any(box[0] < bx - 1 and box[2] > bx + 1 and box[1] < by1 and box[3] > by0
                            for bx, by0, by1 in vertical) or any(
                box[1] < by - 1 and box[3] > by + 1 and box[0] < bx1 and box[2] > bx0 for by, bx0, bx1 in horizontal)
        if shared.any():
            ink = ink & ~shared[labels]
    return ink


def _grow(profile: np.ndarray, start: int, stop: int, gap: int) -> int:
    """From index ``start`` walk towards ``stop`` (exclusive) through ``profile`` (True = ink); return the last
    ink index reached before a blank band of ``gap`` or more (``start`` if none)."""
    step = 1 if stop > start else -1
    last, blank = start, 0
    for i in range(start, stop, step):
        if profile[i]:
            last, blank = i, 0
        else:
            blank += 1
            if blank >= gap:
                break
    return last


def _trim(cell: Box, core: Box, ink: np.ndarray, gap: int) -> Box:
    """Shrink ``cell`` to the content hanging together with ``core`` (the axes), bridging blank bands < ``gap``."""
    cx0, cy0, cx1, cy1 = cell
    x0, y0, x1, y1 = (max(cx0, core[0]), max(cy0, core[1]), min(cx1, core[2]), min(cy1, core[3]))
    for _ in range(2):
        rows = ink[:, x0:x1].any(axis=1)
        ny0 = _grow(rows, y0, cy0 - 1, gap)
        ny1 = _grow(rows, y1 - 1, cy1, gap) + 1
        cols = ink[ny0:ny1, :].any(axis=0)
        nx0 = _grow(cols, x0, cx0 - 1, gap)
        nx1 = _grow(cols, x1 - 1, cx1, gap) + 1
        if (nx0, ny0, nx1, ny1) == (x0, y0, x1, y1):
            break
        x0, y0, x1, y1 = nx0, ny0, nx1, ny1
    return x0, y0, x1, y1


# ----------------------------------------------------------------------------------------------------------------
# whitespace cuts (figures without axis lines)


def _bands(profile: np.ndarray, min_gap: int) -> list[tuple[int, int]]:
    """Blank runs (start, end) of at least ``min_gap`` strictly inside ``profile`` (which starts and ends with ink)."""
    padded = np.concatenate([[True], profile, [True]]).astype(np.int8)
    d = np.diff(padded)
    starts, ends = np.nonzero(d == -1)[0], np.nonzero(d == 1)[0]
    return [(int(s), int(e)) for s, e in zip(starts, ends) if e - s >= min_gap and s > 0 and e < len(profile)]


def _xy_cut(ink: np.ndarray, box: Box, min_gap: int, depth: int = 0) -> list[Box]:
    """Recursive whitespace cuts: leaves are content boxes with no blank row/column band of ``min_gap`` inside."""
    x0, y0, x1, y1 = box
    sub = ink[y0:y1, x0:x1]
    rows, cols = sub.any(axis=1), sub.any(axis=0)
    if not rows.any():
        return []
    r, c = np.flatnonzero(rows), np.flatnonzero(cols)
    x0, y0, x1, y1 = x0 + int(c[0]), y0 + int(r[0]), x0 + int(c[-1]) + 1, y0 + int(r[-1]) + 1
    if depth >= 12:
        return [(x0, y0, x1, y1)]
    rows, cols = rows[r[0]:r[-1] + 1], cols[c[0]:c[-1] + 1]
    rb, cb = _bands(rows, min_gap), _bands(cols, min_gap)
    best = max([(e - s, "r", s, e) for s, e in rb] + [(e - s, "c", s, e) for s, e in cb], default=None)
    if best is None:
        return [(x0, y0, x1, y1)]
    _, axis, s, e = best
    if axis == "r":
        parts = [(x0, y0, x1, y0 + s), (x0, y0 + e, x1, y1)]
    else:
        parts = [(x0, y0, x0 + s, y1), (x0 + e, y0, x1, y1)]
    return [leaf for p in parts for leaf in _xy_cut(ink, p, min_gap, depth + 1)]


def _box_gap(a: Box, b: Box) -> float:
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(dx, dy)


def _union(a: Box, b: Box) -> Box:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _is_bar(ink: np.ndarray, b: Box, vertical: bool) -> bool:
    """True when piece ``b`` looks like a bar: at least 35 % of its rows (vertical bars; columns for horizontal
    ones) are solid across the piece (a circle's are not: only 24 % of its rows cover 97 % of its width)."""
    x0, y0, x1, y1 = b
    sub = ink[y0:y1, x0:x1]
    cover = sub.mean(axis=1) if vertical else sub.mean(axis=0)
    return float((cover >= 0.97).mean()) >= 0.35


def _join_aligned(ink: np.ndarray, leaves: list[Box], min_size: int) -> list[Box]:
    """Join runs of bars standing on one baseline (a bar chart without axis lines: same bottom edge; or, for
    horizontal bars, same left edge) into one piece; a run breaks where the gap is much wider than usual."""
    for edge, start, end in ((3, 0, 2), (0, 1, 3)):  # bottom edge / along x;  left edge / along y
        size = 3 - start  # index of the extent across the baseline: height (y1) for bars standing on a bottom edge
        tall = [b for b in leaves if b[size] - b[size - 2] >= min_size and _is_bar(ink, b, vertical=edge == 3)]
        groups: dict[int, list[Box]] = {}
        for b in tall:
            key = next((k for k in groups if abs(k - b[edge]) <= 1), b[edge])
            groups.setdefault(key, []).append(b)
        for members in groups.values():
            if len(members) < 2:
                continue
            members.sort(key=lambda b: b[start])
            gaps = [b[start] - a[end] for a, b in itertools.pairwise(members)]
            limit = 1.8 * max(1, min(gaps))
            run = [members[0]]
            for gap, b in zip(gaps, members[1:]):
                if gap <= limit:
                    run.append(b)
                    continue
                leaves = _replace(leaves, run)
                run = [b]
            leaves = _replace(leaves, run)
    return leaves


def _replace(leaves: list[Box], run: list[Box]) -> list[Box]:
    """``leaves`` with the pieces of ``run`` (2 or more) replaced by their union."""
    if len(run) < 2:
        return leaves
    joined = run[0]
    for b in run[1:]:
        joined = _union(joined, b)
    return [b for b in leaves if b not in run] + [joined]


def _merge_overlapping(boxes: list[Box]) -> list[Box]:
    """Union boxes that overlap by more than a tenth of the smaller one, until none do."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if intersection(a, b) > 0.1 * min(area(a), area(b)):
                    boxes[i] = _union(a, b)
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def _whitespace_panels(ink: np.ndarray, region: Box | None = None, *, min_fraction: float = 0.4) -> list[Box]:
    """Panels by XY-cut: pieces of at least ``min_fraction`` of the largest piece's area, of a sensible size and
    shape, with graphics in them (not a block of text) are panels; every other piece joins the nearest panel."""
    h, w = ink.shape
    region = region or (0, 0, w, h)
    min_gap = max(4, round(0.012 * min(h, w)))
    leaves = _xy_cut(ink, region, min_gap)
    if not leaves:
        return []
    leaves = _join_aligned(ink, leaves, max(8, int(0.04 * min(h, w))))
    solid = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))

    def graphic(b: Box) -> bool:  # text is thin strokes; bars, wedges, areas and markers are solid
        return float(solid[b[1]:b[3], b[0]:b[2]].mean()) >= 0.05

    largest = max(area(b) for b in leaves)
    big = [b for b in leaves if area(b) >= min_fraction * largest
           and b[2] - b[0] >= 0.08 * w and b[3] - b[1] >= 0.08 * h
           and max(b[2] - b[0], b[3] - b[1]) <= 4 * min(b[2] - b[0], b[3] - b[1])  # not a strip (one bar row)
           and graphic(b)]
    if not big:
        big = [max(leaves, key=area)]
    panels = list(big)
    small = [b for b in leaves if b not in big]

    def cost(b: Box, p: Box) -> float:
        # Titles sit above their panel: a piece above a panel counts as nearer to it than to one above the piece.
        return _box_gap(b, p) * (0.6 if p[1] >= b[3] else 1.0)

    while small:  # the nearest piece joins first, so labels chain onto the panel they hang together with
        _, i, j = min((cost(b, p), i, j) for i, b in enumerate(small) for j, p in enumerate(panels))
        panels[j] = _union(panels[j], small.pop(i))
    return _merge_overlapping(panels)


# ----------------------------------------------------------------------------------------------------------------
# public API


def reading_order(boxes: list[Box]) -> list[int]:
    """Indices of ``boxes`` in reading order: rows (boxes overlapping vertically by half) top to bottom, then x."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][1], boxes[i][0]))
    rows: list[list[int]] = []
    for i in order:
        b = boxes[i]
        for row in rows:
            r = boxes[row[0]]
            overlap = min(b[3], r[3]) - max(b[1], r[1])
            if overlap >= 0.5 * min(b[3] - b[1], r[3] - r[1]):
                row.append(i)
                break
        else:
            rows.append([i])
    rows.sort(key=lambda row: min(boxes[i][1] for i in row))
    return [i for row in rows for i in sorted(row, key=lambda i: boxes[i][0])]


def detect_panels(image: Image.Image | np.ndarray, *, max_side: int = MAX_SIDE) -> list[Panel]:
    """The panels of a figure in reading order (one panel for a single chart; [] for a blank image)."""
    arr = as_rgb_array(image)
    H, W = arr.shape[:2]
    dark, ink, k = _masks(arr, max_side)
    h, w = ink.shape
    gap = max(10, round(0.025 * min(h, w)))
    axes = detect_axes_lines(dark)
    found: list[tuple[Box, Box | None]] = []
    if axes:
        cells = _cells(axes, ink)
        ink = _drop_shared(ink, cells, axes)
        for cell, a in zip(cells, axes):
            found.append((_trim(cell, a, ink, gap), a))
        # Content left outside every panel (e.g. a pie beside a bar chart) may be a panel of its own.
        rest = ink.copy()
        for box, _ in found:
            rest[box[1]:box[3], box[0]:box[2]] = False
        if rest.any():
            ref_area = float(np.median([area(b) for b, _ in found]))
            ref_w = float(np.median([b[2] - b[0] for b, _ in found]))
            ref_h = float(np.median([b[3] - b[1] for b, _ in found]))
            for b in _whitespace_panels(rest):
                if (area(b) >= 0.35 * ref_area and b[2] - b[0] >= 0.3 * ref_w and b[3] - b[1] >= 0.3 * ref_h
                        and not any(intersection(b, f) > 0.2 * area(b) for f, _ in found)):
                    found.append((b, None))
    else:
        found = [(b, None) for b in _whitespace_panels(ink)]

    if len(found) == 1:  # a single chart: its title, notes and source belong to it too
        rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
        whole = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        found = [(_union(whole, found[0][0]), found[0][1])]

    def back(b: Box) -> Box:
        return (min(W, b[0] * k), min(H, b[1] * k), min(W, b[2] * k), min(H, b[3] * k))

    panels = [Panel(box=back(b), axes=back(a) if a is not None else None) for b, a in found]
    return [panels[i] for i in reading_order([p.box for p in panels])]
