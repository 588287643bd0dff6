"""ChartToolEnv: one episode's state — the images by id, the calls made, the conversation.

Two drivers use it: the agent runtime (:mod:`thinkimg.agent.rollout`) and TRL's ``GRPOTrainer(environment_factory=
ChartToolEnv)``. For TRL every public method except ``reset`` is a tool, so the tools are generated here from the
tool registry as typed methods with Google-style docstrings, and everything else is a property or private.
A tool method raises :class:`~thinkimg.tools.ToolError` on a refused call (TRL counts it as a failure and shows the
message); the runtime catches it and shows the same message as the observation.
"""

from __future__ import annotations

import inspect
import threading
from dataclasses import dataclass
from typing import Any, Callable

from PIL import Image

from thinkimg.agent.conversation import Conversation
from thinkimg.images import load_image
from thinkimg.server.client import ToolServerUnavailable
from thinkimg.tools import REGISTRY, InProcessToolClient, Tool, ToolClient, ToolError

_shared_client: ToolClient | None = None
_shared_lock = threading.Lock()


def default_client() -> ToolClient:
    """The process-wide client used when none is given: an HTTP client when ``THINKIMG_TOOL_SERVER_URL`` is set
    (comma-separated replicas), else the tools in-process (built once: the OCR engine is shared)."""
    global _shared_client
    with _shared_lock:
        if _shared_client is None:
            from thinkimg.server.client import HTTPToolClient

            _shared_client = HTTPToolClient.from_env() or InProcessToolClient()
        return _shared_client


@dataclass
class CallRecord:
    """One tool call of an episode, as logged: arguments, outcome, and the image id it produced."""

    name: str
    arguments: dict[str, Any]
    ok: bool
    text: str
    output_image: str | None = None
    data: dict[str, Any] | None = None


class ChartToolEnv:
    """An episode over one chart. ``reset(**row)`` starts it (``row`` holds ``image`` and ``question``)."""

    def __init__(self, client: ToolClient | None = None):
        self._client = client
        self._conversation = Conversation()
        self._calls: list[CallRecord] = []

    def reset(self, **row: Any) -> None:
        """Start an episode from a dataset row: ``image`` (PIL image or path) or ``images[0]``, and ``question``.

        Returns None: the row's prompt already shows the image and the question (TRL's contract)."""
        image = row.get("image")
        if image is None and row.get("images"):
            image = row["images"][0]
        if image is None:
            raise ValueError(f"row has no 'image' (or 'images'); keys: {sorted(row)}")
        if not isinstance(image, Image.Image):
            image = load_image(image)
        question = row.get("question") or _prompt_text(row.get("prompt")) or ""
        meta = {k: v for k, v in row.items() if k not in ("image", "images", "prompt", "question", "system") and _jsonable(v)}
        self._conversation = Conversation.start(image.convert("RGB"), question, system=row.get("system"), **meta)
        self._calls = []
        return None

    # -- state, read by the runtime, the data engine and the rewards (properties: TRL ignores them) -----------------

    @property
    def conversation(self) -> Conversation:
        return self._conversation

    @property
    def images(self) -> dict[str, Image.Image]:
        return self._conversation.images

    @property
    def calls(self) -> list[CallRecord]:
        return self._calls

    @property
    def client(self) -> ToolClient:
        if self._client is None:
            self._client = default_client()
        return self._client

    @property
    def tools(self) -> list[Callable[..., Any]]:
        """The tool methods bound to this episode (what TRL and the chat template see)."""
        return [getattr(self, name) for name in TOOL_NAMES]

    # -- the one place a tool runs ---------------------------------------------------------------------------------

    def _call(self, name: str, arguments: dict[str, Any]) -> str | list[dict[str, Any]]:
        ref = str(arguments.get("image", "img_0"))
        image = self.images.get(ref)
        try:
            if image is None:
                raise ToolError(f"{name}: unknown image {ref!r}; available: {', '.join(self.images)}", argument="image")
            result = self.client.call(name, image, arguments)
        except ToolError as exc:
            self._calls.append(CallRecord(name, arguments, ok=False, text=exc.message))
            raise
        except (ToolServerUnavailable, ConnectionError, TimeoutError, OSError) as exc:
            message = f"{name}: the tool could not be reached ({exc})"
            self._calls.append(CallRecord(name, arguments, ok=False, text=message))
            raise ToolError(message, status=503) from None
        new_ref = self._conversation.add_image(result.images[0]) if result.images else None
        text = result.text if new_ref is None else f"{result.text} The result is {new_ref}."
        self._calls.append(CallRecord(name, arguments, ok=True, text=text, output_image=new_ref, data=result.data))
        if new_ref is None:
            return text
        return [{"type": "image", "image": self.images[new_ref]}, {"type": "text", "text": text}]


def _prompt_text(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt:
        content = prompt[-1].get("content") if isinstance(prompt[-1], dict) else None
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return None


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))


def _tool_method(tool_cls: type[Tool]) -> Callable[..., Any]:
    """A typed, Google-docstringed method that calls ``tool_cls`` through the episode's client."""
    fields = tool_cls.Args.model_fields
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    doc_args = []
    for arg, info in fields.items():
        default = inspect.Parameter.empty if info.is_required() else info.default
        params.append(inspect.Parameter(arg, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=info.annotation))
        annotations[arg] = info.annotation
        doc_args.append(f"    {arg}: {(info.description or arg).strip()}")
    name = tool_cls.name

    def method(self: ChartToolEnv, **arguments: Any) -> str | list[dict[str, Any]]:
        return self._call(name, arguments)

    method.__name__ = method.__qualname__ = name
    method.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    method.__doc__ = f"{tool_cls.description}\n\nArgs:\n" + "\n".join(doc_args)
    return method


#: Tool methods, generated from the registry: adding a tool module adds a method here.
TOOL_NAMES: list[str] = REGISTRY.names()
for _name in TOOL_NAMES:
    setattr(ChartToolEnv, _name, _tool_method(REGISTRY.get(_name)))
