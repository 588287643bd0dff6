"""VLLMPolicy: message building and the missing-vLLM error on CPU; a real offline engine on a CUDA machine.

The GPU test needs vLLM (``pip install 'thinkimg[gpu]'``) and a local vision-language checkpoint named by
``THINKIMG_VLLM_MODEL`` (e.g. a Qwen2-VL-2B-Instruct folder); it is skipped, saying why, otherwise.
Server mode is tested with the other OpenAI-compatible tests (tests/test_openai_policy.py).
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from PIL import Image

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.policies import build_policy
from thinkimg.agent.policies.vllm import VLLM_MISSING, _template_messages, _text_messages
from thinkimg.agent.protocol import parse

OCR_SCHEMA = {"type": "function", "function": {
    "name": "OCR", "description": "Read the text in an image.",
    "parameters": {"type": "object", "properties": {"image": {"type": "string"}}, "required": ["image"]}}}


def _episode() -> Conversation:
    conv = Conversation.start(Image.new("RGB", (64, 48), "white"), "What is the title?")
    conv.add_assistant("", [{"name": "OCR", "arguments": {"image": "img_0"}}])
    ref = conv.add_image(Image.new("RGB", (32, 24), "red"))
    conv.add_tool("OCR", f'"Sales" [1, 2, 3, 4] The result is {ref}.', ref)
    return conv


def test_offline_mode_without_vllm_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail whether or not it is installed
    with pytest.raises(ImportError) as info:
        build_policy("vllm", model="/models/none")
    assert "pip install 'thinkimg[gpu]'" in str(info.value) and str(info.value) == VLLM_MISSING


def test_bad_arguments_fail_before_loading_anything():
    with pytest.raises(ValueError, match="unknown mode"):
        build_policy("vllm", model="m", mode="cloud")
    with pytest.raises(ValueError, match="max_images"):
        build_policy("vllm", model="m", max_images=0)


def test_text_render_passes_every_image_as_pil_in_order():
    conv = _episode()
    messages = _text_messages(conv, [OCR_SCHEMA])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "<tools>" in messages[0]["content"] and "<tool_call>" in messages[2]["content"]
    images = [p["image_pil"] for m in messages if isinstance(m["content"], list) for p in m["content"]
              if p["type"] == "image_pil"]
    assert [im.size for im in images] == [(64, 48), (32, 24)]
    assert messages[3]["content"][0]["text"] == "<tool_response>\n"


def test_template_render_keeps_structured_tool_calls():
    messages = _template_messages(_episode(), [OCR_SCHEMA])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "OCR", "arguments": '{"image": "img_0"}'}
    assert messages[2]["content"][0]["type"] == "image_pil" and messages[2]["name"] == "OCR"
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]


def _gpu_ready() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA GPU"
    if importlib.util.find_spec("vllm") is None:
        return "vLLM is not installed (pip install 'thinkimg[gpu]')"
    if not os.environ.get("THINKIMG_VLLM_MODEL"):
        return "set THINKIMG_VLLM_MODEL to a local vision-language checkpoint folder"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_ready() is not None, reason=_gpu_ready() or "")
def test_offline_engine_takes_several_images_per_prompt():
    policy = build_policy("vllm", model=os.environ["THINKIMG_VLLM_MODEL"], max_images=4, max_tokens=64,
                          max_model_len=8192, gpu_memory_utilization=0.5)
    try:
        fresh = Conversation.start(Image.new("RGB", (224, 224), "white"), "What color is the image?")
        texts = policy.generate([_episode(), fresh], [OCR_SCHEMA])  # the first shows two images
        assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
        for text in texts:
            parse(text, "native", {"img_0": (64, 48)})  # never raises, whatever the model wrote
    finally:
        policy.close()
