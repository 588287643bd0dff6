"""The policy interface: given conversations at whatever turn each is, write every one's next assistant turn."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from thinkimg.agent.conversation import Conversation


class Policy(ABC):
    """A model behind the agent runtime. ``protocol`` names how its turns are parsed (``native``/``openthinkimg``)."""

    protocol: str = "native"

    @abstractmethod
    def generate(self, conversations: list[Conversation], tools: list[dict[str, Any]]) -> list[str]:
        """The next assistant turn (raw text) for each conversation; ``tools`` are the JSON schemas it may call
        (an empty list withholds the tools: the no-tool ablation)."""

    def close(self) -> None:
        """Release the model or connections."""
