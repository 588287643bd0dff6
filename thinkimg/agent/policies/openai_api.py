"""OpenAIPolicy: any OpenAI-compatible chat-completions API as a policy (GPT-4o, Gemini's OpenAI-compatible
endpoint, a ``vllm serve`` server, ...), over plain HTTP with httpx.

Two ways to show the model the tools and its history:

* **text** (default, ``native_tools=False``): exactly the native protocol as the Qwen chat templates render it.
  The system prompt carries :func:`~thinkimg.agent.protocol.tool_block`; earlier assistant calls are the
  ``<tool_call>...</tool_call>`` text; tool results are user messages wrapped in ``<tool_response>...
  </tool_response>`` with the tool's image. The model's reply is used as is (cut at a ``<tool_response>`` it
  invents itself: it never sees the real one in the same turn).
* **native tools** (``native_tools=True``): the API's own ``tools`` / ``tool_calls`` / ``role="tool"`` fields.
  A ``tool`` message cannot carry images, so tool images follow in one user message after the tool messages.
  The ``tool_calls`` the API returns are turned back into native ``<tool_call>`` text so the runtime parses them
  like any other turn.

Images go as PNG data URLs; each one is preceded by its id (``img_0:``) so the model can cite it in calls
(``label_images=False`` turns that off). A batch's requests run concurrently (``concurrency`` threads), under an
optional token-bucket rate limit (``requests_per_minute``). 429, 5xx and connection errors are retried with
exponential backoff and jitter, honouring ``Retry-After``; other 4xx answers raise :class:`OpenAIAPIError` with the
API's own message.

The key is read from the environment variable ``api_key_env`` (``OPENAI_API_KEY``; e.g. ``GEMINI_API_KEY`` with
``base_url="https://generativelanguage.googleapis.com/v1beta/openai"``). For a localhost ``base_url`` (a local
``vllm serve``) the key is optional.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable
from urllib.parse import urlparse

import httpx
from PIL import Image

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.policies.base import Policy
from thinkimg.agent.protocol import format_call, tool_block
from thinkimg.images import png_base64

#: HTTP statuses worth retrying: rate limited, request timeout, and server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
#: The longest ``Retry-After`` honoured, in seconds (a longer one is waited this long, then retried).
MAX_RETRY_AFTER_S = 300.0
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


class OpenAIAPIError(RuntimeError):
    """A request the API refused (non-retryable status) or that kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class RateLimiter:
    """A token bucket: ``per_minute`` requests a minute on average, at most ``burst`` at once. Thread-safe.

    A caller that finds the bucket empty reserves the next token (the count goes negative) and sleeps until it is
    due, so concurrent callers are spaced out in arrival order."""

    def __init__(self, per_minute: float, burst: int = 1, *, clock=time.monotonic, sleep=time.sleep):
        if per_minute <= 0:
            raise ValueError(f"requests_per_minute must be > 0, got {per_minute}")
        self.rate = per_minute / 60.0
        self.burst = max(1, int(burst))
        self._tokens = float(self.burst)
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take a token, sleeping until one is due; returns the seconds slept."""
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


def is_local_url(url: str) -> bool:
    """The URL points at this machine (a local ``vllm serve``), where an API key is optional."""
    return (urlparse(url).hostname or "").lower() in _LOCAL_HOSTS


def data_url(image) -> str:
    return "data:image/png;base64," + png_base64(image)


def _texts(content: Any) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _arguments(raw: Any) -> Any:
    """Tool-call arguments as a dict when they are a JSON string (OpenAI style), else unchanged."""
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw if raw is not None else {}


def _call_text(name: str, arguments: Any) -> str:
    """A call as native ``<tool_call>`` text; arguments that are not an object stay as they are (the parser
    reports them)."""
    if isinstance(arguments, dict):
        return format_call(name, arguments)
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + "\n</tool_call>"


def _merge_texts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in parts:
        if part["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = {"type": "text", "text": out[-1]["text"] + part["text"]}
        elif part["type"] != "text" or part["text"]:
            out.append(part)
    return out


class _Renderer:
    """Turns one conversation into OpenAI chat messages (see the module docstring for the two modes)."""

    def __init__(self, conv: Conversation, *, label_images: bool, image_detail: str | None,
                 image_part: Callable[[Image.Image], dict[str, Any]] | None = None):
        self.conv = conv
        self.label_images = label_images
        self.image_detail = image_detail
        self.custom_image_part = image_part

    def image_part(self, ref: str) -> dict[str, Any]:
        if self.custom_image_part is not None:
            return self.custom_image_part(self.conv.images[ref])
        image_url: dict[str, Any] = {"url": data_url(self.conv.images[ref])}
        if self.image_detail:
            image_url["detail"] = self.image_detail
        return {"type": "image_url", "image_url": image_url}

    def parts(self, content: Any) -> list[dict[str, Any]]:
        """User-visible content parts: texts, and images as (labelled) data URLs."""
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        out: list[dict[str, Any]] = []
        for part in content or []:
            if part.get("type") == "image":
                if self.label_images:
                    out.append({"type": "text", "text": f"{part['ref']}:"})
                out.append(self.image_part(part["ref"]))
            elif part.get("type") == "text":
                out.append({"type": "text", "text": part["text"]})
        return out

    def system(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], native_tools: bool) -> None:
        text = "\n\n".join(_texts(m["content"]) for m in self.conv.messages if m["role"] == "system")
        if tools and not native_tools:
            text = (text + "\n\n" if text else "") + tool_block(tools)
        if text:
            messages.append({"role": "system", "content": text})

    def text_mode(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        self.system(messages, tools, native_tools=False)
        responses: list[dict[str, Any]] = []  # a run of tool messages becomes one user message

        def flush() -> None:
            if responses:
                messages.append({"role": "user", "content": _merge_texts(responses)})
                responses.clear()

        for m in self.conv.messages:
            role = m["role"]
            if role == "tool":
                if responses:
                    responses.append({"type": "text", "text": "\n"})
                responses.append({"type": "text", "text": "<tool_response>\n"})
                responses.extend(self.parts(m.get("content")))
                responses.append({"type": "text", "text": "\n</tool_response>"})
                continue
            flush()
            if role == "user":
                messages.append({"role": "user", "content": self.parts(m.get("content"))})
            elif role == "assistant":
                pieces = [_texts(m.get("content"))] if _texts(m.get("content")) else []
                for call in m.get("tool_calls") or []:
                    fn = call.get("function", call)
                    pieces.append(_call_text(fn["name"], _arguments(fn.get("arguments"))))
                messages.append({"role": "assistant", "content": "\n".join(pieces)})
        flush()
        return messages

    def native_mode(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        self.system(messages, tools, native_tools=True)
        pending: list[tuple[str, str]] = []  # (call id, tool name) of the last assistant turn, not yet answered
        extras: list[dict[str, Any]] = []  # tool images and unmatched observations: one user message after the run
        n_turn = 0

        def flush() -> None:
            for call_id, _ in pending:  # the API needs an answer for every call id
                messages.append({"role": "tool", "tool_call_id": call_id, "content": "Error: no result."})
            pending.clear()
            if extras:
                messages.append({"role": "user", "content": _merge_texts(extras)})
                extras.clear()

        for m in self.conv.messages:
            role = m["role"]
            if role == "tool":
                name = m.get("name", "")
                text = _texts(m.get("content"))
                match = next((i for i, (_, n) in enumerate(pending) if n == name), None)
                if match is None:
                    extras.append({"type": "text", "text": f"[{name}] {text}\n"})
                else:
                    call_id, _ = pending.pop(match)
                    messages.append({"role": "tool", "tool_call_id": call_id, "content": text})
                for part in m.get("content") or []:
                    if part.get("type") == "image":
                        extras.append({"type": "text", "text": f"{part['ref']} (from {name}):"})
                        extras.append(self.image_part(part["ref"]))
                continue
            flush()
            if role == "user":
                messages.append({"role": "user", "content": self.parts(m.get("content"))})
            elif role == "assistant":
                n_turn += 1
                out: dict[str, Any] = {"role": "assistant", "content": _texts(m.get("content")) or None}
                calls = []
                for j, call in enumerate(m.get("tool_calls") or []):
                    fn = call.get("function", call)
                    args = _arguments(fn.get("arguments"))
                    call_id = call.get("id") or f"call_{n_turn}_{j}"
                    calls.append({"id": call_id, "type": "function", "function": {
                        "name": fn["name"], "arguments": args if isinstance(args, str) else json.dumps(args)}})
                    pending.append((call_id, fn["name"]))
                if calls:
                    out["tool_calls"] = calls
                elif out["content"] is None:
                    out["content"] = ""
                messages.append(out)
        flush()
        return messages


def to_openai_messages(conv: Conversation, tools: list[dict[str, Any]], *, native_tools: bool = False,
                       label_images: bool = True, image_detail: str | None = None,
                       image_part: Callable[[Image.Image], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The conversation as OpenAI chat-completions messages (text protocol, or the API's tool fields).

    Images become PNG data-URL ``image_url`` parts, or whatever ``image_part(image)`` returns (vLLM's PIL parts)."""
    renderer = _Renderer(conv, label_images=label_images, image_detail=image_detail, image_part=image_part)
    return renderer.native_mode(tools) if native_tools else renderer.text_mode(tools)


def message_to_text(message: dict[str, Any], *, native_tools: bool = False) -> str:
    """An API reply message as a native-protocol turn: its text, then its ``tool_calls`` as ``<tool_call>`` text."""
    content = message.get("content")
    text = _texts(content) if isinstance(content, list) else (content or "")
    if not native_tools and "<tool_response>" in text:  # the model imagined the tool's answer: drop it
        text = text.split("<tool_response>")[0].rstrip()
    calls = [_call_text(c["function"]["name"], _arguments(c["function"].get("arguments")))
             for c in message.get("tool_calls") or [] if c.get("function")]
    return "\n".join([t for t in [text.strip()] if t] + calls)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _api_message(response: httpx.Response) -> str:
    """The error message an OpenAI-compatible API put in its body (OpenAI, Gemini and vLLM shapes)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:1000] or response.reason_phrase
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if body.get("message"):
            return str(body["message"])
    return json.dumps(body)[:1000]


class OpenAIPolicy(Policy):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint; see the module docstring."""

    protocol = "native"

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str = "OPENAI_API_KEY",
        max_tokens: int = 512,
        temperature: float = 0.0,
        max_retries: int = 5,
        requests_per_minute: float | None = None,
        concurrency: int = 8,
        timeout_s: float = 120,
        native_tools: bool = False,
        *,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        label_images: bool = True,
        image_detail: str | None = None,
        stop: list[str] | None = None,
        seed: int | None = None,
        max_tokens_param: str = "max_tokens",
        extra_body: dict[str, Any] | None = None,
    ):
        if concurrency < 1 or max_retries < 0:
            raise ValueError("concurrency must be >= 1 and max_retries >= 0")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.max_tokens, self.temperature = max_tokens, temperature
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.native_tools = native_tools
        self.label_images, self.image_detail = label_images, image_detail
        self.stop, self.seed, self.max_tokens_param = stop, seed, max_tokens_param
        self.extra_body = dict(extra_body or {})
        self.concurrency = concurrency
        key = os.environ.get(api_key_env, "").strip() if api_key_env else ""
        if not key and not is_local_url(self.base_url):
            raise ValueError(f"OpenAIPolicy: no API key for {self.base_url}: set the environment variable "
                             f"{api_key_env or 'OPENAI_API_KEY'} (api_key_env names the variable to read)")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 30.0)),
                                  limits=httpx.Limits(max_connections=concurrency,
                                                      max_keepalive_connections=concurrency))
        self._limiter = RateLimiter(requests_per_minute) if requests_per_minute else None
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="openai-policy")

    # -- requests ------------------------------------------------------------------------------------------------

    def payload(self, conv: Conversation, tools: list[dict[str, Any]]) -> dict[str, Any]:
        """The JSON body of the request for one conversation."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(conv, tools, native_tools=self.native_tools,
                                           label_images=self.label_images, image_detail=self.image_detail),
            self.max_tokens_param: self.max_tokens,
            "temperature": self.temperature,
        }
        if self.native_tools and tools:
            body["tools"] = tools
        if self.stop:
            body["stop"] = list(self.stop)
        if self.seed is not None:
            body["seed"] = self.seed
        body.update(self.extra_body)
        return body

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [0.5, 1.5) of the nominal delay, capped at ``max_backoff_s``."""
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random())

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST one request with retries; returns the reply's first choice's message."""
        last = ""
        for attempt in range(self.max_retries + 1):
            if self._limiter is not None:
                self._limiter.acquire()
            wait: float | None = None
            try:
                response = self._http.post(self.url, json=body)
            except httpx.TransportError as exc:  # connection refused/reset, timeouts
                last = f"could not reach {self.url}: {type(exc).__name__}: {exc}"
                status = None
            else:
                status = response.status_code
                if status < 400:
                    return self._message(response)
                message = _api_message(response)
                if status not in RETRYABLE_STATUS and status < 500:
                    raise OpenAIAPIError(f"{self.url} refused the request for model {self.model!r} "
                                         f"(HTTP {status}): {message}", status)
                last = f"HTTP {status}: {message}"
                wait = _retry_after(response)
            if attempt == self.max_retries:
                break
            time.sleep(min(wait, MAX_RETRY_AFTER_S) if wait is not None else self._delay(attempt))
        raise OpenAIAPIError(f"{self.url} failed for model {self.model!r} after {self.max_retries + 1} attempts; "
                             f"last error: {last}", status)

    def _message(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
            return data["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise OpenAIAPIError(f"{self.url} answered HTTP {response.status_code} without a chat completion "
                                 f"message: {response.text[:500]}", response.status_code) from None

    def generate(self, conversations: list[Conversation], tools: list[dict[str, Any]]) -> list[str]:
        bodies = [self.payload(conv, tools) for conv in conversations]
        messages = list(self._pool.map(self.complete, bodies))
        return [message_to_text(m, native_tools=self.native_tools) for m in messages]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()
