"""Crop, ZoomInSubfigure and SegmentRegionAroundPoint: tools that return a region of the image.

Crop and ZoomInSubfigure upscale small regions (LANCZOS) so that their short side reaches
``crop.min_short_side`` pixels, by at most ``crop.max_upscale`` (never down); ``data["scale"]`` and
``data["box"]`` map a point ``(u, v)`` of the output back to ``(box[0] + u / scale, box[1] + v / scale)``.
"""

from __future__ import annotations

import difflib
import math
import re

import cv2
import numpy as np
from PIL import Image
from pydantic import Field

from thinkimg.tools.base import Tool, ToolArgs, ToolError, ToolResult, check_box, check_coordinate
from thinkimg.tools.boxes import Box
from thinkimg.tools.layout import Panel, detect_panels
from thinkimg.tools.registry import register_tool
from thinkimg.tools.segment import Region, as_rgb_array, background_color, region_around, solid_map

# ----------------------------------------------------------------------------------------------------------------
# Crop


def upscale_region(image: Image.Image, box: Box, *, min_short_side: int, max_upscale: float,
                   max_pixels: int) -> tuple[Image.Image, float]:
    """Crop ``box`` and upscale it by ``s = clamp(min_short_side / short side, 1, max_upscale)`` (LANCZOS), with
    the output held to ``max_pixels``; returns the image and ``s`` (1.0: the exact pixels, not resampled)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    crop = image.crop(box)
    s = min(max(min_short_side / min(w, h), 1.0), max_upscale)
    if w * h * s * s > max_pixels:
        s = max(1.0, math.sqrt(max_pixels / (w * h)))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if size == (w, h):
        return crop, 1.0
    return crop.resize(size, Image.Resampling.LANCZOS), s


def _mapping_text(image_id: str, box: Box, scale: float) -> str:
    if scale == 1.0:
        return f"A point (u, v) here is ({box[0]} + u, {box[1]} + v) in {image_id}."
    return f"A point (u, v) here is ({box[0]} + u / {scale:.4g}, {box[1]} + v / {scale:.4g}) in {image_id}."


class CropArgs(ToolArgs):
    box: list[float] = Field(
        description="Region to crop, [x1, y1, x2, y2] in pixels of the image (x2, y2 exclusive; 0 <= x1 < x2 <= "
        "width, 0 <= y1 < y2 <= height)."
    )


@register_tool
class Crop(Tool):
    """Crop a pixel box and upscale it for a closer look."""

    name = "Crop"
    description = (
        "Crop the box [x1, y1, x2, y2] (pixels) out of the image and return it as a new image, upscaled with "
        "LANCZOS so its short side is at least 448 pixels (by default; by at most 4x; large boxes keep their "
        "pixels). "
        "The text gives the scale s: a point (u, v) of the crop is (x1 + u/s, y1 + v/s) in the original."
    )
    Args = CropArgs
    returns_image = True

    def run(self, image: Image.Image, args: CropArgs) -> ToolResult:
        box = check_box("box", args.box, image.width, image.height)
        cfg = self.context.config
        out, scale = upscale_region(image, box, min_short_side=cfg.crop.min_short_side,
                                    max_upscale=cfg.crop.max_upscale, max_pixels=cfg.limits.max_image_pixels)
        w, h = box[2] - box[0], box[3] - box[1]
        zoom = f"upscaled x{scale:.4g} to {out.width}x{out.height}" if scale != 1.0 else "at its original size"
        return ToolResult(
            text=f"Cropped {list(box)} ({w}x{h} px) from {args.image}, {zoom}. {_mapping_text(args.image, box, scale)}",
            images=[out],
            data={"box": list(box), "scale": round(scale, 6), "size": [out.width, out.height]},
        )


# ----------------------------------------------------------------------------------------------------------------
# ZoomInSubfigure

_STOP = {
    "the", "a", "an", "of", "in", "on", "at", "for", "to", "and", "with", "about", "showing", "shows", "show",
    "that", "which", "is", "its", "it", "this", "titled", "title", "entitled", "called", "named", "labeled",
    "labelled", "panel", "panels", "subplot", "subplots", "subfigure", "sub", "figure", "fig", "plot", "chart",
    "graph", "diagram", "one", "part", "zoom", "into", "please", "region", "section", "area", "image", "by", "vs",
}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7, "8th": 8,
    "9th": 9, "10th": 10, "last": -1,
}
_PANEL_NOUNS = {"panel", "subplot", "subfigure", "plot", "chart", "graph", "figure", "one", "diagram", "pie"}
_VERTICAL = {"top": "top", "upper": "top", "bottom": "bottom", "lower": "bottom"}
_HORIZONTAL = {"left": "left", "right": "right"}
_MIDDLE = {"middle", "center", "centre", "central"}
#: Pixels added around a detected panel before it is cropped.
PANEL_MARGIN = 4
#: Weight of a satisfied position ("top left", "panel 2", "(b)") against text (a title match scores up to 3).
POSITION_WEIGHT = 1.5


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:\.[0-9]+)?%?", text.lower().replace("-", " "))


def _grid(boxes: list[Box]) -> list[tuple[int, int]]:
    """(row, column) of each box: rows and columns are groups of boxes overlapping by half along y / x."""

    def groups(lo: int, hi: int) -> list[int]:
        order = sorted(range(len(boxes)), key=lambda i: boxes[i][lo])
        index = [0] * len(boxes)
        spans: list[tuple[int, int]] = []
        for i in order:
            b0, b1 = boxes[i][lo], boxes[i][hi]
            for g, (s0, s1) in enumerate(spans):
                if min(b1, s1) - max(b0, s0) >= 0.5 * min(b1 - b0, s1 - s0):
                    index[i] = g
                    spans[g] = (min(s0, b0), max(s1, b1))
                    break
            else:
                index[i] = len(spans)
                spans.append((b0, b1))
        return index

    return list(zip(groups(1, 3), groups(0, 2)))


def _position_name(row: int, col: int, n_rows: int, n_cols: int) -> str:
    def name(i: int, n: int, first: str, last: str) -> str:
        if n == 1:
            return ""
        if i == 0:
            return first
        if i == n - 1:
            return last
        return "middle" if n == 3 else f"{'row' if first == 'top' else 'column'} {i + 1}"

    parts = [p for p in (name(row, n_rows, "top", "bottom"), name(col, n_cols, "left", "right")) if p]
    return " ".join(parts) or "only"


def _position_constraint(desc: str, tokens: list[str]) -> tuple[dict, set[str]]:
    """What the description says about position: {"index": i} (0-based; -1 = last), {"row": r, "col": c} with
    "top"/"bottom"/"middle"/"left"/"right" or 0-based numbers; and the tokens used for that."""
    used: set[str] = set()
    cons: dict = {}
    letter = re.search(r"\(([a-h])\)|(?:^|\s)([a-h])\)|\b(?:panel|subplot|subfigure|sub figure|fig\.?|figure)\s*"
                       r"\d*\s*\(?([a-h])\)?(?![a-z])", desc.lower())
    if letter:
        ch = next(g for g in letter.groups() if g)
        cons["index"] = ord(ch) - ord("a")
        used.add(ch)
    number = re.search(r"\b(?:panel|subplot|subfigure|plot|chart|graph|no\.?|number|#)\s*#?\s*(\d{1,2})\b",
                       desc.lower())
    if number and "index" not in cons:
        cons["index"] = int(number.group(1)) - 1
        used.add(number.group(1))
    for i, tok in enumerate(tokens):
        if tok in _ORDINALS:
            nxt = tokens[i + 1:i + 3]
            if any(t in ("row",) for t in nxt):
                cons["row"] = _ORDINALS[tok] - 1 if _ORDINALS[tok] > 0 else "bottom"
            elif any(t in ("column", "col") for t in nxt):
                cons["col"] = _ORDINALS[tok] - 1 if _ORDINALS[tok] > 0 else "right"
            elif any(t in _PANEL_NOUNS for t in nxt) or len(tokens) <= 2:
                cons.setdefault("index", _ORDINALS[tok] - 1 if _ORDINALS[tok] > 0 else -1)
            else:
                continue
            used.add(tok)
        elif tok in _VERTICAL:
            cons.setdefault("row", _VERTICAL[tok])
            used.add(tok)
        elif tok in _HORIZONTAL:
            cons.setdefault("col", _HORIZONTAL[tok])
            used.add(tok)
        elif tok in _MIDDLE:
            used.add(tok)
            cons.setdefault("middle", True)
    used |= {"row", "column", "col", "hand", "side", "corner"} & set(tokens)
    return cons, used


def _satisfies(cons: dict, index: int, row: int, col: int, n: int, n_rows: int, n_cols: int) -> bool:
    if "index" in cons and cons["index"] not in (index, index - n):
        return False

    def ok(want, have: int, count: int) -> bool:
        if want in ("top", "left"):
            return have == 0
        if want in ("bottom", "right"):
            return have == count - 1
        return have == want

    if "row" in cons and not ok(cons["row"], row, n_rows):
        return False
    if "col" in cons and not ok(cons["col"], col, n_cols):
        return False
    if cons.get("middle"):
        mid_row = n_rows % 2 == 1 and row == n_rows // 2
        mid_col = n_cols % 2 == 1 and col == n_cols // 2
        if "row" in cons and "col" not in cons:
            return mid_col
        if "col" in cons and "row" not in cons:
            return mid_row
        if "row" not in cons and "col" not in cons:
            return (mid_row or n_rows == 1) and (mid_col or n_cols == 1)
    return True


def _word_match(a: str, b: str) -> bool:
    if a == b:
        return True
    if len(a) < 4 or len(b) < 4 or a[0].isdigit() or b[0].isdigit():
        return False
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def _f1(query: list[str], text: list[str]) -> float:
    """Token F1 between the description's words and a text line's (fuzzy: OCR misreads a letter now and then)."""
    if not query or not text:
        return 0.0
    hit_q = sum(any(_word_match(q, t) for t in text) for q in query)
    hit_t = sum(any(_word_match(t, q) for q in query) for t in text)
    p, r = hit_q / len(query), hit_t / len(text)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def _panel_texts(panels: list[Panel], lines: list) -> tuple[list[str | None], list[list]]:
    """Each panel's OCR lines (by line centre) and its title: the topmost line above its axes (else topmost)."""
    members: list[list] = [[] for _ in panels]
    for ln in lines:
        cx, cy = ln.center
        for i, p in enumerate(panels):
            x0, y0, x1, y1 = p.box
            if x0 <= cx < x1 and y0 <= cy < y1:
                members[i].append(ln)
                break
    titles: list[str | None] = []
    for p, mem in zip(panels, members):
        above = [ln for ln in mem if p.axes is not None and ln.box[3] <= p.axes[1] + 2 and _tokens(ln.text)]
        pool = above or [ln for ln in mem if _tokens(ln.text)]
        titles.append(min(pool, key=lambda ln: (ln.box[1], ln.box[0])).text.strip() if pool else None)
    return titles, members


class ZoomArgs(ToolArgs):
    description: str = Field(
        min_length=1,
        max_length=500,
        description="Which panel: its title or a label in it (e.g. 'Revenue'), or its place ('top left', "
        "'second', 'panel 3', '(b)', 'right').",
    )


@register_tool
class ZoomInSubfigure(Tool):
    """Find the panel a description names in a multi-panel figure and return it, upscaled."""

    name = "ZoomInSubfigure"
    description = (
        "Zoom into one panel (subplot) of a multi-panel figure, named by its title or a label in it (e.g. "
        "'Revenue') or by its place ('top left', 'second', 'panel 3', '(b)'). Returns the panel, with its title "
        "and tick labels, as a new image upscaled with LANCZOS so its short side is at least 448 pixels (by "
        "default; by at most 4x); a point (u, v) of it is (x1 + u/s, y1 + v/s) in the original, with the box and "
        "s given."
    )
    Args = ZoomArgs
    returns_image = True

    def run(self, image: Image.Image, args: ZoomArgs) -> ToolResult:
        desc = args.description.strip()
        if not desc:
            raise ToolError("argument 'description' is empty: name the panel by its title or place",
                            argument="description")
        panels = detect_panels(image)
        if not panels:
            raise ToolError(f"found no panels in {args.image}: the image looks blank", argument="image")
        boxes = [p.box for p in panels]
        grid = _grid(boxes)
        n, n_rows, n_cols = len(panels), max(r for r, _ in grid) + 1, max(c for _, c in grid) + 1
        tokens = _tokens(desc)
        cons, used = _position_constraint(desc, tokens)
        words = [t for t in tokens if t not in _STOP]
        content = [t for t in words if t not in used]

        titles: list[str | None] = [None] * n
        scores = [0.0] * n
        note = ""
        if n == 1:
            best = 0
            note = " (the image has a single panel)"
        else:
            if content:
                try:
                    lines = self.context.ocr(image)
                except (ImportError, OSError, RuntimeError) as exc:
                    raise ToolError(
                        f"cannot read panel titles ({exc}); describe the panel by its place instead "
                        "(e.g. 'top left', 'panel 2')", argument="description", status=503) from None
                titles, members = _panel_texts(panels, lines)
                for i in range(n):
                    title_tokens = _tokens(titles[i] or "")
                    title_f1 = max(_f1(words, title_tokens), _f1(content, title_tokens))
                    line_f1 = max((max(_f1(words, _tokens(ln.text)), _f1(content, _tokens(ln.text)))
                                   for ln in members[i]), default=0.0)
                    bag = {t for ln in members[i] for t in _tokens(ln.text)}
                    recall = sum(any(_word_match(q, t) for t in bag) for q in content) / len(content)
                    scores[i] = 2 * title_f1 + 0.5 * line_f1 + 0.5 * recall
            if cons:
                for i, (r, c) in enumerate(grid):
                    if _satisfies(cons, i, r, c, n, n_rows, n_cols):
                        scores[i] += POSITION_WEIGHT
            best = int(np.argmax(scores))
            tied = [i for i in range(n) if scores[i] >= scores[best] - 1e-6]
            if scores[best] < 0.75 or len(tied) > 1:
                listing = self._listing(titles, grid, n_rows, n_cols, image, panels)
                problem = (f"no panel matches description {desc!r}" if scores[best] < 0.75 else
                           f"description {desc!r} fits panels {', '.join(str(i + 1) for i in tied)} equally well")
                raise ToolError(f"{problem}; {listing}. Name one by its title or place (e.g. 'top left', 'panel 2').",
                                argument="description")

        x0, y0, x1, y1 = boxes[best]  # a small margin keeps glyphs that touch the detected edge whole
        box = (max(0, x0 - PANEL_MARGIN), max(0, y0 - PANEL_MARGIN),
               min(image.width, x1 + PANEL_MARGIN), min(image.height, y1 + PANEL_MARGIN))
        cfg = self.context.config
        out, scale = upscale_region(image, box, min_short_side=cfg.crop.min_short_side,
                                    max_upscale=cfg.crop.max_upscale, max_pixels=cfg.limits.max_image_pixels)
        row, col = grid[best]
        where = _position_name(row, col, n_rows, n_cols)
        title = titles[best]
        named = f" {title!r}" if title else ""
        zoom = f"upscaled x{scale:.4g} to {out.width}x{out.height}" if scale != 1.0 else "at its original size"
        text = (f"Panel {best + 1} of {n}{named} ({where}){note} at {list(box)} in {args.image}, {zoom}. "
                f"{_mapping_text(args.image, box, scale)}")
        return ToolResult(
            text=text,
            images=[out],
            data={"box": list(box), "scale": round(scale, 6), "size": [out.width, out.height], "panel_index": best,
                  "panels": [list(b) for b in boxes], "title": title},
        )

    def _listing(self, titles, grid, n_rows, n_cols, image, panels) -> str:
        """'the image has N panels: 1: 'Title' (top left); ...' (reads the titles when not read yet)."""
        if all(t is None for t in titles):
            try:
                titles, _ = _panel_texts(panels, self.context.ocr(image))
            except (ImportError, OSError, RuntimeError):
                pass
        listing = "; ".join(
            f"{i + 1}: {titles[i]!r} ({_position_name(r, c, n_rows, n_cols)})" if titles[i]
            else f"{i + 1}: untitled ({_position_name(r, c, n_rows, n_cols)})"
            for i, (r, c) in enumerate(grid)
        )
        return f"the image has {len(grid)} panels: {listing}"


# ----------------------------------------------------------------------------------------------------------------
# SegmentRegionAroundPoint

#: Overlay colours; the one farthest from the region's own colour is used.
OVERLAY_COLORS: dict[str, tuple[int, int, int]] = {
    "magenta": (230, 0, 230),
    "cyan": (0, 210, 230),
    "red": (230, 25, 45),
    "yellow": (250, 210, 0),
    "green": (0, 190, 60),
    "blue": (20, 60, 255),
}
FILL_ALPHA = 0.45
OUTLINE_PX = 2
#: Colour difference (max over channels) within which a region counts as the figure background.
BACKGROUND_TOL = 24


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _overlay(image: Image.Image, region: Region) -> tuple[Image.Image, str]:
    """A copy of ``image`` with the region filled semi-transparently and outlined (inside its edge)."""
    name, rgb = max(OVERLAY_COLORS.items(), key=lambda kv: sum((a - b) ** 2 for a, b in zip(kv[1], region.color)))
    out = np.array(image.convert("RGB"))
    x0, y0, x1, y1 = region.box
    m = region.mask[y0:y1, x0:x1]
    view = out[y0:y1, x0:x1]
    color = np.array(rgb, np.float32)
    view[m] = (view[m] * (1 - FILL_ALPHA) + color * FILL_ALPHA).round().astype(np.uint8)
    padded = np.pad(m.astype(np.uint8), OUTLINE_PX)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    inner = cv2.erode(padded, cross, iterations=OUTLINE_PX)[OUTLINE_PX:-OUTLINE_PX, OUTLINE_PX:-OUTLINE_PX].astype(bool)
    view[m & ~inner] = rgb
    return Image.fromarray(out), name


def _nearest_region(arr: np.ndarray, x: int, y: int, bg: tuple[int, int, int], radius: int = 80) -> Region | None:
    """The nearest solid, non-background region to (x, y) within ``radius`` (a hint for a missed point)."""
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = max(0, x - radius), max(0, y - radius), min(w, x + radius + 1), min(h, y + radius + 1)
    patch = np.ascontiguousarray(arr[y0:y1, x0:x1])
    solid = solid_map(patch, 12)
    not_bg = np.abs(patch.astype(np.int16) - np.array(bg, np.int16)).max(axis=2) > BACKGROUND_TOL
    ys, xs = np.nonzero(solid & not_bg)
    if len(ys) == 0:
        return None
    order = np.argsort((xs + x0 - x) ** 2 + (ys + y0 - y) ** 2)
    tried: list[Region] = []
    for i in order[:400:20]:
        px, py = int(xs[i] + x0), int(ys[i] + y0)
        if any(r.mask[py, px] for r in tried):
            continue
        region = region_around(arr, px, py, snap=False)
        if region.area >= 50:
            return region
        tried.append(region)
    return None


class SegmentArgs(ToolArgs):
    x: float = Field(description="Pixel column of the point (0 = left).")
    y: float = Field(description="Pixel row of the point (0 = top).")


@register_tool
class SegmentRegionAroundPoint(Tool):
    """Segment the flat-coloured region (bar, wedge, area, legend patch) under a point."""

    name = "SegmentRegionAroundPoint"
    description = (
        "Segment the region (a bar, pie wedge, area or legend patch: one connected colour) at pixel (x, y). A point "
        "on text or an edge snaps to the nearest coloured region. Returns a same-size copy of the image with the "
        "region filled and outlined, and its pixel box [x1, y1, x2, y2], area and colour, to measure a bar's top "
        "or compare sizes."
    )
    Args = SegmentArgs
    returns_image = True

    def run(self, image: Image.Image, args: SegmentArgs) -> ToolResult:
        x = check_coordinate("x", args.x, image.width, "x")
        y = check_coordinate("y", args.y, image.height, "y")
        arr = as_rgb_array(image)
        bg = background_color(arr)
        region = region_around(arr, x, y)
        h, w = arr.shape[:2]
        x0, y0, x1, y1 = region.box
        touches_border = x0 == 0 or y0 == 0 or x1 == w or y1 == h
        like_bg = max(abs(a - b) for a, b in zip(region.color, bg)) <= BACKGROUND_TOL
        covers = region.area / (w * h)
        if (like_bg and (touches_border or covers > 0.01)) or (touches_border and covers > 0.5):
            hint = ""
            near = _nearest_region(arr, x, y, bg)
            if near is not None:
                cx, cy = near.seed
                hint = (f" The nearest coloured region is at ({cx}, {cy}): box {list(near.box)}, colour "
                        f"{_hex(near.color)}.")
            raise ToolError(
                f"the point ({x}, {y}) is on the background (colour {_hex(region.color)}, a region covering "
                f"{100 * region.area / (w * h):.0f}% of the image); point at a bar, wedge or other coloured shape."
                + hint,
                argument="x",
            )
        out, overlay = _overlay(image, region)
        snapped = f", snapped to ({region.seed[0]}, {region.seed[1]})" if region.seed != (x, y) else ""
        bw, bh = x1 - x0, y1 - y0
        text = (f"Region at ({x}, {y}){snapped}: box [{x0}, {y0}, {x1}, {y1}] ({bw}x{bh} px; x2, y2 exclusive), "
                f"area {region.area} px, colour {_hex(region.color)} RGB{region.color}. "
                f"Drawn in {overlay} on a same-size copy of {args.image}.")
        return ToolResult(
            text=text,
            images=[out],
            data={"box": list(region.box), "area": region.area, "color": list(region.color),
                  "seed": list(region.seed), "center": list(region.center)},
        )
