"""Chart rendering with ground truth: matplotlib (headless) charts plus the pixel boxes of what they show.

Every box is in the pixel coordinates of the saved PNG (origin top-left, x1/y1 exclusive), measured from the
renderer itself, so tests and the data engine know exactly where each bar, label and panel is.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
from PIL import Image  # noqa: E402

from thinkimg.tools.boxes import Box  # noqa: E402


@dataclass
class RenderedChart:
    """A rendered chart: the RGB image, its data table and the pixel boxes of its elements."""

    image: Image.Image
    table: dict[str, float]
    #: element kind -> {label: box}; kinds: bars, xticks, yticks, values, title, xlabel, ylabel, legend, panels, axes
    boxes: dict[str, dict[str, Box]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _bbox_to_pixels(bbox, height: int) -> Box:
    """A matplotlib display-space bbox (origin bottom-left) -> PNG pixel box (origin top-left)."""
    x0, y0, x1, y1 = bbox.x0, bbox.y0, bbox.x1, bbox.y1
    return (int(round(x0)), int(round(height - y1)), int(round(x1)), int(round(height - y0)))


def _save(fig) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def _draw_bars(ax, fig, table: dict[str, float], *, horizontal: bool, color, value_labels: bool,
               rotate_ticks: int, title: str | None, xlabel: str | None, ylabel: str | None) -> dict:
    cats, vals = list(table), list(table.values())
    bars = ax.barh(cats, vals, color=color) if horizontal else ax.bar(cats, vals, color=color)
    texts = ax.bar_label(bars, fmt="%g", padding=2) if value_labels else []
    if rotate_ticks:
        for lab in ax.get_xticklabels():
            lab.set_rotation(rotate_ticks)
            lab.set_ha("right")
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return {"bars": bars, "values": texts, "cats": cats}


def _collect(fig, ax, drawn: dict, height: int, *, horizontal: bool) -> dict[str, dict[str, Box]]:
    renderer = fig.canvas.get_renderer()
    boxes: dict[str, dict[str, Box]] = {"bars": {}, "values": {}, "xticks": {}, "yticks": {}}
    for cat, patch in zip(drawn["cats"], drawn["bars"]):
        boxes["bars"][cat] = _bbox_to_pixels(patch.get_window_extent(renderer), height)
    for cat, txt in zip(drawn["cats"], drawn["values"]):
        boxes["values"][cat] = _bbox_to_pixels(txt.get_window_extent(renderer), height)
    for kind, axis in (("xticks", ax.xaxis), ("yticks", ax.yaxis)):
        # Tick labels outside the view interval are returned by matplotlib but never drawn: leave them out.
        lo, hi = sorted(axis.get_view_interval())
        eps = (hi - lo) * 1e-9
        for loc, lab in zip(axis.get_majorticklocs(), axis.get_ticklabels()):
            text = lab.get_text()
            if text and lab.get_visible() and lo - eps <= loc <= hi + eps:
                bb = lab.get_window_extent(renderer)
                if bb.width > 0 and 0 <= bb.x0 and bb.y0 >= 0:
                    boxes[kind][text] = _bbox_to_pixels(bb, height)
    for kind, artist in (("title", ax.title), ("xlabel", ax.xaxis.label), ("ylabel", ax.yaxis.label)):
        if artist.get_text():
            boxes[kind] = {artist.get_text(): _bbox_to_pixels(artist.get_window_extent(renderer), height)}
    boxes["axes"] = {"axes": _bbox_to_pixels(ax.get_window_extent(renderer), height)}
    return boxes


def render_bar_chart(
    table: dict[str, float],
    *,
    horizontal: bool = False,
    value_labels: bool = True,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    color: str | list[str] = "#4C72B0",
    rotate_ticks: int = 0,
    size: tuple[float, float] = (6.4, 4.8),
    dpi: int = 100,
    font_size: float = 10.0,
) -> RenderedChart:
    """A single bar chart (vertical, or horizontal with ``horizontal=True``) with its ground-truth boxes."""
    with plt.rc_context({"font.size": font_size}):
        fig, ax = plt.subplots(figsize=size, dpi=dpi)
        drawn = _draw_bars(ax, fig, table, horizontal=horizontal, color=color, value_labels=value_labels,
                           rotate_ticks=rotate_ticks, title=title, xlabel=xlabel, ylabel=ylabel)
        fig.tight_layout()
        fig.canvas.draw()
        height = int(round(fig.get_size_inches()[1] * dpi))
        boxes = _collect(fig, ax, drawn, height, horizontal=horizontal)
        image = _save(fig)
    return RenderedChart(image=image, table=dict(table), boxes=boxes,
                         meta={"kind": "hbar" if horizontal else "bar", "title": title})


def render_panel_figure(
    panels: list[tuple[str, dict[str, float]]],
    *,
    grid: tuple[int, int] = (2, 2),
    size: tuple[float, float] = (9.0, 7.0),
    dpi: int = 100,
    colors: tuple[str, ...] = ("#4C72B0", "#DD8452", "#55A868", "#C44E52"),
    suptitle: str | None = None,
    kind: str = "bar",
    spines: str = "box",
) -> RenderedChart:
    """A multi-panel figure: one titled chart per ``(title, table)``; ``boxes['panels']`` maps title -> the
    panel's box (its axes plus title and tick labels) and ``boxes['axes']`` title -> the axes box.

    ``kind``: "bar", "hbar", "line" or "pie" (pies have no axis lines); ``spines``: "box" (all four),
    "left-bottom" (open axes) or "none"."""
    if kind not in ("bar", "hbar", "line", "pie"):
        raise ValueError(f"kind must be bar, hbar, line or pie, not {kind!r}")
    if spines not in ("box", "left-bottom", "none"):
        raise ValueError(f"spines must be box, left-bottom or none, not {spines!r}")
    rows, cols = grid
    if len(panels) > rows * cols:
        raise ValueError(f"{len(panels)} panels do not fit a {rows}x{cols} grid")
    fig, axes = plt.subplots(rows, cols, figsize=size, dpi=dpi, squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(panels):]:
        ax.remove()
    drawn = []
    for i, (title, table) in enumerate(panels):
        ax, color = flat[i], colors[i % len(colors)]
        if kind == "pie":
            wedges, texts = ax.pie(list(table.values()), labels=list(table), startangle=90)
            ax.set_title(title)
            drawn.append({"bars": [], "values": [], "cats": [], "artists": [*wedges, *texts, ax.title]})
            continue
        if kind == "line":
            ax.plot(list(table), list(table.values()), color=color, marker="o")
            ax.set_title(title)
            drawn.append({"bars": [], "values": [], "cats": []})
        else:
            drawn.append(_draw_bars(ax, fig, table, horizontal=kind == "hbar", color=color, value_labels=True,
                                    rotate_ticks=0, title=title, xlabel=None, ylabel=None))
        if spines != "box":
            ax.spines[["top", "right"]].set_visible(False)
        if spines == "none":
            ax.spines[["left", "bottom"]].set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    height = int(round(fig.get_size_inches()[1] * dpi))
    boxes: dict[str, dict[str, Box]] = {"panels": {}, "axes": {}, "bars": {}, "values": {}, "xticks": {}, "title": {}}
    for i, (title, _) in enumerate(panels):
        ax = flat[i]
        if kind == "pie":  # the (square) axes is mostly blank: the panel is what is drawn in it
            extent = Bbox.union([a.get_window_extent(renderer) for a in drawn[i]["artists"]])
        else:
            extent = ax.get_tightbbox(renderer)
        boxes["panels"][title] = _bbox_to_pixels(extent, height)
        boxes["axes"][title] = _bbox_to_pixels(ax.get_window_extent(renderer), height)
        sub = _collect(fig, ax, drawn[i], height, horizontal=False)
        boxes["title"].update(sub.get("title", {}))
        for elem in ("bars", "values", "xticks"):
            boxes[elem].update({f"{title}/{k}": v for k, v in sub[elem].items()})
    image = _save(fig)
    table = {f"{t}/{k}": v for t, tab in panels for k, v in tab.items()}
    return RenderedChart(image=image, table=table, boxes=boxes,
                         meta={"kind": "panels", "grid": grid, "panel_kind": kind, "spines": spines})


def render_pie_chart(table: dict[str, float], *, title: str | None = None, size: tuple[float, float] = (6.0, 6.0),
                     dpi: int = 100) -> RenderedChart:
    """A pie chart; ``boxes['wedges']`` maps label -> wedge box, ``boxes['labels']`` label -> text box."""
    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    wedges, texts = ax.pie(list(table.values()), labels=list(table), startangle=90)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    height = int(round(fig.get_size_inches()[1] * dpi))
    boxes = {
        "wedges": {k: _bbox_to_pixels(w.get_window_extent(renderer), height) for k, w in zip(table, wedges)},
        "labels": {k: _bbox_to_pixels(t.get_window_extent(renderer), height) for k, t in zip(table, texts)},
    }
    return RenderedChart(image=_save(fig), table=dict(table), boxes=boxes, meta={"kind": "pie", "title": title})
