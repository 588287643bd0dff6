"""Label randomisation: a trajectory with the words it copies replaced by made-up ones, consistently everywhere.

A trajectory answers from what the tools show: the label of the question goes into a call ("the value label of
Ethiopia"), the text a tool quotes goes into the answer. A tiny model trained on a few thousand trajectories learns
the labels and answers it saw instead of copying them (held-out charts have other labels). Replacing each copied
string by a random one of the same shape, in the question, the calls, the tool outputs and the answer alike, keeps
the trajectory correct while making copying the only way to predict it. The warm start (:mod:`thinkimg.train.pretrain`)
reads trajectories relabelled afresh every time (text only: the images would still show the old labels).

What is replaced: the category labels and panel titles the question's plan names, the texts Point quotes and the
answer when it is one of these, and the answer's number when the answer copies a number a tool read (a lookup).
Numbers the answer depends on without copying them (a comparison of two values) are kept.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, Callable, Optional

from thinkimg.data.experts import POINT_QUOTE

_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_VOWELS = "aeiou"
#: Plan keys that are placeholders, not labels.
_PLACEHOLDERS = {"bar", "title"}
#: What made-up words are made of: a maker ``(rng, the word it replaces) -> word`` (e.g. :class:`PieceWords`), or
#: None (random letters).
Words = Optional[Callable[[random.Random, str], str]]


def _plan_labels(plan: dict[str, Any]) -> set[str]:
    labels = set(plan.get("read", {})) | set(plan.get("labels", {}))
    labels |= {k for k in plan.get("points", {}) if k not in _PLACEHOLDERS}
    labels |= set(plan.get("names", []))
    labels |= set((plan.get("values") or {}).get("keys") or [])
    for mark in plan.get("bar_lines", []) + plan.get("point_lines", []) + list(plan.get("heights", {}).values()):
        labels |= {mark["category"], mark.get("series") or ""}
    view = plan.get("view") or {}
    if view.get("tool") == "ZoomInSubfigure":
        labels.add(view["description"])
    op = plan.get("op", {})
    labels |= set(op.get("keys", []))
    return {label for label in labels if label and label.strip()}


def message_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The text parts of ``messages`` (string contents and the ``text`` parts of content lists), in order."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(part["text"] for part in content if part.get("type") == "text")
    return out


def copied_strings(messages: list[dict[str, Any]], meta: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(labels, numbers) to replace in a trajectory: see the module docstring."""
    plan = meta.get("plan") or {}
    labels = _plan_labels(plan)
    quoted = set()
    for text in message_texts([m for m in messages if m.get("role") == "tool"]):
        quoted |= {json.loads(q) for q in POINT_QUOTE.findall(text)}
    answer = str(meta.get("answer", "")).strip()
    numbers = set()
    op = plan.get("op", {}).get("name")
    for text in quoted | ({answer} if answer else set()):
        if _NUMBER.match(text):
            if op in ("lookup", "pick") and text == answer:
                numbers.add(text)
        elif text in quoted or text in labels:
            labels.add(text)
    return labels, numbers


def _word(rng: random.Random, like: str, words: Words) -> str:
    if words is not None:
        return words(rng, like)
    n = max(2, min(12, len(like) + rng.randint(-2, 2)))
    word = "".join(rng.choice(_VOWELS if i % 2 else _LETTERS) for i in range(n))
    return word.capitalize() if like[:1].isupper() else word.lower()


class PieceWords:
    """Made-up words for :func:`relabel` built from ``tokenizer``'s word pieces, each exactly as many tokens as the
    word it replaces: copying a made-up label then takes as many tokens as copying the real one (real label words
    mostly split into several pieces; one-piece made-up words taught a model to copy one token, not a label)."""

    def __init__(self, tokenizer: Any, tries: int = 50):
        self.tokenizer = tokenizer
        self.tries = tries
        words = [t for t in tokenizer.get_vocab() if t.isascii() and t.isalpha() and len(t) >= 2]
        self.lower = sorted(t for t in words if t.islower())
        self.upper = sorted(t for t in words if t[0].isupper() and t[1:].islower())
        if not self.lower or not self.upper:
            raise ValueError("the tokenizer has no word pieces to make labels of")

    def __call__(self, rng: random.Random, like: str) -> str:
        count = len(self.tokenizer.tokenize(like))
        best, miss = like, None
        for _ in range(self.tries):  # rejection: concatenated pieces can re-tokenize into more (or fewer) pieces
            head = rng.choice(self.upper if like[:1].isupper() else self.lower)
            word = head + "".join(rng.choice(self.lower) for _ in range(count - 1))
            off = abs(len(self.tokenizer.tokenize(word)) - count)
            if miss is None or off < miss:
                best, miss = word, off
            if not off:
                break
        return best


def random_label(rng: random.Random, like: str, words: Words = None) -> str:
    """A made-up label shaped like ``like``: as many words (from ``words``, see :data:`Words`),
    digits for digits, punctuation kept."""
    parts = re.split(r"(\W+)", like)
    out = []
    for part in parts:
        if not part or re.fullmatch(r"\W+", part):
            out.append(part)
        elif part.isdigit():
            out.append(random_number(rng, part))
        else:
            out.append(_word(rng, part, words))
    return "".join(out)


def random_number(rng: random.Random, like: str) -> str:
    """A random number printed like ``like``: same sign, as many digits before and after the point."""
    sign = "-" if like.startswith("-") else ""
    whole, _, frac = like.lstrip("-").partition(".")
    head = str(rng.randint(1, 9)) if len(whole) > 1 else str(rng.randint(0, 9))
    digits = head + "".join(str(rng.randint(0, 9)) for _ in range(len(whole) - 1))
    return sign + digits + ("." + "".join(str(rng.randint(0, 9)) for _ in frac) if frac else "")


def relabel(messages: list[dict[str, Any]], meta: dict[str, Any], rng: random.Random,
            words: Words = None) -> list[dict[str, Any]]:
    """A copy of ``messages`` with each copied string (:func:`copied_strings`) replaced by a random one, the same
    everywhere: message texts, tool-call arguments, tool outputs. ``words``: what made-up labels are made of
    (:data:`Words`; default random letters)."""
    return relabel_with_mapping(messages, meta, rng, words)[0]


def relabel_with_mapping(messages: list[dict[str, Any]], meta: dict[str, Any], rng: random.Random,
                         words: Words = None) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """:func:`relabel`, and the replacements it made (old string -> made-up one)."""
    labels, numbers = copied_strings(messages, meta)
    mapping = {s: random_label(rng, s, words) for s in sorted(labels)}
    mapping.update({s: random_number(rng, s) for s in sorted(numbers)})
    if not mapping:
        return messages, mapping
    pattern = re.compile("|".join(rf"(?<![\w.]){re.escape(s)}(?![\w]|\.\d)"
                                  for s in sorted(mapping, key=len, reverse=True)))

    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return pattern.sub(lambda m: mapping[m.group(0)], value)
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {k: sub(v) if k in ("text", "content", "arguments", "description", "function", "tool_calls")
                    or not isinstance(v, str) else v for k, v in value.items()}
        return value

    out = []
    for message in messages:
        new = dict(message)
        if "content" in message:
            new["content"] = sub(message["content"])
        if "tool_calls" in message:
            new["tool_calls"] = sub(message["tool_calls"])
        out.append(new)
    return out, mapping
