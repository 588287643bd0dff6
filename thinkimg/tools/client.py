"""ToolClient: the one interface code above the tools uses to call them, in-process or over HTTP."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from PIL import Image

from thinkimg.config import ToolsConfig
from thinkimg.tools.base import Tool, ToolError, ToolResult
from thinkimg.tools.registry import REGISTRY


class ToolClient(ABC):
    """Calls tools by name. Implementations: :class:`InProcessToolClient` and
    :class:`thinkimg.server.client.HTTPToolClient`. Both raise :class:`ToolError` for a refused call."""

    @abstractmethod
    def call(self, name: str, image: Image.Image, arguments: dict[str, Any] | None = None) -> ToolResult:
        """Run tool ``name`` on ``image`` with JSON ``arguments`` (``image`` key, if any, is the image's id)."""

    @abstractmethod
    def specs(self) -> list[dict[str, Any]]:
        """Name, description and JSON schema of each available tool."""

    def close(self) -> None:
        """Release connections or engines."""

    def __enter__(self) -> ToolClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessToolClient(ToolClient):
    """Runs the tools in this process (tests, small runs, data curation on one machine)."""

    def __init__(self, config: ToolsConfig | None = None, tools: dict[str, Tool] | None = None):
        self.tools = tools if tools is not None else REGISTRY.build(config)

    def call(self, name: str, image: Image.Image, arguments: dict[str, Any] | None = None) -> ToolResult:
        tool = self.tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(self.tools)}", argument="name", status=404)
        return tool(image, dict(arguments or {}))

    def specs(self) -> list[dict[str, Any]]:
        return [tool.spec() for tool in self.tools.values()]
