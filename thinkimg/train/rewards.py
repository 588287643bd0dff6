"""GRPO rewards: answer correctness (the eval metric), closeness of a text answer, format, and tool-use shaping,
each in [0, 1].

Each reward is a pure function of one rollout — its completion messages (assistant turns and tool results, as TRL
records a multi-turn rollout), the gold answer, the tool calls its environment ran — and :func:`reward_funcs` wraps
the enabled ones into TRL reward functions with their weights from params.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from difflib import SequenceMatcher
from typing import Any

from thinkimg.agent.protocol import TOOL_CALL_RE, parse_native
from thinkimg.eval.metrics import get_metric, normalize_answer, parse_number


def message_text(message: dict[str, Any] | str) -> str:
    """The text of a message (a plain string, or the text parts of its content in order)."""
    if isinstance(message, str):
        return message
    content = message.get("content")
    if isinstance(content, str) or content is None:
        return content or ""
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def final_answer(completion: list[dict[str, Any]] | str) -> str | None:
    """The ``<answer>`` of the rollout's last assistant turn, or None (no answer, or the turn also calls a tool)."""
    if isinstance(completion, str):
        turn = parse_native(completion)
    else:
        assistant = [m for m in completion if m.get("role") == "assistant"]
        if not assistant or assistant[-1].get("tool_calls") or completion[-1].get("role") != "assistant":
            return None
        turn = parse_native(message_text(assistant[-1]))
    return turn.answer if turn.is_final else None


def correctness(completion: list[dict[str, Any]] | str, gold: str, metric: str = "relaxed_accuracy") -> float:
    """1.0 when the final answer matches ``gold`` under the eval metric (ChartQA relaxed accuracy), else 0.0."""
    answer = final_answer(completion)
    return float(answer is not None and get_metric(metric)(answer, str(gold)))


def closeness(completion: list[dict[str, Any]] | str, gold: str, metric: str = "relaxed_accuracy") -> float:
    """Partial credit for a text answer copied nearly right: 1.0 when the answer is correct (as :func:`correctness`),
    else the similarity of the normalized answer to a gold that is not a number (difflib's ratio: ``"Very dissatis"``
    for ``"Very dissatisfied"`` 0.87, ``"Francegal"`` for ``"France"`` 0.8, another label ~0.2); 0.0 for a wrong
    number or no answer. Rollouts that copy a label or title differently then differ in reward where correctness
    alone rewards them all 0."""
    answer = final_answer(completion)
    if answer is None:
        return 0.0
    if get_metric(metric)(answer, str(gold)):
        return 1.0
    if parse_number(str(gold)) is not None:
        return 0.0
    return SequenceMatcher(None, normalize_answer(answer), normalize_answer(str(gold)), autojunk=False).ratio()


def format_score(completion: list[dict[str, Any]] | str) -> float:
    """1.0 when every assistant turn is well formed: a tool-call turn holds only its calls, and the rollout ends with
    exactly one ``<answer>...</answer>`` and nothing else; 0.0 otherwise (malformed or unparsed calls, no answer,
    text around the tags)."""
    if isinstance(completion, str):
        turn = parse_native(completion)
        return float(turn.is_final and not turn.errors and not turn.thought)
    assistant = [m for m in completion if m.get("role") == "assistant"]
    if not assistant or completion[-1].get("role") != "assistant":
        return 0.0
    for message in assistant[:-1]:
        text = message_text(message)
        if not message.get("tool_calls") or TOOL_CALL_RE.sub("", text).strip():
            return 0.0
    last = parse_native(message_text(assistant[-1]))
    return float(not assistant[-1].get("tool_calls") and last.is_final and not last.errors and not last.thought
                 and message_text(assistant[-1]).count("<answer>") == 1)


def tool_use(calls: Sequence[Any]) -> float:
    """Shaping for looking before answering: the share of the rollout's tool calls that succeeded (0.0 without any
    call). ``calls`` are :class:`~thinkimg.agent.env.CallRecord`-like objects with an ``ok`` flag."""
    if not calls:
        return 0.0
    return sum(1 for call in calls if call.ok) / len(calls)


#: The rewards params may weight, by name.
REWARDS = ("correctness", "closeness", "format", "tool_use")


def reward_funcs(weights: dict[str, float], metric: str = "relaxed_accuracy") -> tuple[list[Callable[..., list[float]]],
                                                                                      list[float]]:
    """TRL reward functions for the rewards with a non-zero weight, and their weights (in the same order).

    The functions read the dataset's ``answer`` column and the rollouts' environments (their ``calls``)."""
    unknown = sorted(set(weights) - set(REWARDS))
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {', '.join(REWARDS)}")

    def correctness_reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
        return [correctness(c, gold, metric) for c, gold in zip(completions, answer, strict=True)]

    def closeness_reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
        return [closeness(c, gold, metric) for c, gold in zip(completions, answer, strict=True)]

    def format_reward(completions: list[Any], **_: Any) -> list[float]:
        return [format_score(c) for c in completions]

    def tool_use_reward(completions: list[Any], environments: list[Any] | None = None, **_: Any) -> list[float]:
        if environments is None:
            raise ValueError("the tool_use reward needs the rollouts' environments (GRPOTrainer environment_factory)")
        return [tool_use(env.calls) for env in environments]

    table = {"correctness": correctness_reward, "closeness": closeness_reward, "format": format_reward,
             "tool_use": tool_use_reward}
    names = [name for name in REWARDS if weights.get(name, 0.0)]
    if not names:
        raise ValueError(f"every reward weight is 0: give at least one of {', '.join(REWARDS)} a weight")
    return [table[name] for name in names], [float(weights[name]) for name in names]
