"""A warm start for the tiny model: causal language modelling on the text of the training trajectories.

A randomly initialised tiny model has never read anything, and SFT's assistant-only loss supervises ~30 tokens of a
~2,300-token trajectory, so the model learns the call format but not to read (copy a label or a value from the
question or the tool output). Real base models arrive pretrained; this stage gives the tiny one the same start at
small cost: the ``sft`` split's trajectories rendered by the chat template *without* the tool block and without the
image spans (question, calls, OCR and tool texts, answer), packed into fixed-length chunks with every token in the
loss. Only training-split text is used; the eval split's charts come from held-out tables and themes.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from thinkimg.config import StrictModel


class PretrainParams(StrictModel):
    """``model.pretrain`` in ``params.yaml``: 0 steps (the default) skips the warm start."""

    steps: int = Field(0, ge=0)
    dataset: Path = Path("artifacts/datasets/charts")
    seq_len: int = Field(512, ge=32, le=32768)
    batch_size: int = Field(8, ge=1, le=4096)
    learning_rate: float = Field(2e-3, gt=0, le=1.0)
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    seed: int = Field(0, ge=0)


def _text_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [part for part in content if part.get("type") == "text"]
        out.append({**message, "content": content})
    return out


def corpus(processor: Any, dataset: Path) -> list[str]:
    """The ``sft`` split's trajectories as chat-template text without the tool block and the images."""
    from thinkimg.data.dataset import read_split

    texts = []
    for record in read_split(dataset, "sft", check_images=False):
        messages = json.loads(record["conversation"])["messages"]
        texts.append(processor.apply_chat_template(_text_only(messages), tokenize=False))
    return texts


def pretrain(model_dir: Path, params: PretrainParams, *, progress: bool = True) -> dict[str, Any]:
    """Train the model in ``model_dir`` for ``params.steps`` steps on the trajectory text; save it in place.

    Returns the first and last logged losses, tokens seen and seconds."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForImageTextToText, get_cosine_schedule_with_warmup

    from thinkimg.agent.policies.hf_processor import load_processor
    from thinkimg.train.common import TrainError

    if not params.dataset.is_dir():
        raise TrainError(f"{params.dataset}: dataset folder not found for model.pretrain (run `thinkimg data curate` "
                         "first, or set model.pretrain.steps to 0)")
    processor = load_processor(model_dir)
    tokenizer = processor.tokenizer
    ids: list[int] = []
    for text in corpus(processor, params.dataset):
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        ids.append(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    chunks = [ids[i:i + params.seq_len] for i in range(0, len(ids) - params.seq_len + 1, params.seq_len)]
    if len(chunks) < params.batch_size:
        raise TrainError(f"{params.dataset}: {len(ids)} tokens of trajectory text make {len(chunks)} chunks of "
                         f"{params.seq_len}; model.pretrain needs at least batch_size={params.batch_size}")
    torch.manual_seed(params.seed)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(params.warmup_ratio * params.steps), params.steps)
    rng = random.Random(params.seed)
    order: list[int] = []
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(range(params.steps), desc="pretrain", disable=not progress)
    for step in bar:
        if len(order) < params.batch_size:
            order = list(range(len(chunks)))
            rng.shuffle(order)
        batch = torch.tensor([chunks[order.pop()] for _ in range(params.batch_size)])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
    model.save_pretrained(str(model_dir))
    window = max(1, min(20, len(losses) // 4))
    return {"steps": params.steps, "chunks": len(chunks), "tokens_seen": params.steps * params.batch_size *
            params.seq_len, "loss_first": sum(losses[:window]) / window, "loss_last": sum(losses[-window:]) / window,
            "seconds": round(time.perf_counter() - start, 1)}
