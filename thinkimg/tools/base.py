"""What a tool is: typed arguments in, a :class:`ToolResult` out, clear :class:`ToolError` for bad input."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from thinkimg.tools.context import ToolContext


class ToolError(ValueError):
    """A tool refused its input or could not find what was asked; ``argument`` names the culprit."""

    def __init__(self, message: str, *, argument: str | None = None, status: int = 422):
        super().__init__(message)
        self.message = message
        self.argument = argument
        self.status = status


@dataclass
class ToolResult:
    """What a tool returns: text for the model, new images (lossless, full resolution) and structured data."""

    text: str
    images: list[Image.Image] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


class ToolArgs(BaseModel):
    """Base of every tool's arguments. ``image`` cites the image the tool works on (``img_0`` = the input)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    image: str = Field("img_0", description="Id of the image to work on: img_0 is the input, img_1... tool outputs.")


class Tool(ABC):
    """A vision tool. Subclasses set ``name``, ``description``, ``Args`` and implement :meth:`run`.

    One instance serves many calls, possibly from several threads: keep per-call state local.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    Args: ClassVar[type[ToolArgs]] = ToolArgs
    #: True when the result carries a new image (the agent gives it the next image id).
    returns_image: ClassVar[bool] = False

    def __init__(self, context: ToolContext):
        self.context = context

    @abstractmethod
    def run(self, image: Image.Image, args: Any) -> ToolResult:
        """Do the work on a validated ``args`` (an instance of ``Args``)."""

    def parse_args(self, arguments: dict[str, Any]) -> ToolArgs:
        """Validate raw JSON arguments; a :class:`ToolError` names the first bad argument."""
        if not isinstance(arguments, dict):
            raise ToolError(f"{self.name}: arguments must be a JSON object, got {type(arguments).__name__}")
        try:
            return self.Args.model_validate(arguments)
        except ValidationError as exc:
            err = exc.errors()[0]
            arg = ".".join(str(p) for p in err["loc"]) or None
            given = err.get("input")
            shown = "" if err["type"] == "missing" else f" (got {short_repr(given)})"
            extra = f"; allowed arguments: {', '.join(self.Args.model_fields)}" if err["type"] == "extra_forbidden" else ""
            raise ToolError(f"{self.name}: argument {arg!r}: {err['msg']}{shown}{extra}", argument=arg) from None

    def __call__(self, image: Image.Image, arguments: dict[str, Any]) -> ToolResult:
        """Validate ``arguments`` and run on ``image``."""
        return self.execute(image, self.parse_args(arguments))

    def execute(self, image: Image.Image, args: ToolArgs) -> ToolResult:
        """Run on already validated ``args``; every :class:`ToolError` message starts with the tool's name."""
        try:
            result = self.run(image, args)
            self._check_images(result)
            return result
        except ToolError as exc:
            if not exc.message.startswith(f"{self.name}:"):
                exc.message = f"{self.name}: {exc.message}"
                exc.args = (exc.message,)
            raise

    def _check_images(self, result: ToolResult) -> None:
        """Refuse a result image thinner than ``limits.max_aspect_ratio`` (a vision model cannot take it)."""
        limit = self.context.config.limits.max_aspect_ratio
        for out in result.images:
            ratio = max(out.size) / max(1, min(out.size))
            if ratio > limit:
                raise ToolError(f"the result would be a {out.width}x{out.height} px image, sides in ratio "
                                f"{ratio:.0f}:1, over the {limit:g}:1 a vision model takes "
                                "(limits.max_aspect_ratio); choose a region less thin")

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """JSON schema of the arguments, for the prompt's tool block, the server's /tools and TRL."""
        schema = cls.Args.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        return schema

    @classmethod
    def spec(cls) -> dict[str, Any]:
        """Name, description and argument schema."""
        return {
            "name": cls.name,
            "description": cls.description,
            "parameters": cls.json_schema(),
            "returns_image": cls.returns_image,
        }


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that quote user input."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_coordinate(name: str, value: float, size: int, axis: str) -> int:
    """Round a pixel coordinate and check it lies inside ``[0, size - 1]``; the error names the argument and range."""
    if not math.isfinite(value):
        raise ToolError(f"argument {name!r} must be a finite number, got {value!r}", argument=name)
    pixel = int(round(value))
    if not 0 <= pixel < size:
        raise ToolError(
            f"argument {name!r} = {value:g} is outside the image: {axis} must be in [0, {size - 1}] "
            f"for this {size}-pixel {'wide' if axis == 'x' else 'tall'} image",
            argument=name,
        )
    return pixel


def check_box(name: str, box: list[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Validate an ``[x1, y1, x2, y2]`` pixel box against the image; returns it as ints (x2, y2 exclusive)."""
    if len(box) != 4:
        raise ToolError(f"argument {name!r} must be [x1, y1, x2, y2], got {len(box)} numbers", argument=name)
    if not all(math.isfinite(v) for v in box):
        raise ToolError(f"argument {name!r} must hold finite numbers, got {box!r}", argument=name)
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        raise ToolError(
            f"argument {name!r} = {[x1, y1, x2, y2]} is outside the {width}x{height} image: "
            f"need 0 <= x1 < x2 <= {width} and 0 <= y1 < y2 <= {height}",
            argument=name,
        )
    if x2 <= x1 or y2 <= y1:
        raise ToolError(
            f"argument {name!r} = {[x1, y1, x2, y2]} is empty: need x1 < x2 and y1 < y2", argument=name
        )
    return x1, y1, x2, y2
