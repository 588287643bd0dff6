"""DrawHorizontalLineByY / DrawVerticalLineByX: pixel-exact lines, nothing else changes, same size."""

from __future__ import annotations

import numpy as np
import pytest

from thinkimg.tools import InProcessToolClient, ToolError
from thinkimg.tools.drawing import LINE_COLORS


@pytest.fixture(scope="module")
def client():
    from thinkimg.config import ToolsConfig

    return InProcessToolClient(ToolsConfig(tools=["DrawHorizontalLineByY", "DrawVerticalLineByX"]))


@pytest.mark.parametrize("y", [0, 57, 479])
def test_horizontal_line_is_on_exact_row_and_nothing_else_changes(client, bar_chart, y):
    before = np.asarray(bar_chart.image)
    result = client.call("DrawHorizontalLineByY", bar_chart.image, {"y": y})
    after = np.asarray(result.images[0])
    assert after.shape == before.shape
    changed_rows = np.nonzero((after != before).any(axis=(1, 2)))[0]
    assert set(changed_rows) <= {y}
    assert (after[y] == LINE_COLORS["red"]).all()
    assert result.data["y"] == y


def test_vertical_line_is_on_exact_column(client, bar_chart):
    before = np.asarray(bar_chart.image)
    result = client.call("DrawVerticalLineByX", bar_chart.image, {"x": 300.4, "color": "blue"})
    after = np.asarray(result.images[0])
    changed_cols = np.nonzero((after != before).any(axis=(0, 2)))[0]
    assert list(changed_cols) == [300]
    assert (after[:, 300] == LINE_COLORS["blue"]).all()
    assert bar_chart.image.getpixel((300, 5)) == tuple(before[5, 300])  # the input is untouched


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"y": 480}, "[0, 479]"),
        ({"y": -1}, "outside the image"),
        ({}, "'y': Field required"),
        ({"y": "twelve"}, "'y'"),
        ({"y": 3, "colour": "red"}, "'colour'"),
        ({"y": 3, "color": "purple"}, "'color'"),
    ],
)
def test_bad_arguments_name_the_argument(client, bar_chart, arguments, fragment):
    with pytest.raises(ToolError) as err:
        client.call("DrawHorizontalLineByY", bar_chart.image, arguments)
    assert fragment in err.value.message
    assert err.value.message.startswith("DrawHorizontalLineByY:")


# --------------------------------------------------------------------------------------------------------------
# The axis reading: what value a line marks


@pytest.fixture(scope="module")
def reading_client():
    from thinkimg.config import ToolsConfig

    return InProcessToolClient(ToolsConfig(tools=["DrawHorizontalLineByY", "DrawVerticalLineByX"]))


def test_a_line_at_a_bars_top_reads_its_value_on_the_axis(reading_client, bar_chart):
    for category, value in bar_chart.table.items():
        top = bar_chart.boxes["bars"][category][1]
        result = reading_client.call("DrawHorizontalLineByY", bar_chart.image, {"y": top})
        assert abs(result.data["reading"] - value) <= 0.02 * 70, (category, result.text)
        assert f"The y axis reads {result.data['reading']:g} at y={top}." in result.text
        assert result.data["ticks"] == sorted(result.data["ticks"], reverse=True)  # read top to bottom


def test_a_vertical_line_reads_the_x_axis_of_horizontal_bars(reading_client):
    from thinkimg.data.render import render_bar_chart

    chart = render_bar_chart({"Oslo": 12.5, "Rome": -4, "Bern": 7}, horizontal=True, title="Change")
    for category, value in chart.table.items():
        x0, _, x1, _ = chart.boxes["bars"][category]
        end = x1 if value >= 0 else x0
        result = reading_client.call("DrawVerticalLineByX", chart.image, {"x": end})
        assert abs(result.data["reading"] - value) <= 0.5, (category, result.text)


def test_no_axis_no_reading(reading_client):
    from PIL import Image

    blank = Image.new("RGB", (200, 100), "white")
    result = reading_client.call("DrawHorizontalLineByY", blank, {"y": 50})
    assert "reading" not in result.data and "No y axis with numeric tick labels was found" in result.text


def test_reading_can_be_turned_off(bar_chart):
    from thinkimg.config import LinesConfig, ToolsConfig

    quiet = InProcessToolClient(ToolsConfig(tools=["DrawHorizontalLineByY"], lines=LinesConfig(read_axis=False)))
    result = quiet.call("DrawHorizontalLineByY", bar_chart.image, {"y": 100})
    assert result.text.endswith(f"({bar_chart.image.width}x{bar_chart.image.height}).") and "reading" not in result.data


def test_read_axis_fits_the_tick_column_and_ignores_other_numbers():
    from thinkimg.tools.axis import read_axis
    from thinkimg.tools.ocr.base import TextLine

    ticks = [TextLine(str(v), (10, 300 - 2 * v - 6, 30, 300 - 2 * v + 6), 1.0) for v in (0, 25, 50, 75, 100)]
    labels = [TextLine("63", (120, 160, 140, 172), 1.0), TextLine("12", (200, 270, 220, 282), 1.0)]
    fit = read_axis(ticks + labels, "y")
    assert fit is not None and len(fit.ticks) == 5 and fit.decimals == 0  # ticks 25 apart: whole numbers
    assert fit.value_at(300 - 2 * 63) == 63.0 and fit.format(-0.2) == "0"
    assert read_axis(labels, "y") is None  # two scattered numbers are no axis
    upside_down = [TextLine(str(v), (10, 100 + 2 * v, 30, 112 + 2 * v), 1.0) for v in (0, 50, 100)]
    assert read_axis(upside_down, "y") is None  # values must grow upwards
