"""The batched rollout loop: up to ``batch_size`` episodes in flight, one generation call for all of them at
whatever turn each is, their tool calls run concurrently, finished slots refilled from the remaining rows.

Every model turn is parsed by the protocol; malformed turns and refused tool calls become observations the model
reads on its next turn, never crashes. An episode ends with an answer or after ``max_rounds`` model turns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm
from transformers.utils import get_json_schema

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.env import ChartToolEnv, TOOL_NAMES
from thinkimg.agent.policies.base import Policy
from thinkimg.agent.protocol import ParsedTurn, parse
from thinkimg.tools import ToolClient, ToolError


@dataclass
class Episode:
    """A finished episode: its row, conversation, final answer (None if it never answered) and counters."""

    row: dict[str, Any]
    conversation: Conversation
    answer: str | None
    rounds: int
    tool_calls: int
    tool_failures: int
    format_errors: int
    calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid_format(self) -> bool:
        """Every turn parsed and the episode ended with an answer."""
        return self.answer is not None and self.format_errors == 0


def tool_schemas(env: ChartToolEnv) -> list[dict[str, Any]]:
    """The JSON schemas of the environment's tools, exactly as TRL renders them into GRPO prompts."""
    return [get_json_schema(method) for method in env.tools]


class _Slot:
    def __init__(self, row: dict[str, Any], client: ToolClient | None):
        self.row = row
        self.env = ChartToolEnv(client)
        self.env.reset(**row)
        self.rounds = 0
        self.format_errors = 0
        self.refused_calls = 0  # calls that never reached a tool (unknown name, withheld tools)
        self.answer: str | None = None
        self.done = False


def _execute(env: ChartToolEnv, name: str, arguments: dict[str, Any]) -> tuple[str, str | None]:
    """Run one call on the episode; returns (observation text, new image id or None); errors become text."""
    try:
        result = getattr(env, name)(**arguments)
    except ToolError as exc:
        return f"Error: {exc.message}", None
    except TypeError as exc:  # arguments the method signature does not take
        return f"Error: {name}: {exc}", None
    if isinstance(result, str):
        return result, None
    return next(p["text"] for p in result if p["type"] == "text"), env.calls[-1].output_image


def rollout(
    policy: Policy,
    rows: Iterable[dict[str, Any]],
    *,
    client: ToolClient | None = None,
    max_rounds: int = 5,
    batch_size: int = 8,
    use_tools: bool = True,
    tool_workers: int = 8,
    on_episode: Callable[[Episode], None] | None = None,
    progress: str | None = None,
    total: int | None = None,
) -> Iterator[Episode]:
    """Run ``policy`` on ``rows`` (each with ``image`` and ``question``); yield episodes as they finish.

    ``use_tools=False`` withholds the tools (the no-tool ablation): the policy sees no tool schemas and any call it
    makes is answered with an error observation. ``progress`` (a label) shows a progress bar on stderr
    (``total`` episodes, default ``len(rows)`` when known)."""
    if max_rounds < 1 or batch_size < 1:
        raise ValueError("max_rounds and batch_size must be >= 1")
    bar = tqdm(total=total if total is not None else len(rows) if isinstance(rows, Sized) else None, desc=progress, unit="episode",
               disable=progress is None, dynamic_ncols=True)
    pending = iter(rows)
    slots: list[_Slot] = []
    schemas: list[dict[str, Any]] | None = None
    with bar, ThreadPoolExecutor(tool_workers, thread_name_prefix="rollout-tool") as pool:
        while True:
            while len(slots) < batch_size:
                row = next(pending, None)
                if row is None:
                    break
                slots.append(_Slot(row, client))
            if not slots:
                return
            if schemas is None:
                schemas = tool_schemas(slots[0].env) if use_tools else []
            texts = policy.generate([s.env.conversation for s in slots], schemas)
            jobs = []
            for slot, text in zip(slots, texts, strict=True):
                slot.rounds += 1
                sizes = {ref: img.size for ref, img in slot.env.images.items()}
                turn: ParsedTurn = parse(text, policy.protocol, sizes)
                conv = slot.env.conversation
                if turn.errors:
                    slot.format_errors += 1
                if turn.is_final:
                    conv.add_assistant(text)
                    slot.answer, slot.done = turn.answer, True
                    continue
                conv.add_assistant(turn.thought, [c.to_dict() for c in turn.calls])
                if turn.errors:
                    conv.add_tool("error", "Error: " + "; ".join(turn.errors))
                for call in turn.calls:
                    if not use_tools:
                        slot.refused_calls += 1
                        conv.add_tool(call.name, f"Error: tools are not available in this run ({call.name}).")
                    elif call.name not in TOOL_NAMES:
                        slot.refused_calls += 1
                        conv.add_tool(call.name, f"Error: unknown tool {call.name!r}; available: {', '.join(TOOL_NAMES)}")
                    else:
                        jobs.append((slot, call.name, pool.submit(_execute, slot.env, call.name, call.arguments)))
            for slot, name, future in jobs:  # in call order, so observations follow the calls
                text, image_ref = future.result()
                slot.env.conversation.add_tool(name, text, image_ref)
            still = []
            for slot in slots:
                if slot.done or slot.rounds >= max_rounds:
                    episode = _finish(slot)
                    bar.update(1)
                    if on_episode is not None:
                        on_episode(episode)
                    yield episode
                else:
                    still.append(slot)
            slots = still


def _finish(slot: _Slot) -> Episode:
    calls = slot.env.calls
    return Episode(
        row={k: v for k, v in slot.row.items() if k not in ("image", "images")},
        conversation=slot.env.conversation,
        answer=slot.answer,
        rounds=slot.rounds,
        tool_calls=len(calls) + slot.refused_calls,
        tool_failures=sum(not c.ok for c in calls) + slot.refused_calls,
        format_errors=slot.format_errors,
        calls=[{"name": c.name, "arguments": c.arguments, "ok": c.ok, "text": c.text, "output_image": c.output_image}
               for c in calls],
    )
