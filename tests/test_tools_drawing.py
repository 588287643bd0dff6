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
