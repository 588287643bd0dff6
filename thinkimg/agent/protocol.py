"""The action protocol: parse and format model turns.

Native (Qwen/Hermes, what TRL and vLLM tool parsers read)::

    <tool_call>
    {"name": "DrawHorizontalLineByY", "arguments": {"image": "img_0", "y": 412}}
    </tool_call>

and a final turn without tool calls that answers in ``<answer>…</answer>``.

OpenThinkIMG (so its checkpoints can be evaluated here)::

    {"thought": "...", "actions": [{"name": "Point", "arguments": {"image": "img_0", "param": "the 2019 bar"}}]}

with ``Terminate {"ans": ...}`` as the final action and point coordinates in percent of the cited image, which the
parser converts to pixels. Malformed output never raises: it becomes :attr:`ParsedTurn.errors`, which the runtime
shows the model as an observation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from thinkimg.server import compat

TOOL_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass
class ToolCall:
    """One parsed call: the tool's name and its JSON arguments."""

    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass
class ParsedTurn:
    """A model turn, parsed: text outside the calls, the calls, the final answer (if any) and what was malformed."""

    text: str
    thought: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    answer: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        """The turn ends the episode: an answer and no call to run."""
        return self.answer is not None and not self.calls

    @property
    def valid(self) -> bool:
        """Parsed without errors into calls or an answer."""
        return not self.errors and (bool(self.calls) or self.answer is not None)


def format_call(name: str, arguments: dict[str, Any]) -> str:
    """A native tool call exactly as the Qwen chat templates render it."""
    return '<tool_call>\n{"name": "' + name + '", "arguments": ' + json.dumps(arguments, ensure_ascii=False) + "}\n</tool_call>"


def format_answer(answer: Any) -> str:
    return f"<answer>{answer}</answer>"


def _call_from_json(raw: str, where: str) -> tuple[ToolCall | None, str | None]:
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"{where}: not valid JSON ({exc.msg} at position {exc.pos}); expected " \
                     '{"name": "<tool>", "arguments": {...}}'
    if not isinstance(obj, dict):
        return None, f"{where}: expected a JSON object with 'name' and 'arguments', got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, f"{where}: missing the tool 'name'"
    arguments = obj.get("arguments", {})
    if isinstance(arguments, str):  # some models emit arguments as a JSON string
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None, f"{where}: 'arguments' of {name} is a string that is not JSON"
    if not isinstance(arguments, dict):
        return None, f"{where}: 'arguments' of {name} must be a JSON object, got {type(arguments).__name__}"
    return ToolCall(name, arguments), None


def parse_native(text: str) -> ParsedTurn:
    """Parse a turn in the native protocol. Never raises."""
    turn = ParsedTurn(text=text)
    for i, match in enumerate(TOOL_CALL_RE.finditer(text)):
        call, error = _call_from_json(match.group(1).strip(), f"tool call {i + 1}")
        if call is not None:
            turn.calls.append(call)
        else:
            turn.errors.append(error)
    stripped = TOOL_CALL_RE.sub("", text)
    if "<tool_call>" in stripped:
        turn.errors.append("a <tool_call> is not closed with </tool_call>")
        stripped = stripped.split("<tool_call>")[0]
    answers = ANSWER_RE.findall(stripped)
    if answers:
        turn.answer = answers[-1].strip()
    elif "<answer>" in stripped:
        turn.errors.append("an <answer> is not closed with </answer>")
    turn.thought = ANSWER_RE.sub("", stripped).strip()
    if not turn.calls and turn.answer is None and not turn.errors:
        turn.errors.append("no <tool_call> and no <answer>: call a tool or give the final <answer>...</answer>")
    return turn


def _first_json_object(text: str) -> tuple[Any, str | None]:
    start = text.find("{")
    if start < 0:
        return None, "no JSON object found; expected {\"thought\": ..., \"actions\": [...]}"
    try:
        obj, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at position {exc.pos})"
    return obj, None


def parse_openthinkimg(text: str, image_sizes: dict[str, tuple[int, int]]) -> ParsedTurn:
    """Parse an OpenThinkIMG turn; ``image_sizes`` (id -> (w, h)) converts its percent coordinates to pixels."""
    turn = ParsedTurn(text=text)
    obj, error = _first_json_object(text)
    if error:
        turn.errors.append(error)
        return turn
    if not isinstance(obj, dict) or not isinstance(obj.get("actions"), list):
        turn.errors.append("expected {\"thought\": ..., \"actions\": [{\"name\": ..., \"arguments\": {...}}]}")
        return turn
    turn.thought = str(obj.get("thought", ""))
    for i, action in enumerate(obj["actions"]):
        if not isinstance(action, dict) or not isinstance(action.get("name"), str):
            turn.errors.append(f"action {i + 1}: expected an object with a 'name'")
            continue
        name, arguments = action["name"], action.get("arguments") or {}
        if not isinstance(arguments, dict):
            turn.errors.append(f"action {i + 1} ({name}): 'arguments' must be an object")
            continue
        if name.lower() == "terminate":
            turn.answer = str(arguments.get("ans", arguments.get("answer", ""))).strip()
            continue
        try:
            turn.calls.append(_openthinkimg_call(name, arguments, image_sizes))
        except ValueError as exc:
            turn.errors.append(f"action {i + 1} ({name}): {exc}")
    if not turn.calls and turn.answer is None and not turn.errors:
        turn.errors.append("no actions: call a tool or Terminate with {\"ans\": ...}")
    return turn


def _openthinkimg_call(name: str, arguments: dict[str, Any], image_sizes: dict[str, tuple[int, int]]) -> ToolCall:
    canonical = compat.ALIASES.get(name.replace("_", "").lower(), name)
    image = str(arguments.get("image", "img_0"))
    if image not in image_sizes:
        raise ValueError(f"unknown image {image!r}; available: {', '.join(image_sizes)}")
    width, height = image_sizes[image]
    if "param" in arguments:  # the seed's string parameter, e.g. x="41.5" y="62"
        try:
            converted = compat.to_arguments(canonical, str(arguments["param"]), width, height)
        except compat.CompatError as exc:
            raise ValueError(exc.message) from None
    else:
        converted = {}
        for key, value in arguments.items():
            if key == "image":
                continue
            if key in ("x", "y") and isinstance(value, (int, float)):
                if not 0 <= value <= 100:
                    raise ValueError(f"{key}={value} is not a percentage in [0, 100]")
                value = min(value / 100 * (width if key == "x" else height), (width if key == "x" else height) - 1)
            converted[key] = value
    return ToolCall(canonical, {"image": image, **converted})


def parse(text: str, protocol: str, image_sizes: dict[str, tuple[int, int]]) -> ParsedTurn:
    """Parse with the named protocol: ``native`` or ``openthinkimg``."""
    if protocol == "native":
        return parse_native(text)
    if protocol == "openthinkimg":
        return parse_openthinkimg(text, image_sizes)
    raise ValueError(f"unknown protocol {protocol!r}; use 'native' or 'openthinkimg'")


def tool_block(tool_schemas: list[dict[str, Any]]) -> str:
    """The system prompt's tool block, as the Qwen chat templates (and so TRL's GRPO prompts) render it."""
    lines = "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tool_schemas)
    return (
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
        + lines
        + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
        '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
        "</tool_call>"
    )
