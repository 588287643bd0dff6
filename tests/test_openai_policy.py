"""OpenAIPolicy over real HTTP against ``fake_openai_server``: a stand-in for a remote chat-completions API.

No real model API is reachable here, so the test double is a small FastAPI app served by uvicorn on a free
127.0.0.1 port. It records every request and answers deterministically like a tool-using model: first an OCR call
on img_0, then (once it has seen a tool response) an answer quoting the first line the OCR returned. It can be told
to fail the next requests (429 with Retry-After, 503, 400) to exercise retries and errors.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.policies import build_policy
from thinkimg.agent.policies.openai_api import (
    OpenAIAPIError,
    OpenAIPolicy,
    RateLimiter,
    message_to_text,
    to_openai_messages,
)
from thinkimg.agent.protocol import format_answer, format_call, parse_native
from thinkimg.agent.rollout import rollout
from thinkimg.config import ToolsConfig
from thinkimg.data.render import render_bar_chart
from thinkimg.tools import InProcessToolClient

OCR_SCHEMA = {"type": "function", "function": {
    "name": "OCR", "description": "Read the text in an image.",
    "parameters": {"type": "object", "properties": {"image": {"type": "string"}}, "required": ["image"]}}}


# ---------------------------------------------------------------------------------------------------- test double


@dataclass
class FakeOpenAIState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)  # served first, in order
    delay_s: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _fake_reply(body: dict[str, Any]) -> dict[str, Any]:
    """What the stand-in model says: call OCR first, then answer with the first text line the tool returned."""
    messages = body["messages"]
    if "tools" in body:  # native tool fields
        tool_texts = [m["content"] for m in messages if m["role"] == "tool"]
        if not tool_texts:
            return {"role": "assistant", "content": "Let me read it.", "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "OCR", "arguments": json.dumps({"image": "img_0"})}}]}
        first = re.search(r'"(.*?)"', tool_texts[-1])
        return {"role": "assistant", "content": format_answer(first.group(1) if first else "none")}
    system = _text_of(messages[0]["content"]) if messages[0]["role"] == "system" else ""
    if "<tools>" not in system:
        return {"role": "assistant", "content": format_answer("no tools")}
    last = _text_of(messages[-1]["content"])
    if "<tool_response>" not in last:
        return {"role": "assistant", "content": "I will read the chart.\n" + format_call("OCR", {"image": "img_0"})}
    first = re.search(r'"(.*?)"', last)
    return {"role": "assistant", "content": format_answer(first.group(1) if first else "none")}


def _fake_app(state: FakeOpenAIState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        with state.lock:
            state.requests.append(body)
            state.headers.append(dict(request.headers))
            failure = state.failures.pop(0) if state.failures else None
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            if state.delay_s:
                await asyncio.sleep(state.delay_s)
            if failure is not None:
                status, headers, error = failure
                return JSONResponse(error, status_code=status, headers=headers)
            message = _fake_reply(body)
            finish = "tool_calls" if message.get("tool_calls") else "stop"
            return {"id": "chatcmpl-fake", "object": "chat.completion", "model": body["model"],
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
        finally:
            with state.lock:
                state.in_flight -= 1

    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def fake_openai_server():
    """Stand-in for a remote OpenAI-compatible API: uvicorn in a thread on a free port; yields (base_url, state)."""
    state = FakeOpenAIState()
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(_fake_app(state), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "fake OpenAI server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/v1", state
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def api(fake_openai_server):
    """The server, its recorded requests and scripted failures cleared for this test."""
    url, state = fake_openai_server
    with state.lock:
        state.requests.clear()
        state.headers.clear()
        state.failures.clear()
        state.delay_s, state.max_in_flight = 0.0, 0
    return url, state


@pytest.fixture(scope="module")
def chart():
    return render_bar_chart({"Apples": 12, "Pears": 30, "Plums": 7}, title="Fruit sold", size=(4.0, 3.0), dpi=80)


def _conversation(chart, *, system: str | None = None) -> Conversation:
    conv = Conversation.start(chart.image, "What is the value of Pears?", system=system, id="q1")
    conv.add_assistant("Reading.", [{"name": "OCR", "arguments": {"image": "img_0"}}])
    ref = conv.add_image(chart.image.crop((0, 0, 50, 40)))
    conv.add_tool("OCR", f'"Fruit sold" [1, 2, 3, 4] The result is {ref}.', ref)
    return conv


# ---------------------------------------------------------------------------------------------------- conversion


def test_text_mode_messages_show_tools_calls_and_tool_images(chart):
    messages = to_openai_messages(_conversation(chart, system="Be brief."), [OCR_SCHEMA])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert system.startswith("Be brief.\n\n# Tools") and json.dumps(OCR_SCHEMA) in system
    user = messages[1]["content"]
    assert user[0] == {"type": "text", "text": "img_0:"}
    assert user[1]["image_url"]["url"].startswith("data:image/png;base64,") and user[2]["text"].startswith("What")
    call = parse_native(messages[2]["content"])
    assert call.thought == "Reading." and [(c.name, c.arguments) for c in call.calls] == [("OCR", {"image": "img_0"})]
    response = messages[3]["content"]
    assert response[0]["text"].startswith("<tool_response>\n") and response[1]["image_url"]["url"].startswith("data:")
    assert response[-1]["text"].endswith("The result is img_1.\n</tool_response>")
    # no tools (the ablation): no tool block and no system message when the conversation has none
    bare = to_openai_messages(Conversation.start(chart.image, "q"), [], label_images=False)
    assert [m["role"] for m in bare] == ["user"] and bare[0]["content"][0]["type"] == "image_url"


def test_native_mode_messages_use_tool_fields_and_put_tool_images_in_a_user_turn(chart):
    conv = _conversation(chart)
    conv.add_tool("error", "Error: no <tool_call> and no <answer>")
    messages = to_openai_messages(conv, [OCR_SCHEMA], native_tools=True)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    assistant, tool, extra = messages[1], messages[2], messages[3]
    call = assistant["tool_calls"][0]
    assert call["function"] == {"name": "OCR", "arguments": '{"image": "img_0"}'} and tool["tool_call_id"] == call["id"]
    assert isinstance(tool["content"], str) and "Fruit sold" in tool["content"]
    kinds = [p["type"] for p in extra["content"]]
    assert kinds == ["text", "image_url", "text"] and extra["content"][0]["text"] == "img_1 (from OCR):"
    assert extra["content"][2]["text"].startswith("[error] Error: no <tool_call>")


def test_reply_tool_calls_become_native_text():
    text = message_to_text({"content": "Look.", "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "Crop", "arguments": '{"box": [1, 2, 3, 4]}'}},
        {"id": "2", "type": "function", "function": {"name": "OCR", "arguments": "not json"}}]}, native_tools=True)
    turn = parse_native(text)
    assert turn.thought == "Look." and turn.calls[0].arguments == {"box": [1, 2, 3, 4]}
    assert any("not JSON" in e for e in turn.errors)
    # in text mode a tool response the model invents is cut off
    made_up = format_call("OCR", {}) + "\n<tool_response>\nfake\n</tool_response>\n<answer>9</answer>"
    assert message_to_text({"content": made_up}) == format_call("OCR", {})


# ---------------------------------------------------------------------------------------------------- HTTP


def test_policy_sends_data_urls_and_tool_block_and_parses_replies(api, chart, monkeypatch):
    url, state = api
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    policy = build_policy("openai", model="fake-4o", base_url=url, api_key_env="FAKE_KEY", max_tokens=64)
    try:
        (first,) = policy.generate([Conversation.start(chart.image, "What is the value of Pears?")], [OCR_SCHEMA])
        assert parse_native(first).calls[0].name == "OCR"
        (second,) = policy.generate([_conversation(chart)], [OCR_SCHEMA])
        assert parse_native(second).answer == "Fruit sold"
    finally:
        policy.close()
    body = state.requests[0]
    assert body["model"] == "fake-4o" and body["max_tokens"] == 64 and body["temperature"] == 0.0
    assert "tools" not in body and "<tools>" in body["messages"][0]["content"]
    assert body["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert state.headers[0]["authorization"] == "Bearer sk-test"


def test_retries_429_honouring_retry_after_then_succeeds(api, chart):
    url, state = api
    state.failures.append((429, {"Retry-After": "0.4"}, {"error": {"message": "Rate limit reached"}}))
    state.failures.append((503, {}, {"error": {"message": "overloaded"}}))
    policy = OpenAIPolicy("fake", base_url=url, backoff_s=0.01)
    start = time.monotonic()
    try:
        (text,) = policy.generate([Conversation.start(chart.image, "q")], [])
    finally:
        policy.close()
    assert time.monotonic() - start >= 0.4
    assert text == format_answer("no tools") and len(state.requests) == 3


def test_client_error_is_not_retried_and_names_the_api_message(api, chart):
    url, state = api
    state.failures.append((400, {}, {"error": {"message": "Invalid image_url: image too large",
                                              "type": "invalid_request_error"}}))
    policy = OpenAIPolicy("fake", base_url=url, backoff_s=0.01)
    try:
        with pytest.raises(OpenAIAPIError, match=r"HTTP 400\): Invalid image_url: image too large") as info:
            policy.generate([Conversation.start(chart.image, "q")], [])
    finally:
        policy.close()
    assert info.value.status == 400 and len(state.requests) == 1


def test_gives_up_after_max_retries_with_the_last_error(api, chart):
    url, state = api
    state.failures.extend([(503, {}, {"error": {"message": "overloaded"}})] * 3)
    policy = OpenAIPolicy("fake", base_url=url, max_retries=2, backoff_s=0.01)
    try:
        with pytest.raises(OpenAIAPIError, match="after 3 attempts; last error: HTTP 503: overloaded"):
            policy.generate([Conversation.start(chart.image, "q")], [])
    finally:
        policy.close()
    assert len(state.requests) == 3


def test_unreachable_server_is_retried_then_a_clear_error(chart):
    policy = OpenAIPolicy("fake", base_url=f"http://127.0.0.1:{_free_port()}/v1", max_retries=1, backoff_s=0.01)
    try:
        with pytest.raises(OpenAIAPIError, match="could not reach http://127.0.0.1"):
            policy.generate([Conversation.start(chart.image, "q")], [])
    finally:
        policy.close()


def test_missing_api_key_names_the_variable(monkeypatch, api):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIPolicy("gpt-4o")
    with pytest.raises(ValueError, match="GEMINI_API_KEY"):
        OpenAIPolicy("gemini-2.0-flash", base_url="https://generativelanguage.googleapis.com/v1beta/openai",
                     api_key_env="GEMINI_API_KEY")
    # a local server (vllm serve) needs no key, and none is sent
    url, state = api
    policy = OpenAIPolicy("local", base_url=url.replace("127.0.0.1", "localhost"))
    try:
        policy.generate([Conversation.start(render_bar_chart({"a": 1}, size=(2, 2), dpi=40).image, "q")], [])
    finally:
        policy.close()
    assert "authorization" not in state.headers[0]


def test_native_tools_round_trip(api, chart):
    url, state = api
    policy = OpenAIPolicy("fake", base_url=url, native_tools=True)
    try:
        conv = Conversation.start(chart.image, "What is the value of Pears?")
        (first,) = policy.generate([conv], [OCR_SCHEMA])
        turn = parse_native(first)
        assert turn.thought == "Let me read it." and [(c.name, c.arguments) for c in turn.calls] == [
            ("OCR", {"image": "img_0"})]
        conv.add_assistant(turn.thought, [c.to_dict() for c in turn.calls])
        conv.add_tool("OCR", '"Pears" [5, 6, 7, 8]')
        (second,) = policy.generate([conv], [OCR_SCHEMA])
    finally:
        policy.close()
    assert parse_native(second).answer == "Pears"
    assert state.requests[0]["tools"] == [OCR_SCHEMA] and "<tools>" not in json.dumps(state.requests[0]["messages"])
    assert [m["role"] for m in state.requests[1]["messages"]] == ["user", "assistant", "tool"]


def test_a_batch_is_sent_concurrently(api, chart):
    url, state = api
    state.delay_s = 0.3
    policy = OpenAIPolicy("fake", base_url=url, concurrency=4)
    start = time.monotonic()
    try:
        texts = policy.generate([Conversation.start(chart.image, f"q{i}") for i in range(4)], [])
    finally:
        policy.close()
    assert len(texts) == 4 and len(state.requests) == 4 and state.max_in_flight == 4
    assert time.monotonic() - start < 1.0  # four 0.3 s requests at once, not one after another
    assert sorted(_text_of(r["messages"][0]["content"])[-2:] for r in state.requests) == ["q0", "q1", "q2", "q3"]


def test_rate_limiter_spaces_requests():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)

    limiter = RateLimiter(120, clock=lambda: now[0], sleep=sleep)  # 2 per second
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.5, 1.0]
    now[0] = 10.0  # idle long enough: the bucket refills to its burst of one, no more
    assert limiter.acquire() == 0.0 and limiter.acquire() == 0.5


def test_rate_limited_batch_over_http(api, chart):
    url, state = api
    policy = OpenAIPolicy("fake", base_url=url, requests_per_minute=600, concurrency=4)  # one per 0.1 s
    start = time.monotonic()
    try:
        policy.generate([Conversation.start(chart.image, "q")] * 4, [])
    finally:
        policy.close()
    assert time.monotonic() - start >= 0.29 and len(state.requests) == 4


# ---------------------------------------------------------------------------------------------------- rollout


def test_rollout_end_to_end_with_real_tools(api):
    url, state = api
    rows = []
    for i, (title, table) in enumerate([("Fruit sold", {"Apples": 12, "Pears": 30}),
                                        ("Cars made", {"2019": 41, "2020": 27, "2021": 58})]):
        chart = render_bar_chart(table, title=title, size=(5.0, 3.6), dpi=100)
        rows.append({"id": f"r{i}", "image": chart.image, "question": f"What is the title? ({title})"})
    policy = build_policy("openai", model="fake", base_url=url)
    try:
        episodes = list(rollout(policy, rows, client=InProcessToolClient(ToolsConfig(tools=["OCR"])),
                                max_rounds=3, batch_size=2))
    finally:
        policy.close()
    assert sorted(e.row["id"] for e in episodes) == ["r0", "r1"]
    for episode in episodes:
        assert episode.valid_format and episode.rounds == 2 and episode.tool_calls == 1 and episode.tool_failures == 0
        ocr_text = episode.conversation.messages[2]["content"][-1]["text"]
        assert episode.answer and f'"{episode.answer}"' in ocr_text  # the model read the real tool's output
    assert len(state.requests) == 4
    # the second turn carried the OCR result as a user <tool_response>
    assert "<tool_response>" in json.dumps(state.requests[-1]["messages"][-1])


def test_vllm_server_mode_is_the_openai_policy(api, chart):
    url, state = api
    policy = build_policy("vllm", model="served", mode="server", base_url=url, concurrency=2)
    try:
        (text,) = policy.generate([Conversation.start(chart.image, "q")], [OCR_SCHEMA])
    finally:
        policy.close()
    assert parse_native(text).calls[0].name == "OCR" and state.requests[0]["model"] == "served"
