"""The tool block a model was trained with, kept beside its weights and checked whenever the model is loaded.

Every prompt carries the tools' JSON schemas (names, descriptions, parameters). A model trained with one description
of a tool and run with another sees prompts it never saw: the tiny tokenizer even holds each tool's schema line as
one token, so one edited sentence turns a token the model knows into dozens it does not, and the model answers
garbage (measured: a SFT model answering 44 % of the eval answered 1 of 20 after Point's description changed). So
the stages that save a model write ``tool_schemas.json`` next to it, and the loaders refuse a model whose record
differs from the tools now registered, naming the tools that changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The record's file name inside a model folder.
RECORD = "tool_schemas.json"
#: How a tool's schema line starts in the chat template's tool block (the tiny tokenizer's added tokens).
_LINE_START = '{"type": "function", "function": {"name": '


class ToolBlockMismatch(ValueError):
    """The model was trained with other tool schemas than the ones now registered."""


def current_schemas() -> list[dict[str, Any]]:
    """The tool schemas every prompt carries now (the environment's tools, as TRL renders them)."""
    from thinkimg.agent.env import ChartToolEnv
    from thinkimg.agent.rollout import tool_schemas

    return tool_schemas(ChartToolEnv())


def save_tool_record(model_dir: str | Path) -> Path:
    """Write the current tool schemas into ``model_dir`` (the model was trained with them)."""
    path = Path(model_dir) / RECORD
    path.write_text(json.dumps(current_schemas(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def trained_schemas(model_dir: str | Path) -> tuple[list[dict[str, Any]], str] | None:
    """The tool schemas ``model_dir``'s model was trained with and where they were read: its record, else the tool
    lines its tokenizer holds as tokens (tiny models built before the record); None when neither says."""
    model_dir = Path(model_dir)
    record = model_dir / RECORD
    if record.is_file():
        try:
            schemas = json.loads(record.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ToolBlockMismatch(f"{record}: not JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(schemas, list):
            raise ToolBlockMismatch(f"{record}: expected a list of tool schemas")
        return schemas, str(record)
    tokenizer = model_dir / "tokenizer.json"
    if not tokenizer.is_file():
        return None
    try:
        added = json.loads(tokenizer.read_text(encoding="utf-8")).get("added_tokens", [])
    except (json.JSONDecodeError, AttributeError):
        return None
    lines = [t.get("content", "") for t in added if str(t.get("content", "")).startswith(_LINE_START)]
    schemas = []
    for line in lines:
        try:
            schemas.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return (schemas, f"{tokenizer} (its tool tokens)") if schemas else None


def _name(schema: dict[str, Any]) -> str:
    return str(schema.get("function", {}).get("name", "?"))


def tool_block_changes(trained: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[str]:
    """What differs between two lists of tool schemas, one phrase per tool (empty when they are the same)."""
    before = {_name(s): s for s in trained}
    after = {_name(s): s for s in now}
    changes = [f"{name} added" for name in after if name not in before]
    changes += [f"{name} removed" for name in before if name not in after]
    for name in after:
        if name in before and before[name] != after[name]:
            parts = [key for key in ("description", "parameters")
                     if before[name].get("function", {}).get(key) != after[name].get("function", {}).get(key)]
            changes.append(f"{name}'s {' and '.join(parts) or 'schema'} changed")
    if not changes and [_name(s) for s in trained] != [_name(s) for s in now]:
        changes.append("the tools' order changed")
    return changes


def check_tool_record(model_dir: str | Path) -> None:
    """Raise :class:`ToolBlockMismatch` when ``model_dir``'s model was trained with other tool schemas than the
    current ones; a model that records none (a real checkpoint not yet trained here) passes."""
    found = trained_schemas(model_dir)
    if found is None:
        return
    trained, where = found
    changes = tool_block_changes(trained, current_schemas())
    if changes:
        raise ToolBlockMismatch(
            f"{model_dir}: the model was trained with other tool schemas than the tools now registered "
            f"({'; '.join(changes)}; trained ones read from {where}). Its prompts would differ from the ones it "
            "learnt on and it would answer garbage: retrain it from the base model (`thinkimg train base-model`, "
            "then sft, grpo), or run it with the code it was trained with.")
