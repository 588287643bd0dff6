"""HFPolicy: a local Hugging Face vision-language checkpoint (Qwen2-VL, Qwen2.5-VL, Qwen3-VL or the tiny test model)
driven through ``transformers`` ``generate``.

Each conversation is rendered with the processor's chat template (the tools' JSON schemas in the system block), its
images passed in the order the messages show them, the batch left-padded, and only the new tokens decoded. Special
tokens are skipped when decoding; ``<tool_call>`` / ``<answer>`` are normal tokens and stay. Generation stops at
``<|im_end|>`` and may never emit vision tokens. A prompt is never truncated (that could cut an image span): one
longer than the model's positions is an error.
"""

from __future__ import annotations

from typing import Any

from thinkimg.agent.conversation import Conversation
from thinkimg.agent.policies.base import Policy
from thinkimg.agent.policies.hf_processor import load_processor
from thinkimg.agent.tool_record import check_tool_record

#: Tokens generation must never produce (they only come from the processor's image expansion).
VISION_TOKENS = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
#: Tokens that end a turn.
STOP_TOKENS = ["<|im_end|>", "<|endoftext|>"]


class PromptTooLongError(ValueError):
    """A rendered prompt (images expanded) does not fit the model's positions."""


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else "auto"
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def conversation_images(messages: list[dict[str, Any]]) -> list[Any]:
    """The PIL images of resolved messages, in the order the template shows them."""
    return [part["image"] for m in messages if isinstance(m.get("content"), list) for part in m["content"]
            if isinstance(part, dict) and part.get("type") == "image"]


class HFPolicy(Policy):
    protocol = "native"

    def __init__(self, pretrained: str, max_new_tokens: int = 256, temperature: float = 0.0, batch_size: int = 8,
                 device: str = "auto", dtype: str = "auto"):
        import torch
        from transformers import AutoModelForImageTextToText

        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")
        self.pretrained = str(pretrained)
        check_tool_record(self.pretrained)  # a model trained with other tool schemas would see unknown prompts
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.batch_size = int(batch_size)
        self.device = _resolve_device(device)
        self.processor = load_processor(self.pretrained)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(self.pretrained,
                                                                 dtype=_resolve_dtype(dtype, self.device))
        self.model.to(self.device).eval()
        vocab = self.tokenizer.get_vocab()
        self.stop_ids = [vocab[t] for t in STOP_TOKENS if t in vocab]
        self.banned_ids = [vocab[t] for t in VISION_TOKENS if t in vocab]
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = STOP_TOKENS[-1] if STOP_TOKENS[-1] in vocab else self.tokenizer.eos_token
        text_config = self.model.config.get_text_config()
        self.max_positions: int | None = getattr(text_config, "max_position_embeddings", None)
        self._torch = torch

    def render(self, conversation: Conversation, tools: list[dict[str, Any]]) -> tuple[str, list[Any]]:
        """The prompt text (generation prompt appended) and its images, in order."""
        messages = conversation.resolved()
        text = self.processor.apply_chat_template(messages, tools=tools or None, add_generation_prompt=True,
                                                  tokenize=False)
        return text, conversation_images(messages)

    def generate(self, conversations: list[Conversation], tools: list[dict[str, Any]]) -> list[str]:
        out: list[str] = []
        for start in range(0, len(conversations), self.batch_size):
            out.extend(self._generate_batch(conversations[start:start + self.batch_size], tools))
        return out

    def _generate_batch(self, conversations: list[Conversation], tools: list[dict[str, Any]]) -> list[str]:
        torch = self._torch
        rendered = [self.render(c, tools) for c in conversations]
        texts = [t for t, _ in rendered]
        images = [img for _, imgs in rendered for img in imgs]
        inputs = self.processor(text=texts, images=images or None, padding=True, truncation=False,
                                return_tensors="pt")
        prompt_len = inputs["input_ids"].shape[1]
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        max_new = self.max_new_tokens
        if self.max_positions is not None:
            longest = max(lengths)
            if longest >= self.max_positions:
                i = lengths.index(longest)
                meta = conversations[i].meta
                raise PromptTooLongError(
                    f"prompt of conversation {meta.get('id', i)!r} is {longest} tokens (images expanded), more than "
                    f"the model's {self.max_positions} positions; prompts are never truncated (that could cut an "
                    f"image span): use fewer rounds, smaller images or a model with more positions")
            max_new = min(max_new, self.max_positions - longest)
        inputs = inputs.to(self.device)
        sampling = self.temperature > 0
        kwargs: dict[str, Any] = {"do_sample": sampling}
        if sampling:
            kwargs.update(temperature=self.temperature, top_k=0, top_p=1.0)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        with torch.inference_mode():
            generated = self.model.generate(
                **inputs, max_new_tokens=max_new, eos_token_id=self.stop_ids,
                pad_token_id=self.tokenizer.pad_token_id, suppress_tokens=self.banned_ids or None, **kwargs)
        new_tokens = generated[:, prompt_len:].cpu()
        return self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def close(self) -> None:
        self.model = None
        self.processor = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
