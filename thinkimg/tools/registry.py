"""The tool registry: one place that knows every tool class, from which prompts, schemas and routes are built."""

from __future__ import annotations

from thinkimg.config import ToolsConfig
from thinkimg.tools.base import Tool
from thinkimg.tools.context import ToolContext


class ToolRegistry:
    """Tool classes by name. Adding a tool = one module with a class decorated by :meth:`register`."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Tool]] = {}

    def register(self, cls: type[Tool]) -> type[Tool]:
        """Class decorator: add ``cls`` under ``cls.name`` (names are unique)."""
        if cls.name in self._classes and self._classes[cls.name] is not cls:
            raise ValueError(f"a tool named {cls.name!r} is already registered ({self._classes[cls.name]})")
        self._classes[cls.name] = cls
        return cls

    def names(self) -> list[str]:
        return list(self._classes)

    def get(self, name: str) -> type[Tool]:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}; known tools: {', '.join(self._classes)}") from None

    def specs(self, names: list[str] | None = None) -> list[dict]:
        """Name, description and JSON schema of each tool (all, or ``names`` in that order)."""
        return [self.get(n).spec() for n in (names or self.names())]

    def build(self, config: ToolsConfig | None = None, context: ToolContext | None = None) -> dict[str, Tool]:
        """Instantiate the tools enabled in ``config`` around one shared :class:`ToolContext`."""
        context = context or ToolContext(config)
        enabled = context.config.tools or self.names()
        unknown = [n for n in enabled if n not in self._classes]
        if unknown:
            raise ValueError(f"unknown tool(s) {unknown} in config; known tools: {', '.join(self._classes)}")
        return {name: self._classes[name](context) for name in enabled}


#: The project's registry; tool modules register into it when :mod:`thinkimg.tools` is imported.
REGISTRY = ToolRegistry()
register_tool = REGISTRY.register
