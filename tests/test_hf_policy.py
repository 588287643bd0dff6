"""The tiny local Qwen2-VL model (built without a download) and the HF policy driving it through the agent runtime."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.policies import POLICIES, build_policy
from thinkimg.agent.policies.hf import PromptTooLongError
from thinkimg.agent.policies.hf_processor import load_processor
from thinkimg.agent.rollout import rollout
from thinkimg.config import ToolsConfig
from thinkimg.data.render import render_bar_chart
from thinkimg.tools import InProcessToolClient
from thinkimg.train.tiny import SPECIAL_TOKENS, TAG_TOKENS, build_tiny_model, trl_chat_template


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


@pytest.fixture(scope="module")
def policy(tiny):
    pol = build_policy("hf", pretrained=str(tiny), max_new_tokens=24, device="cpu", batch_size=4)
    yield pol
    pol.close()


@pytest.fixture(scope="module")
def charts():
    return [render_bar_chart({"A": 3.0 + i, "B": 7.5, "C": 12.0 - i}, title=f"Chart {i}") for i in range(4)]


def _load_model(path):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(str(path)).eval()


# ---------------------------------------------------------------------------------------------------- tiny model


def test_tiny_model_follows_the_rules(tiny):
    from transformers import AutoConfig

    processor = load_processor(tiny)
    tok = processor.tokenizer
    cfg = AutoConfig.from_pretrained(str(tiny))
    text = cfg.get_text_config()
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert cfg.vision_config.hidden_size == text.hidden_size
    assert text.vocab_size == len(tok)
    for attr, token in [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]:
        assert getattr(cfg, attr) == tok.convert_tokens_to_ids(token)
    # special tokens and tags are single ids; digits are split one by one
    for token in SPECIAL_TOKENS + TAG_TOKENS:
        assert len(tok(token, add_special_tokens=False)["input_ids"]) == 1, token
    assert tok.tokenize("2019")[-4:] == ["2", "0", "1", "9"]
    ids = tok("<tool_call>x</tool_call><answer>41</answer><|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<tool_call>x</tool_call><answer>41</answer>"
    # the chat template is TRL's, byte for byte, wherever it is saved
    assert processor.chat_template == trl_chat_template()
    assert (tiny / "chat_template.jinja").read_text(encoding="utf-8") == trl_chat_template()
    saved = json.loads((tiny / "processor_config.json").read_text())
    assert saved["processor_class"] == "Qwen2VLProcessor"


def test_tiny_build_is_deterministic_for_a_seed(tiny, tmp_path):
    again = build_tiny_model(tmp_path / "again", seed=0)
    assert (again / "tokenizer.json").read_bytes() == (tiny / "tokenizer.json").read_bytes()
    a, b = _load_model(tiny).state_dict(), _load_model(again).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_rope_base_is_a_model_parameter(tmp_path):
    from transformers import AutoConfig

    from thinkimg.train.base import ModelParams

    params = ModelParams.model_validate({"tiny": {"rope_theta": 1e6}})
    built = build_tiny_model(tmp_path / "rope", seed=0, **params.tiny.model_dump(exclude={"tokenizer_dataset"}))
    assert AutoConfig.from_pretrained(str(built)).get_text_config().rope_parameters["rope_theta"] == 1e6
    with pytest.raises(ValueError, match="rope_theta"):
        ModelParams.model_validate({"tiny": {"rope_theta": 0.5}})


def test_save_and_reload_give_identical_logits(tiny, tmp_path, charts):
    processor = load_processor(tiny)
    model = _load_model(tiny)
    messages = [{"role": "user", "content": [{"type": "image", "image": charts[0].image},
                                             {"type": "text", "text": "What is the value of B?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[charts[0].image], return_tensors="pt")
    assert isinstance(inputs["pixel_values"], torch.Tensor) and isinstance(inputs["image_grid_thw"], torch.Tensor)
    with torch.no_grad():
        before = model(**inputs).logits
    model.save_pretrained(tmp_path / "copy")
    processor.save_pretrained(tmp_path / "copy")
    reloaded_processor = load_processor(tmp_path / "copy")
    again = reloaded_processor(text=[text], images=[charts[0].image], return_tensors="pt")
    assert torch.equal(again["input_ids"], inputs["input_ids"])
    with torch.no_grad():
        after = _load_model(tmp_path / "copy")(**again).logits
    assert torch.equal(before, after)


def test_chat_template_renders_a_tool_call_turn_without_a_newline_before_the_call(tiny, charts):
    processor = load_processor(tiny)
    call = [{"name": "Crop", "arguments": {"image": "img_0", "box": [0, 0, 10, 10]}}]
    conv = Conversation.start(charts[0].image, "q")
    conv.add_assistant("", call)
    assert conv.messages[-1]["content"] == []
    text = processor.apply_chat_template(conv.resolved(), tokenize=False)
    assert ('<|im_start|>assistant\n<tool_call>\n{"name": "Crop", "arguments": {"image": "img_0", '
            '"box": [0, 0, 10, 10]}}\n</tool_call><|im_end|>\n') in text
    with_thought = Conversation.start(charts[0].image, "q")
    with_thought.add_assistant("Look closer.", call)
    assert "<|im_start|>assistant\nLook closer.\n<tool_call>\n" in processor.apply_chat_template(
        with_thought.resolved(), tokenize=False)


# ---------------------------------------------------------------------------------------------------- HF policy


def test_hf_policy_is_registered():
    assert POLICIES["hf"] == "thinkimg.agent.policies.hf:HFPolicy"


def test_hf_policy_runs_a_three_round_eval_end_to_end(policy, charts):
    rows = [{"id": f"c{i}", "image": c.image, "question": "What is the value of B?", "answer": "7.5"}
            for i, c in enumerate(charts)]
    client = InProcessToolClient(ToolsConfig(tools=["DrawHorizontalLineByY", "Crop"]))
    episodes = list(rollout(policy, rows, client=client, max_rounds=3, batch_size=4))
    assert sorted(e.row["id"] for e in episodes) == ["c0", "c1", "c2", "c3"]
    for episode in episodes:
        assert 1 <= episode.rounds <= 3
        messages = episode.conversation.messages
        assert sum(m["role"] == "assistant" for m in messages) == episode.rounds
        if episode.format_errors:  # a malformed turn is answered by an error observation, not an exception
            errors = [m for m in messages if m["role"] == "tool" and m["name"] == "error"]
            assert errors and all(m["content"][-1]["text"].startswith("Error: ") for m in errors)
        if episode.answer is None:
            assert episode.rounds == 3


def test_hf_policy_batches_like_single_calls_with_tool_images(policy, charts):
    with_tool_image = Conversation.start(charts[0].image, "What is A?")
    with_tool_image.add_assistant("", [{"name": "Crop", "arguments": {"image": "img_0", "box": [0, 0, 320, 240]}}])
    ref = with_tool_image.add_image(charts[1].image.crop((0, 0, 320, 240)))
    with_tool_image.add_tool("Crop", "Cropped.", ref)
    fresh = Conversation.start(charts[2].image, "What is C?")
    text, images = policy.render(with_tool_image, [])
    assert text.count("<|image_pad|>") == 2 and len(images) == 2 and text.endswith("<|im_start|>assistant\n")
    batched = policy.generate([with_tool_image, fresh], [])
    assert batched == policy.generate([with_tool_image], []) + policy.generate([fresh], [])
    assert all(isinstance(t, str) for t in batched)


def test_hf_policy_never_emits_vision_tokens_keeps_tags_and_stops_at_im_end(policy, charts):
    vocab = policy.tokenizer.get_vocab()
    boost: dict[int, float] = {}

    def hook(_module, _inputs, output):
        for token_id, value in boost.items():
            output[..., token_id] += value
        return output

    handle = policy.model.lm_head.register_forward_hook(hook)
    conv = Conversation.start(charts[0].image, "q")
    try:
        boost.update({vocab["<|image_pad|>"]: 1e4, vocab["<|vision_start|>"]: 1e4, vocab["<answer>"]: 1e3})
        assert policy.generate([conv], []) == ["<answer>" * policy.max_new_tokens]
        boost[vocab["<|im_end|>"]] = 5e3
        assert policy.generate([conv], []) == [""]
    finally:
        handle.remove()


def test_hf_policy_refuses_prompts_longer_than_the_model_positions(policy, charts):
    conv = Conversation.start(charts[0].image, "q", id="long-one")
    saved = policy.max_positions
    policy.max_positions = 40
    try:
        with pytest.raises(PromptTooLongError, match="long-one"):
            policy.generate([conv], [])
    finally:
        policy.max_positions = saved
