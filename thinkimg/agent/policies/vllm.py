"""VLLMPolicy: a local checkpoint served by vLLM, for fast batched rollouts and evaluation on a CUDA machine.

Two modes:

* ``mode="offline"`` (default): the model is loaded in this process with ``vllm.LLM`` and every batch is one
  ``LLM.chat`` call. ``max_images`` (default 8) sets ``limit_mm_per_prompt={"image": max_images}``: an episode
  shows the chart *and* every image a tool returned, so a limit of one image per prompt (vLLM's default for some
  models) fails on the first tool image. Greedy decoding by default, stopping at ``<|im_end|>``.
* ``mode="server"``: a ``vllm serve`` process already running elsewhere (or on this machine), reached over its
  OpenAI-compatible API by :class:`~thinkimg.agent.policies.openai_api.OpenAIPolicy`; nothing is imported from vLLM
  here. Start the server with room for several images per request, e.g.::

      vllm serve /path/to/checkpoint --served-model-name thinkimg --limit-mm-per-prompt '{"image": 8}'

  and use ``build_policy("vllm", model="thinkimg", mode="server", base_url="http://localhost:8000/v1")``
  (or ``build_policy("openai", ...)`` directly; a localhost server needs no API key).

How the conversation is shown to the model (``render``):

* ``"text"`` (default): the native protocol written out as text, exactly as Qwen's templates render tools (tool
  block in the system prompt, ``<tool_call>`` text in assistant turns, ``<tool_response>`` user turns with the
  tool images); works with any chat template, including Qwen2-VL's, which has no tool support of its own.
* ``"template"``: structured messages (``tool_calls``, ``role="tool"``) and ``tools=`` handed to the model's chat
  template, for templates that render tools themselves (Qwen2.5/Qwen3 text, Qwen3-VL).

vLLM is only imported when an offline policy is built: ``pip install 'thinkimg[gpu]'`` on a CUDA machine.
"""

from __future__ import annotations

import json
from typing import Any

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.policies.base import Policy
from thinkimg.agent.policies.openai_api import OpenAIPolicy, to_openai_messages

VLLM_MISSING = (
    "VLLMPolicy(mode='offline') needs vLLM, which is not installed: run `pip install 'thinkimg[gpu]'` on a CUDA "
    "machine (vLLM pins its own CUDA torch). Without a GPU here, point mode='server' (or the 'openai' policy) at "
    "a `vllm serve` endpoint instead."
)


def _template_messages(conv: Conversation, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Structured messages for a chat template that renders tools itself; images as PIL ``image_pil`` parts.

    Tool-call arguments go as JSON strings (OpenAI style; vLLM decodes them for the template) and each tool message
    cites the id of the call it answers (matched by tool name, in order)."""
    out = []
    pending: list[tuple[str, str]] = []
    for i, m in enumerate(conv.messages):
        content = []
        for part in m.get("content") or []:
            if part.get("type") == "image":
                content.append({"type": "image_pil", "image_pil": conv.images[part["ref"]]})
            elif part.get("type") == "text":
                content.append({"type": "text", "text": part["text"]})
        message: dict[str, Any] = {"role": m["role"], "content": content}
        if m.get("tool_calls"):
            message["tool_calls"] = []
            for j, c in enumerate(m["tool_calls"]):
                fn = c["function"]
                arguments = fn["arguments"]
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                call_id = f"call_{i}_{j}"
                pending.append((call_id, fn["name"]))
                message["tool_calls"].append({"id": call_id, "type": "function",
                                              "function": {"name": fn["name"], "arguments": arguments}})
        if m["role"] == "tool":
            if m.get("name"):
                message["name"] = m["name"]
            match = next((k for k, (_, name) in enumerate(pending) if name == m.get("name")), None)
            if match is not None:
                message["tool_call_id"] = pending.pop(match)[0]
        elif m["role"] != "assistant":
            pending.clear()
        out.append(message)
    return out


def _text_messages(conv: Conversation, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The native protocol as text (same rendering as OpenAIPolicy), images as PIL ``image_pil`` parts."""
    return to_openai_messages(conv, tools, native_tools=False, label_images=False,
                              image_part=lambda image: {"type": "image_pil", "image_pil": image})


class VLLMPolicy(Policy):
    """A vLLM-served checkpoint; see the module docstring for the modes and the rendering."""

    protocol = "native"

    def __init__(
        self,
        model: str,
        mode: str = "offline",
        max_images: int = 8,
        max_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        render: str = "text",
        stop: list[str] | None = None,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.85,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        chat_template: str | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        engine_kwargs: dict[str, Any] | None = None,
        base_url: str = "http://localhost:8000/v1",
        **server_kwargs: Any,
    ):
        if mode not in ("offline", "server"):
            raise ValueError(f"unknown mode {mode!r}; use 'offline' (vllm.LLM in-process) or 'server' (vllm serve)")
        if render not in ("text", "template"):
            raise ValueError(f"unknown render {render!r}; use 'text' or 'template'")
        if max_images < 1:
            raise ValueError("max_images must be >= 1: the chart itself is one image")
        self.mode, self.render = mode, render
        self._server: OpenAIPolicy | None = None
        self.llm: Any = None
        if mode == "server":
            self._server = OpenAIPolicy(model=model, base_url=base_url, max_tokens=max_tokens,
                                        temperature=temperature, seed=seed, **server_kwargs)
            return
        if server_kwargs:
            raise TypeError(f"unexpected arguments for mode='offline': {sorted(server_kwargs)}")
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise ImportError(VLLM_MISSING) from exc
        self.max_images = max_images
        kwargs: dict[str, Any] = {
            "model": model,
            "limit_mm_per_prompt": {"image": max_images},
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "seed": seed,
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if mm_processor_kwargs:
            kwargs["mm_processor_kwargs"] = mm_processor_kwargs
        kwargs.update(engine_kwargs or {})
        self.llm = LLM(**kwargs)
        self.sampling = SamplingParams(temperature=temperature, top_p=top_p if temperature > 0 else 1.0,
                                       max_tokens=max_tokens, seed=seed,
                                       stop=list(stop) if stop is not None else ["<|im_end|>"])
        self.chat_template = chat_template

    def messages(self, conv: Conversation, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The messages one conversation is sent as (checked against ``max_images`` before generation)."""
        n_images = len(conv.image_refs())
        if n_images > self.max_images:
            raise ValueError(f"conversation {conv.meta.get('id', '?')} shows {n_images} images, more than "
                             f"max_images={self.max_images}; raise max_images (limit_mm_per_prompt) or max_rounds")
        return _text_messages(conv, tools) if self.render == "text" else _template_messages(conv, tools)

    def generate(self, conversations: list[Conversation], tools: list[dict[str, Any]]) -> list[str]:
        if self._server is not None:
            return self._server.generate(conversations, tools)
        batch = [self.messages(conv, tools) for conv in conversations]
        kwargs: dict[str, Any] = {"sampling_params": self.sampling, "use_tqdm": False}
        if self.chat_template is not None:
            kwargs["chat_template"] = self.chat_template
        if self.render == "template" and tools:
            kwargs["tools"] = tools
        outputs = self.llm.chat(batch, **kwargs)
        return [out.outputs[0].text for out in outputs]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.llm = None  # vLLM frees the engine when the LLM object is collected
