"""Render trajectories for SFT byte-identically to the prompts GRPO renders.

GRPO renders the tool JSON schemas through the chat template's ``tools=`` argument. TRL's vision collator renders
``messages`` only (it ignores a ``tools`` column), so for SFT the template's tool block travels as the text of the
system message: :func:`tool_system_text` finds that text by rendering probes and checks that it reproduces the
``tools=`` rendering exactly. See KNOWLEDGE.md ("TRL 1.16").
"""

from __future__ import annotations

from typing import Any

from thinkimg.agent.conversation import Conversation

_PROBE = [{"role": "user", "content": [{"type": "text", "text": "?"}]}]
_MARK = "\x00THINKIMG-SYSTEM\x00"


def _system(text: str) -> dict[str, Any]:
    return {"role": "system", "content": [{"type": "text", "text": text}]}


def _content_text(content: Any) -> str:
    """A message's text as the template joins it (a string, or its text parts in order)."""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content or [] if "text" in part)


def render(processor: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """The chat template's text for ``messages`` (no generation prompt); image parts become their pad span."""
    return processor.apply_chat_template(messages, tools=tools or None, tokenize=False)


def tool_system_text(processor: Any, tools: list[dict[str, Any]], system: str | None = None) -> str:
    """The system message text that, rendered without ``tools=``, gives the template's tool block byte for byte.

    ``system`` is the conversation's own system prompt (the template puts it before the tool block). Raises
    ``ValueError`` when the template renders tools in a way no system message can reproduce."""
    head = [_system(system)] if system is not None else []
    with_tools = render(processor, head + _PROBE, tools)
    bare = render(processor, _PROBE)
    wrapped = render(processor, [_system(_MARK)] + _PROBE)
    if not (with_tools.endswith(bare) and wrapped.endswith(bare) and wrapped.count(_MARK) == 1):
        raise ValueError("the chat template does not render tools as a system block before the conversation")
    before, after = wrapped[:-len(bare)].split(_MARK)
    block = with_tools[:-len(bare)]
    if not (block.startswith(before) and block.endswith(after)):
        raise ValueError("the chat template's tool block is not shaped like a system message")
    text = block[len(before):len(block) - len(after)]
    if render(processor, [_system(text)] + _PROBE) != with_tools:
        raise ValueError("the chat template's tool block cannot be reproduced by a system message")
    return text


class SFTRenderer:
    """Turns stored trajectories into the messages TRL's vision collator trains on.

    The first message is a system message carrying the tool block (after the conversation's own system prompt,
    if it has one); images stay inside the messages as PIL images, tool-returned ones included."""

    def __init__(self, processor: Any, tools: list[dict[str, Any]]):
        self.processor = processor
        self.tools = tools
        self._system_texts: dict[str | None, str] = {}

    def system_text(self, system: str | None = None) -> str:
        """:func:`tool_system_text`, computed once per system prompt."""
        if system not in self._system_texts:
            self._system_texts[system] = tool_system_text(self.processor, self.tools, system)
        return self._system_texts[system]

    def with_tools(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` with their system message replaced by (or prefixed with) the tool-carrying one."""
        system = None
        if messages and messages[0]["role"] == "system":
            system, messages = _content_text(messages[0]["content"]), messages[1:]
        return [_system(self.system_text(system))] + list(messages)

    def messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        """The conversation's messages, images resolved to PIL, with the tool block in the system message."""
        return self.with_tools(conversation.resolved())

    def num_tokens(self, messages: list[dict[str, Any]], image_sizes: list[tuple[int, int]]) -> int:
        """Tokens of the training sequence: the rendered text with each image's pad span expanded.

        ``messages`` may cite images by reference (no pixels needed); ``image_sizes`` are their (width, height) in
        order. Assumes a Qwen-VL image processor (``get_number_of_image_patches`` and ``merge_size``)."""
        text = render(self.processor, self.with_tools(messages))
        n = len(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])
        image_processor = self.processor.image_processor
        merge = image_processor.merge_size ** 2
        for width, height in image_sizes:
            n += image_processor.get_number_of_image_patches(height, width, {}) // merge - 1
        return n
