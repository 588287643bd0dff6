"""Chart tools: the registry, the seven vision tools and Calculate. Importing this package registers them all."""

from thinkimg.tools import text, regions, drawing, calculate  # noqa: F401, I001  (registration; this order is the prompt order)
from thinkimg.tools.base import Tool, ToolArgs, ToolError, ToolResult
from thinkimg.tools.client import InProcessToolClient, ToolClient
from thinkimg.tools.cache import CachedToolClient
from thinkimg.tools.context import ToolContext
from thinkimg.tools.registry import REGISTRY, ToolRegistry, register_tool

__all__ = [
    "REGISTRY",
    "CachedToolClient",
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
