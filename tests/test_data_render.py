"""The data engine's chart renderer: every element's box, anchor and value mapping agree with the drawn pixels.

Charts of every kind (and multi-panel figures) in styles drawn by ``sample_style`` are checked pixel by pixel
(:func:`check_chart`): marks show their colour inside their box and not beyond it, anchors sit on their mark and
at ``value_to_pixel(value)``, texts hold ink and are not clipped, value ticks read as ordered numbers.
"""

from __future__ import annotations

import io
import json
import random
import time

import numpy as np
import pytest

from thinkimg.data import render
from thinkimg.data.render import (
    ELEMENT_KINDS,
    KINDS,
    ChartStyle,
    Element,
    RenderedChart,
    available_fonts,
    render_chart,
    render_panels,
    sample_style,
)
from thinkimg.data.tables import Table
from thinkimg.tools.boxes import intersection

NAMES = ["North", "South", "East", "West", "Central", "Overseas", "Online", "Wholesale", "Retail", "Other"]
LONG_NAMES = ["Northern Territories Ltd", "Southern Cross Holdings", "Eastern Seaboard Group", "Western Plains Co-op",
              "Central Valley Partners", "Overseas Subsidiaries", "Online Marketplace Inc", "Wholesale Distribution"]
YEARS = [str(y) for y in range(2013, 2025)]
SERIES = ["Apples", "Pears", "Plums", "Cherries"]
TOL = 10  # per channel: colours are drawn exactly, anti-aliasing stays at the edges
PANEL_KINDS = ["bar", "hbar", "line", "pie", "stacked_bar", "scatter"]


def make_table(rng: random.Random, kind: str, title: str = "Sales by region", *, negative: bool = False,
               long_names: bool = False) -> Table:
    """A table that suits ``kind``: positive shares for pies, x/y series for scatter, years for lines."""
    if kind == "scatter":
        n = rng.randint(4, 7)
        xs = rng.sample(range(0, 100, 12), n)  # points at least 12 x-units apart
        ys = [round(rng.uniform(10, 90), 1) for _ in range(n)]
        return Table(title=title, categories=rng.sample(NAMES, n), series={"x": xs, "y": ys},
                     meta={"x_label": "Spend (k USD)", "y_label": "Score"})
    n_series = {"grouped_bar": rng.randint(2, 3), "stacked_bar": rng.randint(2, 3), "line": rng.randint(1, 3),
                "pie": 1}.get(kind, rng.choice((1, 1, 2)))
    n_cat = rng.randint(3, 5) if kind == "pie" else rng.randint(3, 8)
    if kind == "line":
        categories = YEARS[:n_cat]
    else:
        categories = rng.sample(LONG_NAMES if long_names else NAMES, n_cat)
    low = -40 if negative else 5
    series = {name: [round(rng.uniform(low, 100), 1) for _ in categories] for name in SERIES[:n_series]}
    if kind == "pie":
        series = {"Share": [rng.randint(8, 40) for _ in categories]}
    return Table(title=title, categories=categories, series=series, unit=rng.choice(["", "million USD", "%"]),
                 category_name=rng.choice(["", "Region", "Year"]))


def charts_of(kind: str, seeds=range(4)) -> list[RenderedChart]:
    """One chart (or multi-panel figure) of ``kind`` per seed, its table and style drawn from the seed."""
    out = []
    for seed in seeds:
        rng = random.Random(seed)
        if kind == "panels":
            sub = rng.choice(PANEL_KINDS)
            n = rng.randint(2, 4)
            tables = [make_table(rng, sub, f"Panel {i + 1}") for i in range(n)]
            style = sample_style(rng, sub, n_series=len(tables[0].series), n_panels=n)
            out.append(render_panels(tables, style, suptitle=rng.choice([None, "Company overview"])))
        else:
            table = make_table(rng, kind, negative=kind in ("bar", "hbar") and seed % 2 == 1,
                               long_names=seed % 3 == 2)
            style = sample_style(rng, kind, n_series=len(table.series), n_categories=len(table.categories))
            out.append(render_chart(table, style))
    return out


def pixels(chart: RenderedChart) -> np.ndarray:
    return np.asarray(chart.image, dtype=np.int16)


def rgb(color: str) -> np.ndarray:
    return np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)


def near(region: np.ndarray, color: str, tol: int = TOL) -> np.ndarray:
    return (np.abs(region - rgb(color)) <= tol).all(axis=-1)


def around(img: np.ndarray, xy: tuple[int, int], r: int = 1) -> np.ndarray:
    x, y = xy
    return img[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1]


def ink(region: np.ndarray, background: str) -> np.ndarray:
    return (np.abs(region - rgb(background)) > 60).any(axis=-1)


def check_edges(img: np.ndarray, e: Element, reach: int) -> None:
    """A mark's box is tight: its colour shows within ``reach`` pixels of each side, and not 2-3 pixels beyond."""
    x0, y0, x1, y1 = e.box
    r = reach
    inside = [img[y0:y1, x0:x0 + r], img[y0:y1, x1 - r:x1], img[y0:y0 + r, x0:x1], img[y1 - r:y1, x0:x1]]
    outside = [img[y0:y1, max(x0 - 3, 0):max(x0 - 1, 0)], img[y0:y1, x1 + 1:x1 + 3],
               img[max(y0 - 3, 0):max(y0 - 1, 0), x0:x1], img[y1 + 1:y1 + 3, x0:x1]]
    assert all(near(strip, e.color).any() for strip in inside), f"colour misses a side of {e}"
    if len({e.color[1:3], e.color[3:5], e.color[5:]}) > 1:  # greys: spines, ticks and text are grey too
        assert not any(near(strip, e.color).any() for strip in outside), f"colour beyond the box of {e}"


def check_chart(chart: RenderedChart) -> None:
    """Every element against the pixels: marks show their colour (and only inside their box), anchors sit on
    their mark, texts hold ink (horizontal ones from side to side) and are not clipped, panels stay apart."""
    img = pixels(chart)
    h, w = img.shape[:2]
    style = ChartStyle.from_dict(chart.meta["style"])
    assert chart.image.size == (w, h) and w <= 800 and h <= 600 and chart.meta["clipped"] == 0
    for e in chart.elements:
        x0, y0, x1, y1 = e.box
        assert e.kind in ELEMENT_KINDS and 0 <= x0 <= x1 <= w and 0 <= y0 <= y1 <= h, e
        if e.anchor is not None:
            assert 0 <= e.anchor[0] < w and 0 <= e.anchor[1] < h, e
        crop = img[y0:y1, x0:x1]
        if e.kind == "bar" and x1 - x0 > 4 and y1 - y0 > 4:
            shown = near(img[y0 + 2:y1 - 2, x0 + 2:x1 - 2], e.color)
            for label in chart.find("value_label", category=e.category, series=e.series, panel=e.panel):
                lx0, ly0, lx1, ly1 = label.box  # a stacked segment's value is printed inside it
                shown[max(ly0 - y0 - 2, 0):max(ly1 - y0 - 2, 0), max(lx0 - x0 - 2, 0):max(lx1 - x0 - 2, 0)] = True
            assert shown.mean() >= 0.6, e
            check_edges(img, e, 3)
        if e.kind == "bar":  # the anchor is the middle of the bar's far end
            (axis,) = [a["value_axis"] for a in chart.meta["axes"] if a["panel"] == e.panel]
            v, c = (0, 1) if axis == "x" else (1, 0)
            far = e.box[v + 2] if (e.value >= 0) == (axis == "x") else e.box[v]
            assert abs(e.anchor[v] - far) <= 1 and abs(e.anchor[c] - (e.box[c] + e.box[c + 2]) / 2) <= 1, e
        elif e.kind == "wedge":
            share = e.value / sum(o.value for o in chart.find("wedge", panel=e.panel))
            if share >= 0.02:  # a thinner sliver holds no pixel of its exact colour
                assert near(around(img, e.anchor, 0), e.color).all(), e
            if share >= 0.1:  # edge lines and anti-aliasing eat more of a thinner wedge's tip
                check_edges(img, e, 12)
        elif e.kind == "point" and style.marker and not near(around(img, e.anchor), e.color).any():
            # another series' line or marker crosses the centre: the rest of the marker shows, or a marker hides it
            others = [o for o in chart.find("point", panel=e.panel) if o is not e and intersection(o.box, e.box)]
            assert near(crop, e.color).any() or others, f"marker not at its anchor: {e}"
        elif e.kind == "legend":
            assert near(crop, e.color).any(), e
        if e.text:
            assert x1 > x0 and y1 > y0, e
            mask = ink(crop, style.background) | (near(crop, e.color) if e.color else False)  # a legend's handle
            assert mask.any(), e
            if len(e.text) >= 3 and x1 - x0 > y1 - y0 and not (e.kind == "xtick" and chart.meta["rotate_ticks"]):
                assert mask[:, :4].any() and mask[:, -4:].any(), f"text box not tight: {e}"
            assert x0 > 0 and y0 > 0 and x1 < w and y1 < h, f"text clipped by the image border: {e}"
    panels = chart.find("panel")
    for i, a in enumerate(panels):
        for b in panels[i + 1:]:
            assert intersection(a.box, b.box) == 0, (a, b)
    check_value_axes(chart)


def check_value_axes(chart: RenderedChart) -> None:
    """Anchors sit at value_to_pixel(value); value ticks are numbers in order along their axis."""
    for entry in chart.meta["axes"]:
        panel, axis = entry["panel"], entry["value_axis"]
        lo, hi = entry["lim"]
        for v in (lo, 0.0, 12.5, hi):
            assert chart.pixel_to_value(chart.value_to_pixel(v, panel), panel) == pytest.approx(v, abs=1e-9 * (hi - lo))
        coord = 0 if axis == "x" else 1
        if chart.meta["kind"] != "stacked_bar":  # a stacked segment's anchor is at its cumulative end
            for e in chart.find("bar", panel=panel) + chart.find("point", panel=panel):
                assert abs(e.anchor[coord] - chart.value_to_pixel(e.value, panel)) <= 2, e
        ticks = chart.find(f"{axis}tick", panel=panel)
        assert len(ticks) >= 2, (panel, ticks)
        numbers = [float(t.text.replace(",", "")) for t in ticks]
        assert numbers == pytest.approx([t.value for t in ticks]), ticks
        order = np.argsort([(t.box[coord] + t.box[coord + 2]) / 2 for t in ticks])
        along = [numbers[i] for i in order]
        assert along == sorted(along, reverse=axis == "y"), ticks  # y grows upwards, pixels downwards
        for t in ticks:
            centre = (t.box[coord] + t.box[coord + 2]) / 2
            assert abs(chart.value_to_pixel(t.value, panel) - centre) <= 3, t


@pytest.mark.parametrize("kind", [*KINDS, "panels"])
def test_elements_agree_with_pixels(kind):
    charts = charts_of(kind, range(5))
    for chart in charts:
        check_chart(chart)
    expected = {"bar": "bar", "hbar": "bar", "grouped_bar": "bar", "stacked_bar": "bar", "line": "point",
                "scatter": "point", "pie": "wedge"}
    for chart in charts:
        if kind != "panels":
            table = chart.table
            marks = chart.find(expected[kind])
            n_series = 1 if kind in ("pie", "scatter") else len(table.series)
            assert len(marks) == len(table.categories) * n_series
            assert chart.find("title")[0].text.replace("\n", " ") == table.title  # long titles wrap
            assert bool(chart.find("legend")) == (not table.single and kind != "scatter"
                                                  or kind == "pie" and chart.meta["style"]["pie_labels"] == "legend")
        else:
            titles = [t.title for t in chart.table]
            assert [e.panel for e in chart.find("panel")] == titles
            assert [e.text.replace("\n", " ") for e in chart.find("title")] == titles
            assert len(chart.find("axes")) == len(titles)
            for panel in chart.find("panel"):
                axes = chart.find("axes", panel=panel.panel)[0].box
                assert intersection(axes, panel.box) == (axes[2] - axes[0]) * (axes[3] - axes[1]) or \
                    chart.meta["kind"] == "pie"


def test_value_labels_read_as_formatted_values():
    rng = random.Random(7)
    table = make_table(rng, "bar")
    style = ChartStyle(kind="bar", value_labels=True, value_format="{:.1f}")
    chart = render_chart(table, style)
    labels = chart.find("value_label")
    assert [e.text for e in labels] == [f"{v:.1f}" for values in table.series.values() for v in values]
    for label in labels:
        (bar,) = chart.find("bar", category=label.category, series=label.series)
        assert label.anchor == bar.anchor and label.box[3] <= bar.box[1] + 1  # printed just above its bar
    pie = Table(title="Share", categories=["A", "B", "C", "D"], series={"Votes": [50, 25, 15, 10]})
    chart = render_chart(pie, ChartStyle(kind="pie", value_format="{:.0f}%", pie_percent=True))
    assert [e.text for e in chart.find("value_label")] == ["50%", "25%", "15%", "10%"]
    assert [e.text for e in chart.find("wedge_label")] == ["A", "B", "C", "D"]
    for label in chart.find("value_label"):
        assert label.anchor == chart.find("wedge", category=label.category)[0].anchor
    chart = render_chart(pie, ChartStyle(kind="pie", value_format="{:g}", pie_percent=False, pie_labels="legend"))
    assert [e.text for e in chart.find("value_label")] == ["50", "25", "15", "10"]
    assert [(e.category, e.text) for e in chart.find("legend")] == [(c, c) for c in pie.categories]


def test_negative_bars_anchor_at_their_far_end():
    table = Table(title="Profit", categories=["Q1", "Q2", "Q3", "Q4"], series={"Profit": [12.0, -8.0, 5.5, -3.0]},
                  unit="million USD")
    for kind in ("bar", "hbar"):
        chart = render_chart(table, ChartStyle(kind=kind, value_labels=True))
        check_chart(chart)
        axis = 0 if kind == "hbar" else 1
        zero = chart.value_to_pixel(0.0)
        for bar in chart.find("bar"):
            far = bar.anchor[axis]
            assert abs(far - chart.value_to_pixel(bar.value)) <= 2
            grows_up = (far < zero) if axis == 1 else (far > zero)
            assert grows_up == (bar.value > 0), bar
        assert chart.find("ylabel" if kind == "bar" else "xlabel")[0].text == "Profit (million USD)"


def test_long_names_are_rotated_and_never_clipped():
    table = Table(title="Revenue by subsidiary", categories=LONG_NAMES,
                  series={"Revenue": [41, 27, 58, 12, 33, 8, 61, 19]}, unit="million USD", category_name="Subsidiary")
    for size, dpi in (((4.0, 3.0), 72), ((7.0, 5.0), 110)):
        style = ChartStyle(kind="bar", width_in=size[0], height_in=size[1], dpi=dpi, rotate_ticks=0)
        chart = render_chart(table, style)
        check_chart(chart)
        assert chart.meta["rotate_ticks"] > 0  # 24-character names cannot sit side by side
        ticks = chart.find("xtick")
        assert [t.category for t in ticks] == LONG_NAMES and [t.text for t in ticks] == LONG_NAMES
    chart = render_chart(table, ChartStyle(kind="hbar", width_in=5.0, height_in=3.5, dpi=90))
    check_chart(chart)
    assert [t.text for t in chart.find("ytick")] == LONG_NAMES


def test_scatter_names_points_and_maps_both_axes():
    table = Table(title="Spend and score", categories=["Ann", "Bob", "Cid"], series={"x": [10, 50, 90],
                  "y": [20, 80, 40]}, meta={"x_label": "Spend", "y_label": "Score"})
    chart = render_chart(table, ChartStyle(kind="scatter", point_labels=True))
    check_chart(chart)
    assert [e.text for e in chart.find("point_label")] == ["Ann", "Bob", "Cid"]
    for point, x in zip(chart.find("point"), table.series["x"]):
        assert abs(point.anchor[0] - chart.value_to_pixel(x, axis="x")) <= 2
    assert chart.find("xlabel")[0].text == "Spend" and chart.find("ylabel")[0].text == "Score"
    with pytest.raises(ValueError, match="'x' and 'y'"):
        render_chart(Table(title="t", categories=["a"], series={"v": [1]}), ChartStyle(kind="scatter"))


def test_legend_entries_name_series_with_their_colours():
    table = Table(title="Fruit", categories=YEARS[:4], series={s: [3, 5, 4, 6] for s in SERIES[:3]})
    for loc in ("upper right", "upper left", "upper center", "outside right", "outside top"):
        chart = render_chart(table, ChartStyle(kind="grouped_bar", legend_loc=loc, value_labels=True))
        check_chart(chart)
        entries = chart.find("legend")
        assert [e.series for e in entries] == SERIES[:3] == [e.text for e in entries]
        assert [e.color for e in entries] == chart.meta["style"]["palette"][:3]
        for entry in entries:  # the legend covers no bar and no printed value
            for e in chart.find("bar") + chart.find("value_label"):
                assert intersection(entry.box, e.box) == 0, (loc, entry, e)


def test_layout_is_matplotlibs_tight_layout(monkeypatch):
    """The renderer lays figures out itself, measuring each decoration once: same subplot parameters as
    ``Figure.tight_layout`` from the same state, for every kind and multi-panel grids."""
    own, gaps = render._tight_layout, []
    names = ("left", "right", "bottom", "top", "wspace", "hspace")

    def both(fig, plots, suptitle, renderer):
        before = {k: getattr(fig.subplotpars, k) for k in names}
        own(fig, plots, suptitle, renderer)
        ours = {k: getattr(fig.subplotpars, k) for k in names}
        fig.subplots_adjust(**before)
        fig.tight_layout()
        gaps.append(max(abs(ours[k] - getattr(fig.subplotpars, k)) for k in names))

    monkeypatch.setattr(render, "_tight_layout", both)
    for kind in [*KINDS, "panels"]:
        charts_of(kind, range(4))
    assert len(gaps) >= 32 and max(gaps) < 1e-9


def test_render_is_deterministic():
    for kind in ("grouped_bar", "line", "pie", "panels"):
        first, second = charts_of(kind, [3])[0], charts_of(kind, [3])[0]
        assert first.image.tobytes() == second.image.tobytes()
        assert first.metadata() == second.metadata()


def test_sample_style_is_varied_and_valid():
    rng = random.Random(0)
    styles = [sample_style(rng, KINDS[i % len(KINDS)], n_series=1 + i % 3) for i in range(30)]
    assert {s.kind for s in styles} == set(KINDS)
    assert len({s.font_family for s in styles}) >= 3 and {s.font_family for s in styles} <= set(available_fonts())
    assert len({tuple(s.palette) for s in styles}) >= 3
    assert len({(s.width_in, s.height_in, s.dpi) for s in styles}) >= 20
    for s in styles + [sample_style(rng, "bar", n_panels=4) for _ in range(10)]:
        w, h = int(s.width_in * s.dpi), int(s.height_in * s.dpi)
        assert 280 <= w <= 800 and 200 <= h <= 600, s
        assert ChartStyle.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(ValueError, match="legend_loc"):
        ChartStyle(kind="hbar", legend_loc="upper left")  # would cover the bars' start
    with pytest.raises(ValueError, match="kind"):
        sample_style(rng, "radar")


def test_metadata_round_trips_through_json():
    for chart in charts_of("panels", [1]) + charts_of("hbar", [2]) + charts_of("pie", [0]):
        data = json.loads(json.dumps(chart.metadata()))
        assert data["size"] == list(chart.image.size) and data["kind"] == chart.meta["kind"]
        back = RenderedChart.from_metadata(data, image=chart.image)
        assert back.elements == chart.elements and back.meta == json.loads(json.dumps(chart.meta))
        assert back.table == chart.table
        for entry in chart.meta["axes"]:
            assert back.value_to_pixel(7.0, entry["panel"]) == chart.value_to_pixel(7.0, entry["panel"])


def test_find_filters_and_value_axis_errors():
    chart = charts_of("panels", [1])[0]
    first = chart.table[0].title
    assert all(e.panel == first for e in chart.find("xtick", panel=first))
    assert chart.find(text=first)[0].kind == "title"
    with pytest.raises(ValueError, match="unknown element filters"):
        chart.find("bar", colour="#ffffff")
    if chart.meta["axes"]:
        with pytest.raises(ValueError, match="name the panel"):
            chart.value_to_pixel(1.0)
    pie = render_chart(make_table(random.Random(0), "pie"), ChartStyle(kind="pie"))
    with pytest.raises(ValueError, match="no single value axis"):
        pie.value_to_pixel(1.0)
    assert Element.from_dict(pie.elements[0].to_dict()) == pie.elements[0]


def test_render_panels_checks_its_tables():
    rng = random.Random(0)
    a, b = make_table(rng, "bar", "Same"), make_table(rng, "bar", "Same")
    with pytest.raises(ValueError, match="distinct"):
        render_panels([a, b], ChartStyle(kind="bar"))
    with pytest.raises(ValueError, match="distinct"):
        render_panels([a], ChartStyle(kind="bar"))
    b.title = "Other"
    with pytest.raises(ValueError, match="do not fit"):
        render_panels([a, b, make_table(rng, "bar", "Third")], ChartStyle(kind="bar"), grid=(1, 2))
    with pytest.raises(ValueError, match="pie"):
        render_chart(Table(title="t", categories=["a", "b"], series={"v": [1, -1]}), ChartStyle(kind="pie"))


def test_render_speed():
    """Single-process render time per kind (image in memory plus a PNG encode), printed with -s."""
    rng = random.Random(11)
    report = {}
    for kind in KINDS:
        cases = []
        for _ in range(4):
            table = make_table(rng, kind)
            cases.append((table, sample_style(rng, kind, n_series=len(table.series),
                                              n_categories=len(table.categories))))
        start = time.perf_counter()
        for table, style in cases:
            render_chart(table, style).image.save(io.BytesIO(), format="PNG")
        report[kind] = (time.perf_counter() - start) / len(cases) * 1000
    print("render ms/chart:", {k: round(v) for k, v in report.items()})
    assert sum(report.values()) / len(report) < 400  # ~80 ms on one CPU core; loose for busy machines
