"""DrawHorizontalLineByY and DrawVerticalLineByX: pixel-exact lines on a same-size copy of the image.

Like a ruler laid across the chart, each also says what value the line marks on the value axis it crosses, read
from that axis' tick labels (OCR, then a straight fit; :mod:`thinkimg.tools.axis`) when the image has one
(``lines.read_axis`` in the tools config)."""

from __future__ import annotations

from typing import Literal

from PIL import Image
from pydantic import Field

from thinkimg.tools.axis import read_axis
from thinkimg.tools.base import Tool, ToolArgs, ToolResult, check_coordinate
from thinkimg.tools.registry import register_tool

#: Line colours by name (RGB). Red is the default: it rarely appears in chart palettes' greys.
LINE_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 75),
    "blue": (0, 90, 255),
    "green": (0, 170, 60),
    "black": (0, 0, 0),
    "magenta": (220, 0, 220),
}


class HorizontalLineArgs(ToolArgs):
    y: float = Field(description="Pixel row of the line (0 = top), rounded to the nearest integer.")
    color: Literal["red", "blue", "green", "black", "magenta"] = Field("red", description="Line colour.")


class VerticalLineArgs(ToolArgs):
    x: float = Field(description="Pixel column of the line (0 = left), rounded to the nearest integer.")
    color: Literal["red", "blue", "green", "black", "magenta"] = Field("red", description="Line colour.")


def axis_reading(tool: Tool, image: Image.Image, axis: str, pos: int) -> tuple[str, dict]:
    """What the line at ``pos`` marks on the value axis (" The y axis reads 4.8 at y=66.") and its data; nothing
    when ``lines.read_axis`` is off."""
    if not tool.context.config.lines.read_axis:
        return "", {}
    fit = read_axis(tool.context.ocr(image), axis)
    if fit is None:
        return f" No {axis} axis with numeric tick labels was found to read.", {}
    value = fit.value_at(pos)
    return (f" The {axis} axis reads {fit.format(value)} at {axis}={pos}.",
            {"reading": value, "ticks": [v for _, v in fit.ticks]})


def _draw_line(image: Image.Image, axis: str, pos: int, color: str) -> Image.Image:
    out = image.copy()
    rgb = LINE_COLORS[color]
    if axis == "y":
        out.paste(rgb, (0, pos, out.width, pos + 1))
    else:
        out.paste(rgb, (pos, 0, pos + 1, out.height))
    return out


@register_tool
class DrawHorizontalLineByY(Tool):
    name = "DrawHorizontalLineByY"
    description = (
        "Draw a one-pixel horizontal line across the whole image at pixel row y, to compare heights "
        "against axis ticks; says what the y axis reads there. Returns a new image of the same size."
    )
    Args = HorizontalLineArgs
    returns_image = True

    def run(self, image: Image.Image, args: HorizontalLineArgs) -> ToolResult:
        y = check_coordinate("y", args.y, image.height, "y")
        out = _draw_line(image, "y", y, args.color)
        reading, data = axis_reading(self, image, "y", y)
        return ToolResult(
            text=f"Drew a horizontal {args.color} line at y={y} on {args.image} ({image.width}x{image.height})."
                 + reading,
            images=[out],
            data={"y": y, "color": args.color, **data},
        )


@register_tool
class DrawVerticalLineByX(Tool):
    name = "DrawVerticalLineByX"
    description = (
        "Draw a one-pixel vertical line across the whole image at pixel column x, to read which value or "
        "category lies at that position; says what the x axis reads there. Returns a new image of the same size."
    )
    Args = VerticalLineArgs
    returns_image = True

    def run(self, image: Image.Image, args: VerticalLineArgs) -> ToolResult:
        x = check_coordinate("x", args.x, image.width, "x")
        out = _draw_line(image, "x", x, args.color)
        reading, data = axis_reading(self, image, "x", x)
        return ToolResult(
            text=f"Drew a vertical {args.color} line at x={x} on {args.image} ({image.width}x{image.height})."
                 + reading,
            images=[out],
            data={"x": x, "color": args.color, **data},
        )
