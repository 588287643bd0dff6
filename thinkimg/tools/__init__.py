"""Vision tools: the registry and the seven chart tools. Importing this package registers them all."""

from thinkimg.tools import drawing, regions, text  # noqa: F401  (registration side effect)
from thinkimg.tools.base import Tool, ToolArgs, ToolError, ToolResult
from thinkimg.tools.client import InProcessToolClient, ToolClient
from thinkimg.tools.context import ToolContext
from thinkimg.tools.registry import REGISTRY, ToolRegistry, register_tool

__all__ = [
    "REGISTRY",
    "InProcessToolClient",
    "Tool",
    "ToolArgs",
    "ToolClient",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "register_tool",
]
