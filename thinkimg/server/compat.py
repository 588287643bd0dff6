"""OpenThinkIMG's wire format, so the seed project's clients and prompts work against this server unchanged.

Request: ``{"image": <base64>, "param": <string>, "tool"|"model": <name>}`` (or the tool in the URL,
``POST /{tool}/worker_generate``). Response: ``{"text", "error_code", "edited_image"}``.
Point-like parameters are Molmo-style percentages of width and height (``x="41.5" y="62"``); Crop's
``[x1, y1, x2, y2]`` is in pixels, as the seed's crop worker read it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from thinkimg.images import png_base64
from thinkimg.tools import ToolError, ToolResult

#: The seed project's tool names (and lower-case spellings) -> ours.
ALIASES = {
    "ocr": "OCR",
    "point": "Point",
    "molmo": "Point",
    "zoominsubfigure": "ZoomInSubfigure",
    "selectsubplot": "ZoomInSubfigure",
    "crop": "Crop",
    "segmentregionaroundpoint": "SegmentRegionAroundPoint",
    "samaroundpoint": "SegmentRegionAroundPoint",
    "drawhorizontallinebyy": "DrawHorizontalLineByY",
    "drawverticallinebyx": "DrawVerticalLineByX",
    "calculate": "Calculate",
    "calculator": "Calculate",
}

_NUM = r"(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"  # an exponent is read, not dropped: 1e400 is not 1
_X = re.compile(r'\bx\d*\s*=\s*"?\s*' + _NUM)
_Y = re.compile(r'\by\d*\s*=\s*"?\s*' + _NUM)
_BOX = re.compile(r"\[\s*" + r"\s*,\s*".join([_NUM] * 4) + r"\s*\]")


@dataclass
class CompatRequest:
    tool: str
    image: str
    param: str


class CompatError(ToolError):
    """A request in the OpenThinkIMG format that cannot be understood."""


def resolve_tool(name: str, known: list[str]) -> str:
    """Map a seed-project tool name onto ours; unknown names are a 404 naming the known ones."""
    canonical = ALIASES.get(name.replace("_", "").replace("-", "").lower(), name)
    if canonical not in known:
        raise CompatError(f"unknown tool {name!r}; available: {', '.join(known)}", argument="tool", status=404)
    return canonical


def parse_request(payload: dict[str, Any], tool_in_path: str | None, known: list[str]) -> CompatRequest:
    """Validate a ``/worker_generate`` body."""
    name = tool_in_path or payload.get("tool") or payload.get("model")
    if not name or not isinstance(name, str):
        raise CompatError("missing tool name: give 'tool' (or 'model') in the body, or POST /{tool}/worker_generate",
                          argument="tool")
    image = payload.get("image")
    if not isinstance(image, str) or not image:
        raise CompatError("missing 'image' (a base64 string)", argument="image")
    param = payload.get("param", "")
    if param is None:
        param = ""
    if not isinstance(param, str):
        if isinstance(param, (dict, list)):
            param = json.dumps(param)
        else:
            raise CompatError(f"'param' must be a string, got {type(param).__name__}", argument="param")
    return CompatRequest(tool=resolve_tool(name, known), image=image, param=param)


def _percent(param: str, pattern: re.Pattern, axis: str, size: int, required: bool) -> float | None:
    match = pattern.search(param)
    if match is None:
        if required:
            raise CompatError(f"param {param[:80]!r} has no {axis}=\"<percent>\"; expected e.g. x=\"41.5\" y=\"62\"",
                              argument="param")
        return None
    value = float(match.group(1))
    if not 0 <= value <= 100:
        raise CompatError(f"param {axis}={value:g} is not a percentage in [0, 100]", argument="param")
    return min(value / 100 * size, size - 1)


def to_arguments(tool: str, param: str, width: int, height: int) -> dict[str, Any]:
    """Translate the seed's ``param`` string into our pixel arguments for ``tool``."""
    if tool == "OCR":
        return {}
    if tool in ("Point", "ZoomInSubfigure"):
        description = param.strip()
        if not description:
            raise CompatError("param must describe the element, e.g. 'the bar for 2019'", argument="param")
        return {"description": description}
    if tool == "Crop":
        match = _BOX.search(param)
        if match is None:
            raise CompatError(f"param {param[:80]!r} is not a box '[x1, y1, x2, y2]'", argument="param")
        return {"box": [float(v) for v in match.groups()]}
    if tool == "DrawHorizontalLineByY":
        return {"y": _percent(param, _Y, "y", height, True)}
    if tool == "DrawVerticalLineByX":
        return {"x": _percent(param, _X, "x", width, True)}
    if tool == "Calculate":
        if not param.strip():
            raise CompatError("param must be an arithmetic expression, e.g. '257 - 44'", argument="param")
        return {"expression": param}
    if tool == "SegmentRegionAroundPoint":
        return {"x": _percent(param, _X, "x", width, True), "y": _percent(param, _Y, "y", height, True)}
    return {"description": param} if param else {}


def to_response(tool: str, result: ToolResult, width: int, height: int) -> dict[str, Any]:
    """Our result in the seed's response shape; Point answers Molmo-style percent points as the seed's did."""
    text = result.text
    if tool == "Point" and result.data.get("points"):
        pts = [
            f'<point x="{100 * x / width:.1f}" y="{100 * y / height:.1f}" alt="{_attr(m)}">{_attr(m)}</point>'
            for (x, y), m in zip(result.data["points"], result.data.get("matched") or [""] * len(result.data["points"]))
        ]
        text = " ".join(pts)
    return {
        "text": text,
        "error_code": 0,
        "edited_image": png_base64(result.images[0]) if result.images else None,
    }


def error_response(message: str, status: int) -> dict[str, Any]:
    """The seed's response shape for a refused call, plus our structured error."""
    return {"text": message, "error_code": 1, "edited_image": None,
            "error": {"type": "invalid_request", "message": message, "status": status}}


def _attr(text: Any) -> str:
    return str(text).replace('"', "'")
