"""Scripted policies: deterministic experts that play the protocol for real (tests, data trajectories, baselines).

A script is a function ``(conversation) -> str`` returning the next assistant turn, reading the tool observations
already in the conversation. :func:`value_lookup` is the built-in expert for "What is the value of X?" on bar charts
with printed values: OCR, then the number printed nearest above X's bar (in X's column).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.policies.base import Policy
from thinkimg.agent.protocol import format_answer, format_call
from thinkimg.tools.text import parse_ocr_text

Script = Callable[[Conversation], str]

_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)?%?$")


def _question(conv: Conversation) -> str:
    user = next(m for m in conv.messages if m["role"] == "user")
    return " ".join(p["text"] for p in user["content"] if p.get("type") == "text")


def _last_tool_text(conv: Conversation, name: str) -> str | None:
    for message in reversed(conv.messages):
        if message["role"] == "tool" and message.get("name") == name:
            return " ".join(p["text"] for p in message["content"] if p.get("type") == "text")
    return None


def value_lookup(conv: Conversation) -> str:
    """Expert for "What is the value of X?": call OCR on img_0, then answer the number printed above X's label."""
    ocr = _last_tool_text(conv, "OCR")
    if ocr is None:
        return format_call("OCR", {"image": "img_0"})
    match = re.search(r"value of (.+?)\??$", _question(conv).strip(), flags=re.IGNORECASE)
    target = match.group(1).strip().strip("'\"") if match else ""
    lines = [(ln.text, *ln.box) for ln in parse_ocr_text(ocr)]
    labels = [ln for ln in lines if ln[0].lower() == target.lower()]
    if not labels:
        return format_answer("unknown")
    _, x0, y0, x1, _ = max(labels, key=lambda ln: ln[2])  # the lowest match: the category label under the axis
    cx = (x0 + x1) / 2  # lines are (text, x0, y0, x1, y1)
    column = [ln for ln in lines if _NUMBER.match(ln[0]) and ln[4] <= y0 and ln[1] - 2 <= cx <= ln[3] + 2]
    if not column:
        return format_answer("unknown")
    best = max(column, key=lambda ln: ln[4])  # the value label sits just above the bar: the lowest number above X
    return format_answer(best[0])


SCRIPTS: dict[str, Script] = {"value_lookup": value_lookup}


class ScriptedPolicy(Policy):
    """Plays a script (a function or the name of a built-in one) for every conversation."""

    def __init__(self, script: Script | str = "value_lookup", protocol: str = "native"):
        if isinstance(script, str):
            if script not in SCRIPTS:
                raise ValueError(f"unknown script {script!r}; built-in scripts: {sorted(SCRIPTS)}")
            script = SCRIPTS[script]
        self.script = script
        self.protocol = protocol

    def generate(self, conversations: list[Conversation], tools: list[dict[str, Any]]) -> list[str]:
        return [self.script(conv) for conv in conversations]
