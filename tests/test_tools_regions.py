"""Crop, ZoomInSubfigure, SegmentRegionAroundPoint and panel detection, against charts with ground-truth boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from thinkimg.config import LimitsConfig, ToolsConfig
from thinkimg.data.render import render_bar_chart, render_panel_figure, render_pie_chart
from thinkimg.tools import InProcessToolClient, ToolContext, ToolError
from thinkimg.tools.boxes import iou
from thinkimg.tools.layout import detect_panels

TOOLS = ["Crop", "ZoomInSubfigure", "SegmentRegionAroundPoint"]
PANEL_TITLES = ["Revenue", "Costs", "Profit", "Staff"]
TABLES = [("Revenue", {"Q1": 12, "Q2": 18, "Q3": 15}), ("Costs", {"Q1": 9, "Q2": 7, "Q3": 8}),
          ("Profit", {"Q1": 3, "Q2": 11, "Q3": 7}), ("Staff", {"Q1": 40, "Q2": 44, "Q3": 41}),
          ("Users", {"Q1": 5, "Q2": 9, "Q3": 13}), ("Churn", {"Q1": 2, "Q2": 3, "Q3": 1})]




@pytest.fixture(scope="module")
def client():
    return InProcessToolClient(ToolsConfig(tools=TOOLS))


@pytest.fixture(scope="module")
def ocr_available() -> bool:
    try:
        ToolContext().ocr_backend  # noqa: B018  (builds the configured backend)
    except Exception as exc:  # any missing optional dependency or model file
        pytest.skip(f"OCR backend unavailable: {exc}")
    return True


def content_box(image: Image.Image):
    """Box of the non-white pixels."""
    ink = (np.asarray(image) < 230).any(axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def downscaled_matches(out: Image.Image, image: Image.Image, box) -> float:
    """Mean absolute pixel difference between ``out`` shrunk back to the box size and the box of ``image``."""
    w, h = box[2] - box[0], box[3] - box[1]
    back = np.asarray(out.resize((w, h), Image.Resampling.LANCZOS), np.int16)
    return float(np.abs(back - np.asarray(image.crop(tuple(box)), np.int16)).mean())


# ---------------------------------------------------------------------------------------------------------- Crop


def test_crop_large_box_is_exact_pixels(client, bar_chart):
    box = [100, 20, 600, 470]  # short side 450 >= 448: no upscale
    result = client.call("Crop", bar_chart.image, {"box": box})
    out = result.images[0]
    assert result.data == {"box": box, "scale": 1.0, "size": [500, 450]}
    assert np.array_equal(np.asarray(out), np.asarray(bar_chart.image)[20:470, 100:600])


def test_crop_small_box_is_upscaled_as_documented(client, bar_chart):
    box = [88, 150, 248, 262]  # 160 x 112: scale 448 / 112 = 4.0
    result = client.call("Crop", bar_chart.image, {"box": box})
    out = result.images[0]
    assert result.data["scale"] == pytest.approx(4.0)
    assert out.size == (640, 448) and result.data["size"] == [640, 448]
    assert downscaled_matches(out, bar_chart.image, box) < 3.0
    # A point of the crop maps back to the original: the bar's top-left corner.
    bar = bar_chart.boxes["bars"]["2019"]
    u, v = (bar[0] - box[0]) * 4, (bar[1] - box[1]) * 4
    s = result.data["scale"]
    assert (box[0] + u / s, box[1] + v / s) == (bar[0], bar[1])
    assert "448" in client.specs()[0]["description"] and "LANCZOS" in client.specs()[0]["description"]


def test_crop_upscale_is_capped(client, bar_chart):
    result = client.call("Crop", bar_chart.image, {"box": [0, 0, 40, 30]})  # 448 / 30 > 4: capped at 4
    assert result.data["scale"] == 4.0 and result.images[0].size == (160, 120)
    result = client.call("Crop", bar_chart.image, {"box": [0, 0, 300, 200]})
    assert result.data["scale"] == pytest.approx(448 / 200) and result.images[0].size == (672, 448)


def test_crop_output_pixels_are_limited():
    small = InProcessToolClient(ToolsConfig(tools=["Crop"], limits=LimitsConfig(max_image_pixels=100_000)))
    img = Image.new("RGB", (400, 400), (200, 30, 30))
    result = small.call("Crop", img, {"box": [0, 0, 100, 100]})
    w, h = result.images[0].size
    assert w * h <= 100_000 and result.data["scale"] == pytest.approx(w / 100, abs=0.01)


@pytest.mark.parametrize(
    "box, fragment",
    [
        ([10, 10, 10, 50], "is empty"),
        ([50, 10, 20, 40], "is empty"),
        ([0, 0, 641, 100], "outside the 640x480 image"),
        ([-5, 0, 100, 100], "outside"),
        ([1, 2, 3], "got 3 numbers"),
        ([float("nan"), 0, 10, 10], "finite"),
        ([0, 0, float("inf"), 10], "finite"),
        ("0,0,10,10", "'box'"),
    ],
)
def test_crop_bad_boxes_name_the_argument(client, bar_chart, box, fragment):
    with pytest.raises(ToolError) as err:
        client.call("Crop", bar_chart.image, {"box": box})
    assert fragment in err.value.message
    assert "'box" in err.value.message and err.value.message.startswith("Crop:")
    assert (err.value.argument or "").startswith("box")


def test_a_result_thinner_than_a_vision_model_takes_is_refused(client, bar_chart):
    # a 262 x 1 box became a 1048 x 4 crop, on which Qwen2-VL's processor raised mid-rollout and stopped GRPO
    with pytest.raises(ToolError) as err:
        client.call("Crop", bar_chart.image, {"box": [0, 100, 262, 101]})
    assert err.value.message.startswith("Crop: the result would be a 1048x4 px image, sides in ratio 262:1")
    assert "limits.max_aspect_ratio" in err.value.message
    assert client.call("Crop", bar_chart.image, {"box": [0, 100, 262, 103]}).images[0].size == (1048, 12)
    loose = InProcessToolClient(ToolsConfig(tools=["Crop"], limits=LimitsConfig(max_aspect_ratio=300)))
    assert loose.call("Crop", bar_chart.image, {"box": [0, 100, 262, 101]}).images[0].size == (1048, 4)


def test_crop_missing_box(client, bar_chart):
    with pytest.raises(ToolError, match="'box': Field required"):
        client.call("Crop", bar_chart.image, {})


# ------------------------------------------------------------------------------------------------ panel detection


def _figures():
    return {
        "2x1": lambda: render_panel_figure(TABLES[:2], grid=(2, 1), size=(6, 7)),
        "1x2": lambda: render_panel_figure(TABLES[:2], grid=(1, 2), size=(9, 4)),
        "2x2 with suptitle": lambda: render_panel_figure(TABLES[:4], suptitle="Company overview 2024"),
        "3 panels in 2x2": lambda: render_panel_figure(TABLES[:3]),
        "1x3 open axes": lambda: render_panel_figure(TABLES[:3], grid=(1, 3), size=(12, 4), spines="left-bottom"),
        "2x2 horizontal bars": lambda: render_panel_figure(TABLES[:4], kind="hbar", spines="left-bottom"),
        "2x3 lines": lambda: render_panel_figure(TABLES[:6], grid=(2, 3), size=(12, 7), kind="line"),
        "2x2 pies": lambda: render_panel_figure(TABLES[:4], kind="pie", size=(8, 8)),
        "1x3 pies": lambda: render_panel_figure(TABLES[:3], grid=(1, 3), kind="pie", size=(12, 4.5)),
        "2x2 without axis lines": lambda: render_panel_figure(TABLES[:4], spines="none"),
        "2x2 large (downscaled)": lambda: render_panel_figure(TABLES[:4], size=(9, 7), dpi=250),
    }


@pytest.mark.parametrize("name", list(_figures()))
def test_detect_panels_finds_each_panel(name):
    chart = _figures()[name]()
    panels = detect_panels(chart.image)
    truth = list(chart.boxes["panels"].values())
    assert len(panels) == len(truth), [p.box for p in panels]
    for panel, gt in zip(panels, truth):  # reading order = the renderer's row-major order
        assert iou(panel.box, gt) >= 0.9, (panel.box, gt)


def test_detect_panels_single_charts():
    assert len(detect_panels(render_pie_chart({"A": 30, "B": 20, "C": 50}, title="Share").image)) == 1
    chart = render_bar_chart({"a": 1, "b": 3}, title="One chart", xlabel="x", ylabel="y")
    (panel,) = detect_panels(chart.image)  # a single chart: everything drawn, title and axis labels included
    assert iou(panel.box, content_box(chart.image)) > 0.97
    assert detect_panels(Image.new("RGB", (300, 200), "white")) == []


def test_detect_panels_on_real_charts(real_charts):
    paths = sorted((real_charts / "images").glob("*.png"))
    counts = []
    for path in paths:
        img = Image.open(path).convert("RGB")
        panels = detect_panels(img)
        assert panels, path.name
        for p in panels:
            assert 0 <= p.box[0] < p.box[2] <= img.width and 0 <= p.box[1] < p.box[3] <= img.height
        counts.append(len(panels))
    # These are single charts (text blocks, notes and stacked bar rows are not panels).
    assert sum(c == 1 for c in counts) >= 0.9 * len(counts), counts


# ------------------------------------------------------------------------------------------------ ZoomInSubfigure


@pytest.mark.parametrize(
    "description, title",
    [
        ("top left", "Revenue"),
        ("the upper right panel", "Costs"),
        ("bottom-left subplot", "Profit"),
        ("bottom right", "Staff"),
        ("panel 2", "Costs"),
        ("(c)", "Profit"),
        ("the third subplot", "Profit"),
        ("last panel", "Staff"),
        ("first", "Revenue"),
    ],
)
def test_zoom_by_position(client, panel_figure, description, title):
    result = client.call("ZoomInSubfigure", panel_figure.image, {"description": description})
    gt = panel_figure.boxes["panels"][title]
    box = result.data["box"]
    assert iou(box, gt) >= 0.9, (box, gt)
    assert result.data["panel_index"] == PANEL_TITLES.index(title)
    assert len(result.data["panels"]) == 4
    out = result.images[0]
    s = result.data["scale"]
    w, h = box[2] - box[0], box[3] - box[1]
    assert s == pytest.approx(min(max(448 / min(w, h), 1.0), 4.0))
    assert out.size == (round(w * s), round(h * s))
    assert downscaled_matches(out, panel_figure.image, box) < 3.0


@pytest.mark.parametrize(
    "description, title",
    [("Revenue", "Revenue"), ("the Costs panel", "Costs"), ("profit chart", "Profit"),
     ("subplot titled 'Staff'", "Staff"), ("the top panel about costs", "Costs")],
)
def test_zoom_by_title(client, panel_figure, ocr_available, description, title):
    result = client.call("ZoomInSubfigure", panel_figure.image, {"description": description})
    assert iou(result.data["box"], panel_figure.boxes["panels"][title]) >= 0.9
    assert result.data["title"] == title
    assert title in result.text


def test_zoom_unknown_title_lists_the_panels(client, panel_figure, ocr_available):
    with pytest.raises(ToolError) as err:
        client.call("ZoomInSubfigure", panel_figure.image, {"description": "the Headcount panel"})
    assert err.value.argument == "description"
    for title in PANEL_TITLES:
        assert repr(title) in err.value.message


def test_zoom_position_that_does_not_exist(client):
    chart = render_panel_figure(TABLES[:2], grid=(1, 2), size=(9, 4))
    with pytest.raises(ToolError, match="no panel matches") as err:
        client.call("ZoomInSubfigure", chart.image, {"description": "panel 5"})
    assert "2 panels" in err.value.message


@pytest.mark.parametrize("description", ["", "   "])
def test_zoom_empty_description(client, panel_figure, description):
    with pytest.raises(ToolError) as err:
        client.call("ZoomInSubfigure", panel_figure.image, {"description": description})
    assert err.value.argument == "description"


def test_zoom_single_chart_and_blank_image(client, bar_chart):
    result = client.call("ZoomInSubfigure", bar_chart.image, {"description": "the sales chart"})
    assert iou(result.data["box"], content_box(bar_chart.image)) > 0.95  # the crop keeps a 4-px margin
    assert "single panel" in result.text
    with pytest.raises(ToolError, match="blank"):
        client.call("ZoomInSubfigure", Image.new("RGB", (200, 100), "white"), {"description": "top"})


# ------------------------------------------------------------------------------------------ SegmentRegionAroundPoint


def _segment_cases(chart, horizontal: bool):
    for cat, bar in chart.boxes["bars"].items():
        cx, cy = (bar[0] + bar[2]) // 2, (bar[1] + bar[3]) // 2
        yield cat, bar, (cx, cy)  # inside
        yield cat, bar, (cx, bar[1]) if not horizontal else (bar[2] - 1, cy)  # on the anti-aliased end
        label = chart.boxes["values"][cat]
        yield cat, bar, ((label[0] + label[2]) // 2, (label[1] + label[3]) // 2)  # on its value label


@pytest.mark.parametrize("horizontal", [False, True])
def test_segment_bars(client, horizontal):
    chart = render_bar_chart({"North": 41.0, "South": 27.5, "East": 58.0, "West": 63.0, "Other": 8.0},
                             horizontal=horizontal, title="Sales", color=["#4C72B0", "#DD8452", "#55A868",
                                                                          "#222222", "#C44E52"])
    before = np.asarray(chart.image)
    n = 0
    for cat, bar, (x, y) in _segment_cases(chart, horizontal):
        result = client.call("SegmentRegionAroundPoint", chart.image, {"x": x, "y": y})
        assert iou(result.data["box"], bar) >= 0.9, (cat, (x, y), result.data["box"], bar)
        n += 1
    assert n == 15
    out = np.asarray(result.images[0])
    assert out.shape == before.shape
    x0, y0, x1, y1 = result.data["box"]
    outside = np.ones(before.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], before[outside])  # drawn inside the region's box only
    assert (out[y0:y1, x0:x1] != before[y0:y1, x0:x1]).any(axis=2).mean() > 0.9
    assert result.data["area"] > 0 and len(result.data["color"]) == 3


def test_segment_pie_wedges(client):
    table = {"A": 35.0, "B": 25.0, "C": 20.0, "D": 20.0}
    chart = render_pie_chart(table, title="Share")
    wedges = chart.boxes["wedges"]
    x0, y0 = min(b[0] for b in wedges.values()), min(b[1] for b in wedges.values())
    x1, y1 = max(b[2] for b in wedges.values()), max(b[3] for b in wedges.values())
    cx, cy, radius = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    total, start = sum(table.values()), 90.0
    for label, value in table.items():  # matplotlib draws wedges counter-clockwise from startangle
        mid = math.radians(start + 180.0 * value / total)
        start += 360.0 * value / total
        x, y = cx + 0.6 * radius * math.cos(mid), cy - 0.6 * radius * math.sin(mid)
        result = client.call("SegmentRegionAroundPoint", chart.image, {"x": x, "y": y})
        assert iou(result.data["box"], wedges[label]) >= 0.9, (label, result.data["box"], wedges[label])


def test_segment_background_is_an_error_with_a_hint(client, bar_chart):
    with pytest.raises(ToolError) as err:
        client.call("SegmentRegionAroundPoint", bar_chart.image, {"x": 3, "y": 3})
    assert "background" in err.value.message
    bar = bar_chart.boxes["bars"]["2021"]
    with pytest.raises(ToolError) as err:  # white space just left of a bar: the hint names that bar
        client.call("SegmentRegionAroundPoint", bar_chart.image, {"x": bar[0] - 12, "y": (bar[1] + bar[3]) // 2})
    assert "background" in err.value.message and "nearest coloured region" in err.value.message
    assert str(list(bar)) in err.value.message


@pytest.mark.parametrize(
    "arguments, fragment",
    [({"x": 640, "y": 10}, "'x'"), ({"x": 5, "y": -1}, "'y'"), ({"x": float("nan"), "y": 1}, "'x'"), ({"x": 5}, "'y'")],
)
def test_segment_bad_coordinates(client, bar_chart, arguments, fragment):
    with pytest.raises(ToolError) as err:
        client.call("SegmentRegionAroundPoint", bar_chart.image, arguments)
    assert fragment in err.value.message
