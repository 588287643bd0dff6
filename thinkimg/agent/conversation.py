"""Conversation: the one format of datasets, SFT, GRPO rollouts, eval logs and the viewer.

Messages follow the chat-template convention TRL and transformers use (``system``, ``user``, ``assistant`` with
``tool_calls``, ``tool``); image content is a reference ``{"type": "image", "ref": "img_1"}`` resolved against the
conversation's image store. An assistant tool-call turn has ``content: []`` when it carries no text (with ``""``
the template emits a newline that generation never produces; see KNOWLEDGE.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from thinkimg.images import load_image


@dataclass
class Conversation:
    """Messages plus the images they cite (by id) and free-form metadata (question id, gold answer, ...)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, Image.Image] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, image: Image.Image, question: str, *, system: str | None = None, **meta: Any) -> Conversation:
        """A new conversation: optional system message, then the user's image (``img_0``) and question."""
        conv = cls(images={"img_0": image}, meta=dict(meta))
        if system:
            conv.messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
        conv.messages.append(
            {"role": "user", "content": [{"type": "image", "ref": "img_0"}, {"type": "text", "text": question}]}
        )
        return conv

    def add_image(self, image: Image.Image) -> str:
        """Store a new image under the next id (``img_1``, ``img_2``, ...) and return the id."""
        ref = f"img_{len(self.images)}"
        self.images[ref] = image
        return ref

    def add_assistant(self, text: str, tool_calls: list[dict[str, Any]] | None = None) -> None:
        """An assistant turn: its text (``[]`` content when empty) and the tool calls it made, if any."""
        message: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": text}] if text else []}
        if tool_calls:
            message["tool_calls"] = [
                {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in tool_calls
            ]
        self.messages.append(message)

    def add_tool(self, name: str, text: str, image_ref: str | None = None) -> None:
        """A tool's answer: an optional image (by id) then its text."""
        content: list[dict[str, Any]] = [{"type": "image", "ref": image_ref}] if image_ref else []
        content.append({"type": "text", "text": text})
        self.messages.append({"role": "tool", "name": name, "content": content})

    def resolved(self) -> list[dict[str, Any]]:
        """The messages with every image reference replaced by ``{"type": "image", "image": PIL.Image}``."""
        out = []
        for message in self.messages:
            content = message.get("content")
            if isinstance(content, list):
                content = [
                    {"type": "image", "image": self.images[part["ref"]]} if part.get("type") == "image" else part
                    for part in content
                ]
            out.append({**message, "content": content})
        return out

    def image_refs(self) -> list[str]:
        """Ids of the images the messages show, in order (what a processor receives)."""
        return [
            part["ref"]
            for m in self.messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if part.get("type") == "image"
        ]

    def to_json(self, image_dir: str | Path) -> dict[str, Any]:
        """JSON-able dict; images are written as lossless PNG files under ``image_dir`` and cited by file name."""
        image_dir = Path(image_dir)
        image_dir.mkdir(parents=True, exist_ok=True)
        stem = str(self.meta.get("id", "conversation")).replace("/", "_")
        files = {}
        for ref, img in self.images.items():
            path = image_dir / f"{stem}.{ref}.png"
            if not path.exists():
                img.save(path, format="PNG")
            files[ref] = path.name
        return {"messages": self.messages, "images": files, "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any], image_dir: str | Path) -> Conversation:
        """Inverse of :meth:`to_json` (images read from ``image_dir``; a missing file is an error naming it)."""
        image_dir = Path(image_dir)
        images = {ref: load_image(image_dir / name) for ref, name in data.get("images", {}).items()}
        return cls(messages=data["messages"], images=images, meta=data.get("meta", {}))

    def dumps(self, image_dir: str | Path) -> str:
        return json.dumps(self.to_json(image_dir), ensure_ascii=False)
