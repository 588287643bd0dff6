"""Chart rendering with ground truth: matplotlib (headless) charts plus the pixel boxes of what they show.

Every box is in the pixel coordinates of the saved PNG (origin top-left, x1/y1 exclusive), measured from the
renderer itself, so tests and the data engine know exactly where each bar, label and panel is.

The data engine's renderer is :func:`render_chart` (one :class:`~thinkimg.data.tables.Table`, one
:class:`ChartStyle`) and :func:`render_panels` (2-4 tables, or more, as titled subplots); :func:`sample_style` draws
varied, readable styles from a seeded ``random.Random``. Their output lists every drawn thing as an :class:`Element`
(kind, box, text, category, series, value, colour, anchor) and maps data values to pixels
(:meth:`RenderedChart.value_to_pixel`). Rendering is deterministic: the same table and style give identical pixels.
The layout adapts so that the ground truth stays clean: long titles wrap, colliding category ticks rotate, value
axes widen to make room for printed values and inside legends (a legend that would squeeze the data moves above the
plot), and printed values that would collide or overflow their mark are left out (the elements list what is drawn).
The older :func:`render_bar_chart`, :func:`render_panel_figure` and :func:`render_pie_chart` (dict tables, a
``boxes`` dict) serve the tool tests.
"""

from __future__ import annotations

import io
import math
import random
import textwrap
from dataclasses import asdict, dataclass, field, fields
from functools import cache
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Rectangle, Wedge  # noqa: E402
from matplotlib.ticker import MaxNLocator, ScalarFormatter  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402
from PIL import Image  # noqa: E402

from thinkimg.data.tables import Table  # noqa: E402
from thinkimg.tools.boxes import Box  # noqa: E402

#: Chart kinds of :class:`ChartStyle`. "bar"/"hbar" draw several series side by side, like "grouped_bar".
KINDS = ("bar", "hbar", "grouped_bar", "stacked_bar", "line", "scatter", "pie")
#: Element kinds: marks (bar, wedge, point), texts (value_label, point_label, wedge_label, xtick, ytick, legend,
#: title, suptitle, xlabel, ylabel) and areas (axes: a plot area; panel: one subplot with its title and labels).
ELEMENT_KINDS = ("bar", "wedge", "point", "value_label", "point_label", "wedge_label", "xtick", "ytick", "legend",
                 "panel", "axes", "title", "suptitle", "xlabel", "ylabel")
#: Legend places for vertical charts; "outside top" puts it between the title and the plot.
VERTICAL_LEGEND_LOCS = ("upper right", "upper left", "upper center", "outside right", "outside top")
#: Legend places for horizontal bars (never over the bars' start at the value axis).
HBAR_LEGEND_LOCS = ("upper right", "lower right", "outside right", "outside top")
SPINES = ("box", "left-bottom", "none")
ROTATIONS = (0, 30, 45, 90)
MARKERS = ("o", "s", "^", "D", "")
#: Fonts bundled with matplotlib, so a sampled style draws the same on every machine.
FONTS = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono", "STIXGeneral")
#: Named palettes (8-10 colours each): one colour per series, or per wedge for pies.
PALETTES = {
    "tab10": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
              "#17becf"],
    "deep": ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974",
             "#64b5cd"],
    "muted": ["#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c", "#dc7ec0", "#797979", "#d5bb67",
              "#82c6e2"],
    "set2": ["#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3"],
    "dark2": ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"],
    "okabe-ito": ["#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9", "#f0e442", "#999999"],
    "office": ["#4472c4", "#ed7d31", "#a5a5a5", "#ffc000", "#5b9bd5", "#70ad47", "#264478", "#9e480e"],
}
_BACKGROUNDS = ("#ffffff", "#ffffff", "#ffffff", "#f7f7f7", "#fbf9f3", "#f2f5fa")
_TEXT_COLORS = ("#000000", "#222222", "#333333", "#262626")
_DONUT_WIDTH = 0.45  # ring width of donut pies, as a fraction of the radius


@dataclass
class Element:
    """One drawn thing and where it is: ``box`` in PNG pixels (clipped to the image).

    ``kind`` is one of :data:`ELEMENT_KINDS`. ``text`` is the text exactly as drawn (wrapped lines joined by "\n");
    ``category``/``series`` say which table cell a mark or label shows (a scatter point's ``category`` is its name,
    and so is its "point_label" text; ticks of the category axis carry their ``category``, ticks of a value axis
    their ``value``; a pie's legend entries their ``category``, other legends' their ``series``). ``panel`` is the
    subplot's title on multi-panel figures. ``value``: the data value (a stacked segment's own value; a scatter
    point's y). ``color``: the "#rrggbb" fill of a mark or legend handle. ``anchor``: the pixel of the data value: a
    bar's end (top-centre of a vertical bar, right-middle of a horizontal one, the far end for negative values; a
    stacked segment's far end), a marker's centre, a point inside a wedge clear of its labels; a value label shares
    its mark's anchor.
    """

    kind: str
    box: Box
    text: str = ""
    category: str | None = None
    series: str | None = None
    panel: str | None = None
    value: float | None = None
    color: str | None = None
    anchor: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Element:
        data = dict(data)
        data["box"] = tuple(data["box"])
        if data.get("anchor") is not None:
            data["anchor"] = tuple(data["anchor"])
        return cls(**data)


@dataclass
class RenderedChart:
    """A rendered chart: the RGB image, its data table, its elements and the pixel boxes of its elements.

    ``table`` is the :class:`Table` (:func:`render_chart`), the list of panel tables (:func:`render_panels`) or
    the ``{category: value}`` dict of the older renderers. ``elements`` lists what the new renderers drew;
    ``boxes`` is the older renderers' ground truth (empty for the new ones). ``meta`` holds ``kind``, ``style``
    (a dict), ``rotate_ticks`` (the rotation drawn), ``clipped`` (how many element boxes reached past the image
    and were cut to it: 0 unless the layout failed; such charts are best dropped), ``axes``: per plot
    ``{"panel", "box", "value_axis", "lim": [lo, hi], "pixels": [pixel_at_lo, pixel_at_hi]}`` (scatter plots add
    ``x_lim``/``x_pixels``; pies have no value axis and no entry), and for multi-panel figures ``grid`` and
    ``suptitle``.
    """

    image: Image.Image | None
    table: Any
    #: element kind -> {label: box}; kinds: bars, xticks, yticks, values, title, xlabel, ylabel, legend, panels, axes
    boxes: dict[str, dict[str, Box]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    elements: list[Element] = field(default_factory=list)

    def find(self, kind: str | None = None, **filters: Any) -> list[Element]:
        """Elements of ``kind`` (any kind when None) whose attributes equal ``filters`` (category, series,
        panel, text, ...)."""
        unknown = set(filters) - {f.name for f in fields(Element)}
        if unknown:
            raise ValueError(f"unknown element filters: {sorted(unknown)}")
        return [e for e in self.elements
                if (kind is None or e.kind == kind) and all(getattr(e, k) == v for k, v in filters.items())]

    def _mapping(self, panel: str | None, axis: str | None) -> tuple[list[float], list[float]]:
        entries = self.meta.get("axes", [])
        if panel is not None or len(entries) > 1:
            entries = [a for a in entries if a["panel"] == panel]
        if len(entries) != 1:
            raise ValueError(f"no single value axis for panel {panel!r} (a pie, or name the panel)")
        entry = entries[0]
        if axis is None or axis == entry["value_axis"]:
            return entry["lim"], entry["pixels"]
        if axis == "x" and "x_lim" in entry:
            return entry["x_lim"], entry["x_pixels"]
        raise ValueError(f"panel {panel!r} has no numeric {axis!r} axis")

    def value_to_pixel(self, value: float, panel: str | None = None, axis: str | None = None) -> float:
        """The pixel coordinate of a data value along the value axis (y for vertical charts, x for horizontal
        bars); ``axis="x"`` gives the x axis of a scatter plot."""
        (lo, hi), (p_lo, p_hi) = self._mapping(panel, axis)
        return p_lo + (value - lo) * (p_hi - p_lo) / (hi - lo)

    def pixel_to_value(self, pixel: float, panel: str | None = None, axis: str | None = None) -> float:
        """The data value at a pixel coordinate: the inverse of :meth:`value_to_pixel`."""
        (lo, hi), (p_lo, p_hi) = self._mapping(panel, axis)
        return lo + (pixel - p_lo) * (hi - lo) / (p_hi - p_lo)

    def metadata(self) -> dict[str, Any]:
        """JSON-able ground truth (no image): the meta (kind, style, axes, ...), size, table and elements."""
        if isinstance(self.table, Table):
            table: Any = self.table.to_dict()
        elif isinstance(self.table, list):
            table = [t.to_dict() for t in self.table]
        else:
            table = self.table
        return {**self.meta, "size": list(self.image.size) if self.image is not None else None, "table": table,
                "elements": [e.to_dict() for e in self.elements]}

    @classmethod
    def from_metadata(cls, data: dict[str, Any], image: Image.Image | None = None) -> RenderedChart:
        """Rebuild a chart (tables, elements, meta) from :meth:`metadata`; the image is the caller's."""
        meta = {k: v for k, v in data.items() if k not in ("size", "table", "elements")}
        table = data.get("table")
        if isinstance(table, list):
            table = [Table.from_dict(t) for t in table]
        elif isinstance(table, dict) and "categories" in table:
            table = Table.from_dict(table)
        return cls(image=image, table=table, meta=meta, elements=[Element.from_dict(e) for e in data["elements"]])


@dataclass
class ChartStyle:
    """How a chart looks; JSON-able (:meth:`to_dict`, :meth:`from_dict`).

    Sizes: ``width_in`` x ``height_in`` inches at ``dpi``; ``font_size``/``title_size`` in points. ``palette``:
    one colour per series (per wedge for pies; a single-series chart uses ``palette[0]``, panel *i* of a
    multi-panel figure ``palette[i]``; beyond its length come lighter, then darker tints of it). ``value_labels``:
    print each bar's / line point's / wedge's value with ``value_format`` (a ``str.format`` pattern; pies with
    ``pie_percent`` print the percentage with it; scatter plots name their points instead, see ``point_labels``).
    ``rotate_ticks``: the least rotation of category tick labels (the renderer rotates further, 30 -> 45 -> 90,
    when labels would collide). ``legend_loc``: where multi-series legends go (see the ``*_LEGEND_LOCS``; pies
    put theirs at the right). ``pie_labels``: "wedge" (names beside the wedges) or "legend". ``point_labels``:
    name each scatter point. ``marker``: "" draws lines without markers (scatter falls back to "o").
    """

    kind: str
    width_in: float = 6.4
    height_in: float = 4.8
    dpi: int = 100
    font_family: str = "DejaVu Sans"
    font_size: float = 10.0
    title_size: float = 12.0
    title_weight: str = "bold"
    title_loc: str = "center"
    palette: list[str] = field(default_factory=lambda: list(PALETTES["deep"]))
    background: str = "#ffffff"
    text_color: str = "#222222"
    value_labels: bool = True
    value_format: str = "{:g}"
    pie_percent: bool = True
    pie_labels: str = "wedge"
    donut: bool = False
    point_labels: bool = True
    gridlines: bool = True
    rotate_ticks: int = 0
    legend_loc: str = "upper right"
    spines: str = "left-bottom"
    bar_width: float = 0.7
    marker: str = "o"
    marker_size: float = 6.0
    line_width: float = 2.0

    def __post_init__(self) -> None:
        locs = HBAR_LEGEND_LOCS if self.kind == "hbar" else VERTICAL_LEGEND_LOCS
        checks = [("kind", KINDS), ("spines", SPINES), ("rotate_ticks", ROTATIONS), ("marker", MARKERS),
                  ("legend_loc", locs), ("pie_labels", ("wedge", "legend")), ("title_loc", ("center", "left")),
                  ("title_weight", ("bold", "normal"))]
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ValueError(f"ChartStyle.{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if not self.palette:
            raise ValueError("ChartStyle.palette is empty")
        self.palette = [to_hex(c) for c in self.palette]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChartStyle:
        return cls(**data)


@cache
def available_fonts() -> tuple[str, ...]:
    """The :data:`FONTS` matplotlib finds on this machine."""
    found = []
    for family in FONTS:
        try:
            font_manager.findfont(font_manager.FontProperties(family=family), fallback_to_default=False)
        except ValueError:
            continue
        found.append(family)
    return tuple(found) or ("DejaVu Sans",)


def _value_formats(decimals: int) -> list[str]:
    if decimals <= 0:
        return ["{:g}", "{:.0f}", "{:,.0f}"]
    return ["{:g}", f"{{:.{decimals}f}}", f"{{:,.{decimals}f}}"]


def sample_style(rng: random.Random, kind: str, *, n_series: int = 1, n_categories: int = 5, n_panels: int = 1,
                 decimals: int = 1) -> ChartStyle:
    """A varied but readable style for this chart kind, drawn from ``rng``.

    The image stays within 800x600 pixels; wider for many categories, larger (with smaller text) for
    ``n_panels`` > 1 subplots. ``decimals``: the decimals the data need, so printed values stay exact.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    dpi = rng.choice((72, 80, 90, 96, 100, 110))
    if n_panels > 1:  # as many pixels as allowed: subplots are small
        width = rng.uniform(640, 800) / dpi
        height = min(600, width * dpi * rng.uniform(0.68, 0.75)) / dpi
        text_px = rng.uniform(9.5, 12.0)
    else:
        width = rng.uniform(min(6.5, 4.0 + 0.2 * n_categories), 7.0) if kind != "pie" else rng.uniform(4.5, 6.5)
        height = min(5.0, max(3.0, width * rng.uniform(0.6, 0.8)))
        text_px = rng.uniform(10.5, 14.0)
    width, height = min(width, 800 / dpi), min(height, 600 / dpi)
    font_size = round(min(13.0, max(7.0, text_px * 72 / dpi)), 1)
    name = rng.choice(sorted(PALETTES))
    shift = rng.randrange(len(PALETTES[name]))
    palette = PALETTES[name][shift:] + PALETTES[name][:shift]
    pie_percent = rng.random() < 0.7
    value_format = (rng.choice(["{:.0f}%", "{:.1f}%"]) if kind == "pie" and pie_percent
                    else rng.choice(_value_formats(decimals)))
    label_odds = {"pie": 0.85, "line": 0.4 if n_series == 1 else 0.15, "scatter": 0.0, "stacked_bar": 0.5}
    locs = HBAR_LEGEND_LOCS if kind == "hbar" else VERTICAL_LEGEND_LOCS
    return ChartStyle(
        kind=kind,
        width_in=math.floor(width * 100) / 100,
        height_in=math.floor(height * 100) / 100,
        dpi=dpi,
        font_family=rng.choice(available_fonts()),
        font_size=font_size,
        title_size=round(font_size * rng.uniform(1.1, 1.45), 1),
        title_weight=rng.choice(("bold", "normal")),
        title_loc=rng.choice(("center", "center", "left")),
        palette=palette,
        background=rng.choice(_BACKGROUNDS),
        text_color=rng.choice(_TEXT_COLORS),
        value_labels=rng.random() < label_odds.get(kind, 0.6),
        value_format=value_format,
        pie_percent=pie_percent,
        pie_labels=rng.choice(("wedge", "legend")),
        donut=rng.random() < 0.3,
        point_labels=rng.random() < 0.6,
        gridlines=rng.random() < 0.6,
        rotate_ticks=rng.choice((0, 0, 0, 30, 45, 90)) if kind in ("bar", "grouped_bar", "stacked_bar", "line")
        else 0,
        legend_loc=rng.choice(locs),
        spines=rng.choice(SPINES),
        bar_width=round(rng.uniform(0.55, 0.85), 2),
        marker=rng.choice(MARKERS if kind == "line" else MARKERS[:-1]),
        marker_size=round(rng.uniform(5.0, 8.0), 1),
        line_width=round(rng.uniform(1.5, 2.8), 1),
    )


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


# ------------------------------------------------------------------------------------------------ the renderer


@dataclass
class _Item:
    """An element waiting for its box: measured from ``artist``, or a marker box of ``radius`` around ``xy``."""

    element: Element
    artist: Any = None
    xy: tuple[float, float] | None = None  # data coordinates of the anchor
    radius: float = 0.0


@dataclass
class _Plot:
    """One axes being drawn: its table, what it shows and the items to measure once drawn."""

    ax: Any
    table: Table
    panel: str | None
    value_axis: str | None  # "y", "x" (horizontal bars) or None (pies)
    category_axis: str | None  # the axis whose ticks name categories (None: scatter, pie)
    cell: tuple[float, float]  # width and height (pixels) of the figure's grid cell holding the plot
    items: list[_Item] = field(default_factory=list)
    inner_labels: list[tuple[Any, Any]] = field(default_factory=list)  # (label, bar): kept where it fits its bar
    legend: list[tuple[str | None, str | None, str]] = field(default_factory=list)  # (series, category, colour)
    handles: list = field(default_factory=list)  # what the legend entries show
    legend_loc: str = ""  # where the legend is (see ChartStyle.legend_loc)
    title: Any = None
    room: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # the reach (see _reach) the last layout made room for


def _mix(a: str, b: str, t: float) -> str:
    return to_hex([(1 - t) * x + t * y for x, y in zip(to_rgb(a), to_rgb(b))])


def _colors(palette: list[str], n: int) -> list[str]:
    """``n`` colours: the palette's, then lighter and darker tints of them (so up to 3x as many stay distinct)."""
    tints = palette + [_mix(c, "#ffffff", 0.45) for c in palette] + [_mix(c, "#000000", 0.35) for c in palette]
    return [tints[i % len(tints)] for i in range(n)]


def _ink_on(color: str, dark: str) -> str:
    """Text colour readable on a ``color`` fill: white on dark fills, ``dark`` on light ones."""
    r, g, b = to_rgb(color)
    return "#ffffff" if 0.299 * r + 0.587 * g + 0.114 * b < 0.55 else dark


def _marker_radius(style: ChartStyle, marker: str) -> float:
    """Half a marker (or, without markers, half the line width plus a pixel), in pixels."""
    size = style.marker_size if marker else style.line_width
    return size * style.dpi / 72 / 2 + (0 if marker else 1)


def _fit_text(artist, limit: float, renderer, *, vertical: bool = False) -> None:
    """Wrap a text on spaces until it spans at most ``limit`` pixels (up to 4 lines); a wrapped text hung from its
    first baseline (a title) stands on its bottom instead, so its lines stay clear of what is below it."""
    text = artist.get_text()
    for lines in range(2, 5):
        extent = artist.get_window_extent(renderer)
        if (extent.height if vertical else extent.width) <= limit:
            return
        artist.set_text(textwrap.fill(text, math.ceil(len(text) / lines), break_long_words=False))
        if artist.get_va() == "baseline":
            artist.set_va("bottom")


def _short_lines(text: str) -> str:
    """A legend or wedge label, wrapped to lines of at most 16 characters."""
    return textwrap.fill(text, 16, break_long_words=False)


def _value_axis_label(table: Table) -> str:
    if table.single:
        name = table.series_names[0]
        return f"{name} ({table.unit})" if table.unit else name
    return table.unit


def _bars(p: _Plot, style: ChartStyle, colors: list[str]) -> list:
    """Bars side by side (or stacked) per category, one colour per series; returns the legend handles."""
    ax, table = p.ax, p.table
    horizontal, stacked = style.kind == "hbar", style.kind == "stacked_bar"
    pos = np.arange(len(table.categories), dtype=float)
    k = 1 if stacked else len(table.series)
    width = style.bar_width / k
    up, down = np.zeros(len(pos)), np.zeros(len(pos))
    handles = []
    for j, (name, values) in enumerate(table.series.items()):
        vals = np.asarray(values, dtype=float)
        if stacked:
            base, offsets = np.where(vals >= 0, up, down), pos
            up, down = up + np.maximum(vals, 0), down + np.minimum(vals, 0)
        else:
            base, offsets = np.zeros(len(pos)), pos + (j - (k - 1) / 2) * width
        color = colors[j]
        bars = (ax.barh(offsets, vals, height=width, left=base, color=color) if horizontal
                else ax.bar(offsets, vals, width=width, bottom=base, color=color))
        handles.append(bars)
        xys = [(float(e), float(o)) if horizontal else (float(o), float(e)) for o, e in zip(offsets, base + vals)]
        for cat, value, bar, xy in zip(table.categories, values, bars, xys):
            p.items.append(_Item(Element("bar", (0, 0, 0, 0), category=cat, series=name, panel=p.panel,
                                         value=float(value), color=color), bar, xy))
        if style.value_labels:  # the labelled points lie in the axes: annotation_clip=False skips checking that
            texts = [style.value_format.format(v) for v in values]
            labels = ax.bar_label(bars, labels=texts, label_type="center" if stacked else "edge",
                                  padding=0 if stacked else 2, annotation_clip=False,
                                  color=_ink_on(color, style.text_color) if stacked else style.text_color)
            for cat, value, text, label, bar, xy in zip(table.categories, values, texts, labels, bars, xys):
                p.items.append(_Item(Element("value_label", (0, 0, 0, 0), text=text, category=cat, series=name,
                                             panel=p.panel, value=float(value)), label, xy))
                if stacked:
                    p.inner_labels.append((label, bar))
    (ax.set_yticks if horizontal else ax.set_xticks)(pos, labels=table.categories)
    if horizontal:
        ax.invert_yaxis()  # the first category on top, as it is read
    if any(v < 0 for values in table.series.values() for v in values):
        (ax.axvline if horizontal else ax.axhline)(0, color=style.text_color, linewidth=0.8)
    return handles


def _lines(p: _Plot, style: ChartStyle, colors: list[str]) -> list:
    """One line (with markers) per series over the categories; returns the legend handles."""
    ax, table = p.ax, p.table
    pos = np.arange(len(table.categories), dtype=float)
    radius = _marker_radius(style, style.marker)
    handles = []
    for j, (name, values) in enumerate(table.series.items()):
        color = colors[j]
        (line,) = ax.plot(pos, values, color=color, linewidth=style.line_width, marker=style.marker or None,
                          markersize=style.marker_size, markerfacecolor=color, markeredgecolor=color)
        handles.append(line)
        for x, cat, value in zip(pos, table.categories, values):
            xy = (float(x), float(value))
            p.items.append(_Item(Element("point", (0, 0, 0, 0), category=cat, series=name, panel=p.panel,
                                         value=float(value), color=color), None, xy, radius))
            if style.value_labels:
                text = style.value_format.format(value)
                label = ax.annotate(text, xy, xytext=(0, radius * 72 / style.dpi + 3), textcoords="offset points",
                                    ha="center", va="bottom", fontsize=style.font_size * 0.85, annotation_clip=False)
                p.items.append(_Item(Element("value_label", (0, 0, 0, 0), text=text, category=cat, series=name,
                                             panel=p.panel, value=float(value)), label, xy))
    ax.set_xticks(pos, labels=table.categories)
    return handles


def _scatter(p: _Plot, style: ChartStyle, colors: list[str]) -> list:
    """One marker per category at (x, y), named when ``style.point_labels``; no legend handles."""
    ax, table = p.ax, p.table
    if set(table.series) != {"x", "y"}:
        raise ValueError(f"scatter table {table.title!r} needs series 'x' and 'y', not {table.series_names}")
    xs, ys = table.series["x"], table.series["y"]
    marker, color = style.marker or "o", colors[0]
    ax.scatter(xs, ys, s=style.marker_size ** 2, c=color, marker=marker, edgecolors=color, linewidths=0.5,
               zorder=3)
    radius = _marker_radius(style, marker)
    middle = (min(xs) + max(xs)) / 2
    offset = radius * 72 / style.dpi + 2
    for name, x, y in zip(table.categories, xs, ys):
        xy = (float(x), float(y))
        p.items.append(_Item(Element("point", (0, 0, 0, 0), category=name, panel=p.panel, value=float(y),
                                     color=color), None, xy, radius))
        if style.point_labels:
            left = x > middle  # labels point inwards
            label = ax.annotate(name, xy, xytext=(-offset if left else offset, offset), textcoords="offset points",
                                ha="right" if left else "left", va="bottom", fontsize=style.font_size * 0.85,
                                annotation_clip=False)
            p.items.append(_Item(Element("point_label", (0, 0, 0, 0), text=name, category=name, panel=p.panel),
                                 label, xy))
    return []


def _pie(p: _Plot, style: ChartStyle) -> None:
    """One wedge per positive value of the first series, clockwise from the top."""
    ax, table = p.ax, p.table
    name = table.series_names[0]
    values = table.series[name]
    if any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"pie table {table.title!r}: values must be >= 0 with a positive sum")
    shown = [(cat, v, color) for cat, v, color in zip(table.categories, values, _colors(style.palette, len(values)))
             if v > 0]
    wedgeprops = {"edgecolor": style.background, "linewidth": 1.0}
    if style.donut:
        wedgeprops["width"] = _DONUT_WIDTH
    wedges, _ = ax.pie([v for _, v, _ in shown], colors=[c for _, _, c in shown], startangle=90,
                       counterclock=False, wedgeprops=wedgeprops)
    total = sum(values)
    label_at = 1 - _DONUT_WIDTH / 2 if style.donut else 0.62
    for (cat, value, color), wedge in zip(shown, wedges):
        mid = math.radians((wedge.theta1 + wedge.theta2) / 2)
        cos, sin = math.cos(mid), math.sin(mid)
        p.items.append(_Item(Element("wedge", (0, 0, 0, 0), category=cat, series=name, panel=p.panel,
                                     value=float(value), color=color), wedge))
        if style.pie_labels == "wedge":
            text = ax.text(1.12 * cos, 1.12 * sin, _short_lines(cat), ha="left" if cos >= 0 else "right",
                           va="center")
            p.items.append(_Item(Element("wedge_label", (0, 0, 0, 0), text=text.get_text(), category=cat,
                                         series=name, panel=p.panel), text))
        if style.value_labels:
            printed = style.value_format.format(100 * value / total if style.pie_percent else value)
            text = ax.text(label_at * cos, label_at * sin, printed, ha="center", va="center",
                           color=_ink_on(color, style.text_color), fontsize=style.font_size * 0.9)
            p.items.append(_Item(Element("value_label", (0, 0, 0, 0), text=printed, category=cat, series=name,
                                         panel=p.panel, value=float(value)), text))
            p.inner_labels.append((text, wedge))
    if style.pie_labels == "legend":
        p.legend = [(None, cat, color) for cat, _, color in shown]
        p.handles = wedges


def _place_legend(p: _Plot, loc: str, renderer) -> None:
    """(Re)draw the plot's legend at ``loc``, one of the ``*_LEGEND_LOCS``; above the plot, in as many columns
    (up to 4) as fit 85% of the plot's figure cell."""
    labels = [_short_lines(category or series) for series, category, _ in p.legend]
    if loc == "outside top":
        for ncols in range(min(len(labels), 4), 0, -1):
            legend = p.ax.legend(p.handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=ncols)
            if legend.get_window_extent(renderer).width <= 0.85 * p.cell[0]:
                break
    elif loc == "outside right":
        legend = p.ax.legend(p.handles, labels, loc="center left", bbox_to_anchor=(1.02, 0.5))
    else:
        legend = p.ax.legend(p.handles, labels, loc=loc)
    for handle in legend.legend_handles:  # lines at least 3 points thick: their colour shows
        if isinstance(handle, Line2D):
            handle.set_linewidth(max(handle.get_linewidth(), 3.0))
    p.legend_loc = loc


def _set_title(p: _Plot, style: ChartStyle, text: str, renderer) -> None:
    """Title the plot with ``text`` (above an "outside top" legend), fixed at the axes' top: no tick labels reach
    above it and wrapped titles stand on their bottom, so every layout and draw skips matplotlib's costly search
    for a higher place."""
    pad = matplotlib.rcParams["axes.titlepad"]
    legend = p.ax.get_legend()
    if legend is not None and p.legend_loc == "outside top":
        pad += (legend.get_window_extent(renderer).height * 72 / style.dpi
                + legend.borderaxespad * legend.prop.get_size())
    p.title = p.ax.set_title(text, loc=style.title_loc, fontsize=style.title_size, fontweight=style.title_weight,
                             pad=pad, y=1.0, va="bottom" if "\n" in text else "baseline")


def _draw(ax, table: Table, style: ChartStyle, panel: str | None, index: int, cell: tuple[float, float],
          renderer) -> _Plot:
    """Draw one table into ``ax`` in ``style``: marks, labels, axes, legend and title; long titles and axis
    labels wrap to fit the ``cell`` (width, height in pixels) of the figure's grid holding the axes."""
    kind = style.kind
    value_axis = None if kind == "pie" else "x" if kind == "hbar" else "y"
    category_axis = {"hbar": "y", "scatter": None, "pie": None}.get(kind, "x")
    p = _Plot(ax, table, panel, value_axis, category_axis, cell)
    colors = [style.palette[index % len(style.palette)]] if table.single else _colors(style.palette, len(table.series))
    if kind == "pie":
        _pie(p, style)
    else:
        draw = {"line": _lines, "scatter": _scatter}.get(kind, _bars)
        handles = draw(p, style, colors)
        numeric = ("x", "y") if kind == "scatter" else (value_axis,)
        for name in numeric:
            formatter = ScalarFormatter(useOffset=False)
            formatter.set_scientific(False)
            getattr(ax, f"{name}axis").set_major_formatter(formatter)
        if kind == "scatter":
            xlabel, ylabel = table.meta.get("x_label", ""), table.meta.get("y_label", "")
        elif kind == "hbar":
            xlabel, ylabel = _value_axis_label(table), table.category_name
        else:
            xlabel, ylabel = table.category_name, _value_axis_label(table)
        _fit_text(ax.set_xlabel(xlabel), 0.85 * cell[0], renderer)
        _fit_text(ax.set_ylabel(ylabel), 0.75 * cell[1], renderer, vertical=True)
        if style.spines != "box":
            ax.spines[["top", "right"]].set_visible(False)
        if style.spines == "none":
            ax.spines[["left", "bottom"]].set_visible(False)
            ax.tick_params(length=0)
        if style.gridlines:
            ax.grid(True, axis="both" if kind == "scatter" else value_axis,
                    color=_mix(style.background, style.text_color, 0.15), linewidth=0.7)
            ax.set_axisbelow(True)
        if handles and not table.single:
            p.legend = [(name, None, color) for name, color in zip(table.series, colors)]
            p.handles = handles
    if p.handles:
        _place_legend(p, "outside right" if kind == "pie" else style.legend_loc, renderer)
    if table.title:
        _set_title(p, style, table.title, renderer)
        _fit_text(p.title, (0.9 if style.title_loc == "center" else 0.75) * cell[0], renderer)
    return p


def _set_rotation(plots: list[_Plot], rotation: int) -> None:
    """Rotate the category tick labels of the x axes, each pointing at its tick."""
    for p in plots:
        if p.category_axis == "x":
            p.ax.tick_params(axis="x", labelrotation=rotation, labelrotation_mode="xtick" if rotation else "default")


def _ticks_collide(p: _Plot, rotation: int, dpi: int, renderer) -> bool:
    """Category tick labels on the x axis overlap (unrotated) or lie closer than a line apart (rotated)."""
    if p.category_axis != "x" or rotation == 90:
        return False
    labels = p.ax.xaxis.get_majorticklabels()
    if len(labels) < 2:
        return False
    if rotation:
        step = abs(p.ax.transData.transform((1, 0))[0] - p.ax.transData.transform((0, 0))[0])
        return step * math.sin(math.radians(rotation)) < labels[0].get_fontsize() * dpi / 72 * 1.2
    boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
    return any(a.x1 + 2 > b.x0 for a, b in zip(boxes, boxes[1:]))


def _bar_extent(bar: Rectangle, ax) -> Bbox:
    """A bar's display-space box: its data corners through ``ax.transData``, as drawn (and several times faster
    than ``get_window_extent``, which builds the patch's transforms anew)."""
    corners = ax.transData.transform(bar.get_bbox().get_points())
    return Bbox([corners.min(axis=0), corners.max(axis=0)])


def _extent(item: _Item, ax, renderer) -> Bbox:
    """An item's display-space box: its artist's extent, or its marker's square."""
    if isinstance(item.artist, Rectangle):
        return _bar_extent(item.artist, ax)
    if item.artist is not None:
        return item.artist.get_window_extent(renderer)
    x, y = ax.transData.transform(item.xy)
    return Bbox.from_extents(x - item.radius, y - item.radius, x + item.radius, y + item.radius)


def _overlap(a: Bbox, b: Bbox, gap: float) -> bool:
    """The boxes come closer than ``gap`` pixels (overlap by more than ``-gap``)."""
    return a.x0 < b.x1 + gap and b.x0 < a.x1 + gap and a.y0 < b.y1 + gap and b.y0 < a.y1 + gap


def _crowded(p: _Plot, renderer) -> bool:
    """A printed value (outside its mark) comes within 3 pixels of another, or overlaps a mark not its own."""
    if p.value_axis is None or p.inner_labels:
        return False
    labels = [(it.element, _extent(it, p.ax, renderer)) for it in p.items if it.element.kind == "value_label"]
    marks = [(it.element, _extent(it, p.ax, renderer)) for it in p.items if it.element.kind in ("bar", "point")]
    for i, (label, box) in enumerate(labels):
        if any(_overlap(box, other, 3) for _, other in labels[i + 1:]):
            return True
        if any(_overlap(box, mbox, -1) for mark, mbox in marks
               if (mark.category, mark.series) != (label.category, label.series)):
            return True
    return False


def _place_point_labels(p: _Plot, renderer) -> None:
    """Put each scatter point's name at the first corner around its marker (inwards first) where it stays in the
    plot area, clear of the names placed before it and of the other markers; else where it was."""
    area = p.ax.get_window_extent(renderer)
    markers = [(it.element.category, _extent(it, p.ax, renderer)) for it in p.items if it.element.kind == "point"]
    placed: list[Bbox] = []
    for item in (it for it in p.items if it.element.kind == "point_label"):
        label = item.artist
        dx, dy = label.xyann
        for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 1)):  # the last one: back to the first
            label.xyann = (sx * dx, sy * dy)
            label.set_ha("left" if sx * dx > 0 else "right")
            label.set_va("bottom" if sy * dy > 0 else "top")
            box = label.get_window_extent(renderer)
            if (area.count_contains(box.corners()) == 4 and not any(_overlap(box, b, 1) for b in placed)
                    and not any(_overlap(box, m, 0) for name, m in markers if name != item.element.category)):
                break
        placed.append(box)


def _escaping(p: _Plot, renderer) -> bool:
    """A printed value reaches out of the plot area."""
    area = p.ax.get_window_extent(renderer).padded(1)
    return any(area.count_contains(item.artist.get_window_extent(renderer).corners()) < 4
               for item in p.items if item.element.kind == "value_label")


def _drop_value_labels(p: _Plot) -> None:
    """Leave out all the plot's printed values."""
    for item in [it for it in p.items if it.element.kind == "value_label"]:
        item.artist.remove()
    p.items = [it for it in p.items if it.element.kind != "value_label"]
    p.inner_labels = []


def _settle_value_labels(p: _Plot, style: ChartStyle, renderer) -> None:
    """Crowded printed values: turn those of vertical bars upright, and drop them where that does not help."""
    if not _crowded(p, renderer):
        return
    if style.kind in ("bar", "grouped_bar"):
        for item in p.items:
            if item.element.kind == "value_label":
                item.artist.set_rotation(90)
        if not _crowded(p, renderer):
            return
    _drop_value_labels(p)


def _fit_axis(p: _Plot, axis: str, legend: Bbox | None, boxes: list[tuple[_Item, Bbox]]) -> tuple[bool, bool]:
    """Widen ``axis``'s limits so the value labels, markers (and, under an inside legend, bars) stay inside the
    plot area and clear of the legend; ``boxes``: the items with an anchor and their extents. Returns (the limits
    changed, an item under the legend could clear it only by squeezing the data into half the plot or less)."""
    ax, horizontal = p.ax, axis == "x"
    area = ax.get_window_extent()
    a0, a1 = (area.x0, area.x1) if horizontal else (area.y0, area.y1)
    span, pad = a1 - a0, 3.0
    lo, hi = ax.get_xlim() if horizontal else ax.get_ylim()
    reach = []  # (data value, pixels beyond it towards hi, pixels beyond it towards lo, highest allowed pixel)
    blocked = False
    for item, box in boxes:
        d = item.xy[0 if horizontal else 1]
        at = ax.transData.transform(item.xy)[0 if horizontal else 1]
        beyond_hi = (box.x1 if horizontal else box.y1) - at
        beyond_lo = None if item.element.kind == "bar" else at - (box.x0 if horizontal else box.y0)
        top = a1 - pad
        if legend is not None and (box.y0 < legend.y1 and legend.y0 < box.y1 if horizontal
                                   else box.x0 < legend.x1 and legend.x0 < box.x1):
            top = min(top, (legend.x0 if horizontal else legend.y0) - pad)
            blocked |= top - beyond_hi - a0 <= 0.5 * span  # would squeeze the data into half the plot
        reach.append((d, beyond_hi, beyond_lo, top))
    new_lo, new_hi = lo, hi
    for _ in range(2):  # each end's bound depends on the other end
        for d, beyond_hi, beyond_lo, top in reach:
            room = top - beyond_hi - a0
            if d > new_lo and room > 0.2 * span:
                new_hi = max(new_hi, new_lo + (d - new_lo) * span / room)
            if beyond_lo is not None and d < new_hi and span - pad - beyond_lo > 0.2 * span:
                new_lo = min(new_lo, new_hi - (new_hi - d) * span / (span - pad - beyond_lo))
    if (new_lo, new_hi) == (lo, hi):
        return False, blocked
    (ax.set_xlim if horizontal else ax.set_ylim)(new_lo, new_hi)
    return True, blocked


def _fit(p: _Plot, style: ChartStyle, renderer) -> tuple[bool, bool]:
    """Fit the value axis (and the x axis of lines and scatter plots): (limits changed, legend in the way)."""
    if p.value_axis is None:
        return False, False
    legend = p.ax.get_legend()
    inside = legend is not None and not p.legend_loc.startswith("outside")
    boxes = [(item, _extent(item, p.ax, renderer)) for item in p.items if item.xy is not None]
    changed, blocked = _fit_axis(p, p.value_axis, legend.get_window_extent(renderer) if inside else None, boxes)
    if style.kind in ("line", "scatter"):  # new y limits move the boxes up or down, not sideways
        changed |= _fit_axis(p, "x", None, boxes)[0]
    return changed, blocked


def _thin_value_ticks(p: _Plot, renderer) -> None:
    """Fewer ticks on a numeric axis whose tick labels would touch (wide numbers on a narrow axis)."""
    if p.value_axis is None:
        return
    for name in ("x", "y") if p.category_axis is None else (p.value_axis,):
        axis = getattr(p.ax, f"{name}axis")
        for _ in range(3):
            boxes = sorted((label.get_window_extent(renderer) for _, label in _drawn_ticks(axis)),
                           key=lambda b: b.x0 if name == "x" else b.y0)
            if not any(_overlap(a, b, 4) for a, b in zip(boxes, boxes[1:])) or len(boxes) <= 2:
                break
            axis.set_major_locator(MaxNLocator(nbins=max(1, len(boxes) // 2)))


def _drop_overflowing_labels(p: _Plot, renderer) -> None:
    """Remove the values printed inside stacked segments or wedges too small to hold them (2 pixels to spare)."""
    for label, mark in p.inner_labels:
        box = label.get_window_extent(renderer).padded(2)
        if isinstance(mark, Wedge):
            fits = all(mark.contains_point(corner) for corner in box.corners())
        else:
            fits = _bar_extent(mark, p.ax).count_contains(box.corners()) == 4
        if not fits:
            label.remove()
            p.items = [item for item in p.items if item.artist is not label]


def _tidy_texts(p: _Plot, multi: bool, renderer) -> bool:
    """Wrap a title or axis label that sticks out of the figure, or (multi-panel) reaches past its axes, to the
    axes' size; True when that happened or a legend sticks out (the layout must be redone). Only the direction
    along the text is checked: matplotlib places titles and axis labels across it at draw time."""
    p.ax.apply_aspect()  # a pie's square axes, as drawn (and the legend beside it)
    area, figure = p.ax.get_window_extent(renderer), p.ax.get_figure(root=True).bbox

    def outside(box: Bbox, along_x: bool = True, along_y: bool = True) -> bool:  # within a pixel of the edge
        return ((along_x and (box.x0 < figure.x0 + 1 or box.x1 > figure.x1 - 1))
                or (along_y and (box.y0 < figure.y0 + 1 or box.y1 > figure.y1 - 1)))

    changed = False
    for artist, vertical in ((p.title, False), (p.ax.xaxis.label, False), (p.ax.yaxis.label, True)):
        if artist is None or not artist.get_text():
            continue
        box = artist.get_window_extent(renderer)
        limit = area.height if vertical else area.width
        if outside(box, not vertical, vertical) or (multi and (box.height if vertical else box.width) > limit):
            _fit_text(artist, limit, renderer, vertical=vertical)
            changed = True
    legend = p.ax.get_legend()
    return changed or (legend is not None and outside(legend.get_window_extent(renderer)))


def _decorations(p: _Plot, renderer) -> Bbox:
    """The box around a plot's axes and all that goes around it: tick labels, axis labels (beside the tick labels,
    where drawing puts them), title, legend and texts. As in matplotlib's tight layout, the title and the x label
    count with their height only, the y label with its width only (wrapping keeps their length in check)."""
    ax = p.ax
    ax.apply_aspect()  # a pie's square axes
    area = ax.get_window_extent()
    boxes = [area]
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        ticks = [label.get_window_extent(renderer) for _, label in _drawn_ticks(axis)]
        boxes += ticks
        if axis.label.get_visible() and axis.label.get_text():
            size, gap = axis.label.get_window_extent(renderer), axis.labelpad * ax.get_figure(root=True).dpi / 72
            if name == "x":
                top, middle = min([b.y0 for b in ticks] + [area.y0]) - gap, (size.x0 + size.x1) / 2
                boxes.append(Bbox.from_extents(middle - 0.5, top - size.height, middle + 0.5, top))
            else:
                right, middle = min([b.x0 for b in ticks] + [area.x0]) - gap, (size.y0 + size.y1) / 2
                boxes.append(Bbox.from_extents(right - size.width, middle - 0.5, right, middle + 0.5))
    if p.title is not None and p.title.get_text():
        title = p.title.get_window_extent(renderer)
        middle = (title.x0 + title.x1) / 2
        boxes.append(Bbox.from_extents(middle - 0.5, title.y0, middle + 0.5, title.y1))
    legend = ax.get_legend()
    if legend is not None:
        boxes.append(legend.get_window_extent(renderer))
    boxes += [text.get_window_extent(renderer) for text in ax.texts if text.get_visible() and text.get_text()]
    return Bbox.union(boxes)


def _reach(p: _Plot, renderer) -> tuple[float, ...]:
    """How far (pixels) a plot's decorations reach beyond its axes: left, bottom, right, top."""
    box, area = _decorations(p, renderer), p.ax.get_window_extent()
    return area.x0 - box.x0, area.y0 - box.y0, box.x1 - area.x1, box.y1 - area.y1


def _tight_layout(fig, plots: list[_Plot], suptitle, renderer) -> None:
    """What ``fig.tight_layout()`` does, measuring each decoration once: the subplot parameters that keep every
    plot's :func:`_decorations` 1.08 font sizes clear of the figure's edges, the suptitle and one another (left as
    they are when nothing fits). Each plot's ``room`` keeps the margins made for it."""
    rows, cols = plots[0].ax.get_subplotspec().get_geometry()[:2]
    width, height = fig.bbox.width, fig.bbox.height
    pad = 1.08 * matplotlib.rcParams["font.size"] * fig.dpi / 72
    wide, high = np.zeros((rows, cols + 1)), np.zeros((rows + 1, cols))  # room beside columns, above/below rows
    for p in plots:
        spec = p.ax.get_subplotspec()
        slot = spec.get_position(fig).transformed(fig.transFigure)
        p.room = _reach(p, renderer)
        area, (rs, cs) = p.ax.get_window_extent(), (spec.rowspan, spec.colspan)
        wide[rs, cs.start] += slot.x0 - area.x0 + p.room[0]  # a gap between two columns holds the room of both
        high[rs.stop, cs] += slot.y0 - area.y0 + p.room[1]
        wide[rs, cs.stop] += area.x1 - slot.x1 + p.room[2]
        high[rs.start, cs] += area.y1 - slot.y1 + p.room[3]
    left, right = max(wide[:, 0].max(), 0) + pad, max(wide[:, -1].max(), 0) + pad
    top, bottom = max(high[0].max(), 0) + pad, max(high[-1].max(), 0) + pad
    if suptitle is not None:
        top += suptitle.get_window_extent(renderer).height + pad
    if left + right >= width or top + bottom >= height:
        return
    params = {"left": left / width, "right": 1 - right / width, "bottom": bottom / height, "top": 1 - top / height}
    if cols > 1:
        space = wide[:, 1:-1].max() + pad
        column = (width - left - right - space * (cols - 1)) / cols
        if column < 0:
            return
        params["wspace"] = space / column
    if rows > 1:
        space = high[1:-1].max() + pad
        row = (height - top - bottom - space * (rows - 1)) / rows
        if row < 0:
            return
        params["hspace"] = space / row
    fig.subplots_adjust(**params)


def _tidy(fig, plots: list[_Plot], multi: bool, suptitle, renderer) -> None:
    """Wrap texts that stick out and lay the figure out again, twice at most."""
    for _ in range(2):
        if not any([_tidy_texts(p, multi, renderer) for p in plots]):
            return
        _tight_layout(fig, plots, suptitle, renderer)


def _layout(fig, plots: list[_Plot], style: ChartStyle, multi: bool, suptitle, renderer) -> int:
    """Lay the figure out (tight), rotating colliding category ticks, wrapping titles that stick out, settling
    crowded printed values and widening value axes for labels and legends; returns the tick rotation drawn."""
    rotation = style.rotate_ticks
    _set_rotation(plots, rotation)
    _tight_layout(fig, plots, suptitle, renderer)
    while rotation < 90 and any(_ticks_collide(p, rotation, style.dpi, renderer) for p in plots):
        rotation = next(r for r in ROTATIONS if r > rotation)
        _set_rotation(plots, rotation)
        _tight_layout(fig, plots, suptitle, renderer)
    _tidy(fig, plots, multi, suptitle, renderer)  # a layout can push a legend (beside a square pie) or a title out
    for p in plots:
        _settle_value_labels(p, style, renderer)
    fits = [_fit(p, style, renderer) for p in plots]
    moved = [p for p, (_, blocked) in zip(plots, fits) if blocked]
    for p in moved:  # the legend hides what no limit can clear: put it above the plot
        _place_legend(p, "outside top", renderer)
        if p.title is not None:
            _set_title(p, style, p.title.get_text(), renderer)
        p.ax.autoscale()
    if moved or (any(changed for changed, _ in fits) and any(
            reach > room + 0.5 for p in plots for reach, room in zip(_reach(p, renderer), p.room))):
        _tight_layout(fig, plots, suptitle, renderer)  # a moved legend, or the new limits' ticks, need more room
        _tidy(fig, plots, multi, suptitle, renderer)
        for p in plots:
            _fit(p, style, renderer)
    for p in plots:
        if _crowded(p, renderer) or _escaping(p, renderer):  # the new limits pressed printed values together, or
            _drop_value_labels(p)  # could not make room for them
        _drop_overflowing_labels(p, renderer)
        _place_point_labels(p, renderer)
        _thin_value_ticks(p, renderer)
    return rotation


class _Frame:
    """Display coordinates -> PNG pixels of a drawn ``width`` x ``height`` image, clipped to it (``clipped``
    counts the boxes that reached past the image)."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.clipped = 0

    def clip(self, box: Box) -> Box:
        x0, y0, x1, y1 = box
        w, h = self.width, self.height
        inside = (min(max(x0, 0), w), min(max(y0, 0), h), min(max(x1, 0), w), min(max(y1, 0), h))
        self.clipped += inside != box
        return inside

    def box(self, bbox) -> Box:
        return self.clip(_bbox_to_pixels(bbox, self.height))

    def point(self, x: float, y: float) -> tuple[int, int]:
        return (min(max(int(round(x)), 0), self.width - 1), min(max(int(round(self.height - y)), 0), self.height - 1))


def _wedge_anchor(p: _Plot, wedge, avoid: list[Box], frame: _Frame) -> tuple[int, int]:
    """A pixel inside ``wedge`` along its middle (or nearby rays), clear of the ``avoid`` text boxes."""
    inner = wedge.r - wedge.width if wedge.width else 0.0
    mid, half = math.radians((wedge.theta1 + wedge.theta2) / 2), math.radians(wedge.theta2 - wedge.theta1) / 2
    cx, cy = wedge.center
    candidates = []
    for frac in (0.75, 0.55, 0.9, 0.4, 0.25):
        r = inner + (wedge.r - inner) * frac
        for turn in (0.0, half / 2, -half / 2):
            candidates.append(frame.point(*p.ax.transData.transform((cx + r * math.cos(mid + turn),
                                                                       cy + r * math.sin(mid + turn)))))
    for x, y in candidates:
        if not any(b[0] - 2 <= x < b[2] + 2 and b[1] - 2 <= y < b[3] + 2 for b in avoid):
            return x, y
    return candidates[0]


def _text_element(kind: str, artist, frame: _Frame, renderer, **attrs: Any) -> Element | None:
    """The element of a drawn, non-empty text artist (None otherwise)."""
    if artist is None or not artist.get_text() or not artist.get_visible():
        return None
    return Element(kind, frame.box(artist.get_window_extent(renderer)), text=artist.get_text(), **attrs)


def _drawn_ticks(axis) -> list[tuple[float, Any]]:
    """(location, label) of the labelled major ticks inside the view: matplotlib keeps, but never draws, ticks
    beyond it."""
    labels = axis.get_majorticklabels()  # brings the labels' texts up to date
    lo, hi = sorted(axis.get_view_interval())
    eps = (hi - lo) * 1e-9
    return [(float(loc), label) for loc, label in zip(axis.get_majorticklocs(), labels)
            if lo - eps <= loc <= hi + eps and label.get_text()]


def _tick_elements(p: _Plot, frame: _Frame, renderer) -> list[Element]:
    """The tick labels drawn: categories on the category axis, values on value axes."""
    out = []
    for name, axis in (("x", p.ax.xaxis), ("y", p.ax.yaxis)):
        for loc, label in _drawn_ticks(axis):
            attrs: dict[str, Any] = {"panel": p.panel}
            if name == p.category_axis:
                attrs["category"] = p.table.categories[int(round(loc))]
            else:
                attrs["value"] = float(f"{loc:.12g}")  # 0.6, not 0.6000000000000001
            element = _text_element(f"{name}tick", label, frame, renderer, **attrs)
            if element is not None:
                out.append(element)
    return out


def _handle_extent(handle, renderer) -> Bbox:
    """A legend handle's box; a line's ends are not padded by its (middle) marker as matplotlib pads them."""
    if not isinstance(handle, Line2D):
        return handle.get_window_extent(renderer)
    xy = handle.get_transform().transform(handle.get_xydata())
    marker = handle.get_marker() not in (None, "None", "", " ")
    r = (handle.get_markersize() if marker else handle.get_linewidth()) * renderer.points_to_pixels(1.0) / 2
    return Bbox.from_extents(xy[:, 0].min(), xy[:, 1].min() - r, xy[:, 0].max(), xy[:, 1].max() + r)


def _measure(p: _Plot, frame: _Frame, renderer, multi: bool) -> list[Element]:
    """Every element of one drawn plot, in PNG pixels; on multi-panel figures first the panel: the box around all
    of them and the legend (not around a pie's square axes, mostly blank)."""
    ax = p.ax
    legend = ax.get_legend()
    out = [Element("axes", frame.box(ax.get_window_extent(renderer)), panel=p.panel)]
    texts = [_text_element("title", p.title, frame, renderer, panel=p.panel),
             _text_element("xlabel", ax.xaxis.label, frame, renderer, panel=p.panel),
             _text_element("ylabel", ax.yaxis.label, frame, renderer, panel=p.panel)]
    out += [e for e in texts if e is not None]
    if p.value_axis is not None:
        out += _tick_elements(p, frame, renderer)
    marks = []
    for item in p.items:
        e = item.element
        if item.artist is not None:
            e.box = frame.box(_extent(item, ax, renderer))
        if item.xy is not None:
            e.anchor = frame.point(*ax.transData.transform(item.xy))
            if item.artist is None:  # a marker
                (x, y), r = e.anchor, int(math.ceil(item.radius))
                e.box = frame.clip((x - r, y - r, x + r + 1, y + r + 1))
        marks.append(e)
    avoid = [e.box for e in marks if e.kind in ("value_label", "wedge_label")]
    wedge_anchors = {item.element.category: _wedge_anchor(p, item.artist, avoid, frame)
                     for item in p.items if item.element.kind == "wedge"}
    for e in marks:
        if e.kind == "wedge" or (e.kind == "value_label" and e.category in wedge_anchors):
            e.anchor = wedge_anchors[e.category]
    out += [e for e in marks if e.kind == "bar" or (e.box[2] > e.box[0] and e.box[3] > e.box[1])]
    if legend is not None:
        for (series, category, color), handle, text in zip(p.legend, legend.legend_handles, legend.get_texts()):
            extent = Bbox.union([_handle_extent(handle, renderer), text.get_window_extent(renderer)])
            out.append(Element("legend", frame.box(extent), text=text.get_text(), category=category, series=series,
                               panel=p.panel, color=color))
    if multi:
        boxes = [e.box for e in out if e.kind != "axes" or p.value_axis is not None]
        if legend is not None:
            boxes.append(frame.box(legend.get_window_extent(renderer)))
        x0, y0, x1, y1 = zip(*boxes)
        out.insert(0, Element("panel", (min(x0), min(y0), max(x1), max(y1)), panel=p.panel))
    return out


def _axes_meta(p: _Plot, frame: _Frame) -> dict[str, Any]:
    """The value axis of one plot: its limits and the pixels they sit at."""
    ax = p.ax

    def mapping(axis: str) -> tuple[list[float], list[float]]:
        lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
        ends = ax.transData.transform([(lo, lo), (hi, hi)])
        pixels = ends[:, 0] if axis == "x" else frame.height - ends[:, 1]
        return [float(lo), float(hi)], [float(v) for v in pixels]

    lim, pixels = mapping(p.value_axis)
    entry = {"panel": p.panel, "box": frame.box(ax.get_window_extent()), "value_axis": p.value_axis, "lim": lim,
             "pixels": pixels}
    if p.category_axis is None:  # scatter: x is numeric too
        entry["x_lim"], entry["x_pixels"] = mapping("x")
    return entry


def _render(tables: list[Table], style: ChartStyle, grid: tuple[int, int], suptitle: str | None,
            multi: bool) -> RenderedChart:
    """Draw, lay out and measure the figure once; the image comes from the canvas, not a re-drawing savefig."""
    tc, bg = style.text_color, style.background
    rc = {"font.family": style.font_family, "font.size": style.font_size, "axes.titlesize": style.title_size,
          "axes.labelsize": style.font_size, "xtick.labelsize": style.font_size * 0.9,
          "ytick.labelsize": style.font_size * 0.9, "legend.fontsize": style.font_size * 0.9,
          "axes.unicode_minus": False, "text.color": tc, "axes.labelcolor": tc, "xtick.color": tc,
          "ytick.color": tc, "axes.edgecolor": _mix(bg, tc, 0.6), "axes.facecolor": bg, "figure.facecolor": bg,
          "legend.framealpha": 1.0, "legend.edgecolor": _mix(bg, tc, 0.2), "axes.linewidth": 0.8}
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(style.width_in, style.height_in), dpi=style.dpi)
        canvas = FigureCanvasAgg(fig)
        renderer = canvas.get_renderer()
        rows, cols = grid
        cell = (fig.bbox.width / cols, fig.bbox.height / rows)
        plots = [_draw(fig.add_subplot(rows, cols, i + 1), table, style, table.title if multi else None, i, cell,
                       renderer) for i, table in enumerate(tables)]
        sup = None
        if suptitle:
            sup = fig.suptitle(suptitle, fontsize=style.title_size * 1.1, fontweight=style.title_weight)
            _fit_text(sup, 0.9 * fig.bbox.width, renderer)
        rotation = _layout(fig, plots, style, multi, sup, renderer)
        canvas.draw()
        width, height = canvas.get_width_height(physical=True)
        image = Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")
        frame = _Frame(width, height)
        elements = [e for e in [_text_element("suptitle", sup, frame, renderer)] if e is not None]
        for p in plots:
            elements += _measure(p, frame, renderer, multi)
        axes = [_axes_meta(p, frame) for p in plots if p.value_axis is not None]
    meta = {"kind": style.kind, "style": style.to_dict(), "rotate_ticks": rotation, "clipped": frame.clipped,
            "axes": axes}
    if multi:
        meta.update(grid=[rows, cols], suptitle=suptitle)
    return RenderedChart(image=image, table=tables if multi else tables[0], meta=meta, elements=elements)


def render_chart(table: Table, style: ChartStyle) -> RenderedChart:
    """Draw ``table`` as a ``style.kind`` chart; ``table`` is kept in the result.

    Bars, lines and pies show every series (pies the first one); a scatter table's categories name the points
    and its series are exactly ``{"x": [...], "y": [...]}`` (axis labels from ``table.meta["x_label"]`` and
    ``["y_label"]``). Titles come from ``table.title``, the value-axis label from the series name and
    ``table.unit``, the category-axis label from ``table.category_name``; multi-series charts get a legend.
    """
    return _render([table], style, (1, 1), None, multi=False)


def render_panels(panels: list[Table], style: ChartStyle, *, grid: tuple[int, int] | None = None,
                  suptitle: str | None = None) -> RenderedChart:
    """Draw 2 or more tables as titled ``style.kind`` subplots (each titled by its ``table.title``, which must be
    unique); the result's ``table`` is the list. ``grid`` (rows, cols) defaults to one row for up to 3 panels,
    two rows beyond. A single-series panel *i* is drawn in ``style.palette[i]``."""
    titles = [t.title for t in panels]
    if len(panels) < 2 or not all(titles) or len(set(titles)) != len(titles):
        raise ValueError(f"render_panels needs 2 or more tables with distinct, non-empty titles, got {titles}")
    rows, cols = grid or ((1, len(panels)) if len(panels) <= 3 else (2, math.ceil(len(panels) / 2)))
    if len(panels) > rows * cols:
        raise ValueError(f"{len(panels)} panels do not fit a {rows}x{cols} grid")
    return _render(panels, style, (rows, cols), suptitle, multi=True)


# ------------------------------------------------------------------- the older renderers (dict tables, boxes)


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
