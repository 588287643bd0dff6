"""A warm start for the tiny model: causal language modelling on the text of the training trajectories.

A randomly initialised tiny model has never read anything, and SFT's assistant-only loss supervises a few dozen
tokens of each trajectory, so the model learns the call format but not to read: it answers with labels and numbers
it memorised instead of copying them from the question or the tool output. Real base models arrive pretrained; this
stage gives the tiny one the same start at small cost: the ``sft`` split's trajectories rendered by the chat
template *without* the tool block and without the image spans (question, calls, tool texts, answer), every token in
the loss, packed into fixed-length chunks. A share ``relabel`` of them is relabelled afresh each time it is read
(:mod:`thinkimg.train.relabel`: the labels and answers it copies replaced by made-up ones), so that copying is the
only way to predict them. Copies are a few tokens in hundreds, so their gradient drowns in the rest; ``copy_weight``
adds that much loss weight to each token that repeats a made-up string (every occurrence after its first). Only
training-split text is used; the eval split's charts come from held-out tables and themes.

The warm start is resumable: every ``save_steps`` steps it writes ``<model>/pretrain-checkpoint/`` (weights,
optimizer, schedule, the stream's position and random state), and a later run with the same params and the same
built model continues from there to the same weights an uninterrupted run reaches. ``keep_checkpoints`` also keeps
each one as a loadable model folder ``<model>/pretrain-steps/step-N`` (to probe how copying forms over the run).

``copy_drill_steps`` first drills the fresh model in copying by content (:mod:`thinkimg.train.copy_drill`); a
resumed run finds the drill already in its checkpoint's weights. ``copy_rehearsal`` adds that many drill sequences
to every step, and the summary reports the held-out drill copy accuracy the warm start ends with.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from thinkimg.config import StrictModel
from thinkimg.train.relabel import PieceWords, relabel_with_mapping


class PretrainParams(StrictModel):
    """``model.pretrain`` in ``params.yaml``: 0 steps (the default) skips the warm start."""

    steps: int = Field(0, ge=0)
    dataset: Path = Path("artifacts/datasets/charts")
    seq_len: int = Field(512, ge=32, le=32768)
    batch_size: int = Field(8, ge=1, le=4096)
    learning_rate: float = Field(2e-3, gt=0, le=1.0)
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    #: Share of trajectories read with their copied labels and answers replaced by made-up ones.
    relabel: float = Field(0.0, ge=0.0, le=1.0)
    #: Extra loss weight on the tokens that repeat a made-up string of a relabelled trajectory (0: plain LM loss).
    copy_weight: float = Field(0.0, ge=0.0, le=1000.0)
    seed: int = Field(0, ge=0)
    #: Write a resumable checkpoint every this many steps (0: never; an interrupted warm start then starts over).
    save_steps: int = Field(500, ge=0)
    #: Steps of copy drill before the warm start (:mod:`thinkimg.train.copy_drill`: dense practice in copying by
    #: content, which grows the induction head the warm start's sparse copies do not); 0 skips it.
    copy_drill_steps: int = Field(0, ge=0)
    #: Held-out copy accuracy that ends each part of the drill (one word, then phrases); ``copy_drill_steps`` is
    #: then the most it may take. 0: a fixed split, half one word, half phrases.
    copy_drill_target: float = Field(0.0, ge=0.0, le=1.0)
    #: With a target: start the drill over from a fresh initialisation when its one-word part has not reached the
    #: target after this many steps (0: never).
    copy_drill_restart_steps: int = Field(0, ge=0)
    copy_drill_batch_size: int = Field(16, ge=1, le=4096)
    copy_drill_learning_rate: float = Field(1e-3, gt=0, le=1.0)
    #: Drill sequences whose copy loss is added to every warm-start step (:class:`~thinkimg.train.copy_drill.
    #: Rehearsal`: keeps the head the drill grew, which the warm start otherwise wears away); 0: none.
    copy_rehearsal: int = Field(0, ge=0, le=4096)
    #: Keep every checkpoint as a model folder ``<model>/pretrain-steps/step-N`` (weights + processor), not only the
    #: latest (which is removed when the warm start finishes).
    keep_checkpoints: bool = False


#: Fields that may change between an interrupted warm start and its resumption (they do not change the result).
_RESUMABLE_CHANGES = {"save_steps", "keep_checkpoints"}
CHECKPOINT = "pretrain-checkpoint"
STEPS = "pretrain-steps"


def _text_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = [part for part in content if part.get("type") == "text"]
        out.append({**message, "content": content})
    return out


def text_records(dataset: Path) -> list[tuple[list[dict[str, Any]], dict[str, Any]]]:
    """The ``sft`` split's trajectories as (messages without image parts, meta)."""
    from thinkimg.data.dataset import read_split

    out = []
    for record in read_split(dataset, "sft", check_images=False):
        data = json.loads(record["conversation"])
        out.append((_text_only(data["messages"]), data.get("meta", {})))
    return out


def corpus(processor: Any, dataset: Path) -> list[str]:
    """The ``sft`` split's trajectories as chat-template text without the tool block and the images."""
    return [processor.apply_chat_template(messages, tokenize=False) for messages, _ in text_records(dataset)]


def copy_mask(text: str, offsets: list[tuple[int, int]], strings: Any) -> list[int]:
    """1 for each token (char ``offsets`` into ``text``) lying inside a repeat of one of ``strings`` (an occurrence
    after the string's first), else 0."""
    mask = [0] * len(offsets)
    for string in strings:
        first = text.find(string)
        start = text.find(string, first + 1) if first >= 0 else -1
        while start >= 0:
            end = start + len(string)
            for i, (a, b) in enumerate(offsets):
                if a >= start and b <= end and b > a:
                    mask[i] = 1
            start = text.find(string, start + 1)
    return mask


class TokenStream:
    """Chunks of ``seq_len`` token ids from the trajectories drawn in random order (an epoch at a time), each one
    relabelled afresh with probability ``relabel``, separated by ``<|endoftext|>``; with each chunk, its copy mask
    (:func:`copy_mask` of the made-up strings; 0 for trajectories read as they are)."""

    def __init__(self, processor: Any, dataset: Path, seq_len: int, relabel: float, seed: int):
        self.processor = processor
        self.records = text_records(dataset)
        self.seq_len = seq_len
        self.relabel = relabel
        self.rng = random.Random(seed)
        self.eos = processor.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.words = PieceWords(processor.tokenizer)
        self.fixed = [self._ids(m) for m, _ in self.records] if relabel < 1 else []
        self.buffer: list[int] = []
        self.mask: list[int] = []
        self.order: list[int] = []

    def _ids(self, messages: list[dict[str, Any]]) -> list[int]:
        return self._encode(messages, ())[0]

    def _encode(self, messages: list[dict[str, Any]], strings: Any) -> tuple[list[int], list[int]]:
        text = self.processor.apply_chat_template(messages, tokenize=False)
        enc = self.processor.tokenizer(text, add_special_tokens=False, return_offsets_mapping=bool(strings))
        mask = copy_mask(text, enc["offset_mapping"], strings) if strings else [0] * len(enc["input_ids"])
        return enc["input_ids"] + [self.eos], mask + [0]

    def tokens(self) -> int:
        """Tokens in one pass over the trajectories as they are (not relabelled)."""
        return sum(len(ids) for ids in self.fixed) if self.fixed else sum(
            len(self._ids(m)) for m, _ in self.records)

    def chunk(self) -> list[int]:
        """The next ``seq_len`` token ids."""
        return self.chunk_with_mask()[0]

    def chunk_with_mask(self) -> tuple[list[int], list[int]]:
        """The next ``seq_len`` token ids and their copy mask."""
        while len(self.buffer) < self.seq_len:
            if not self.order:
                self.order = list(range(len(self.records)))
                self.rng.shuffle(self.order)
            i = self.order.pop()
            if self.rng.random() < self.relabel:
                messages, meta = self.records[i]
                new, mapping = relabel_with_mapping(messages, meta, self.rng, self.words)
                ids, mask = self._encode(new, sorted(set(mapping.values())))
            else:
                ids, mask = self.fixed[i], [0] * len(self.fixed[i])
            self.buffer.extend(ids)
            self.mask.extend(mask)
        out, self.buffer = self.buffer[:self.seq_len], self.buffer[self.seq_len:]
        mask, self.mask = self.mask[:self.seq_len], self.mask[self.seq_len:]
        return out, mask

    def state(self) -> dict[str, Any]:
        """Where the stream stands (random state, pending tokens, the epoch's remaining order), for a checkpoint."""
        return {"rng": self.rng.getstate(), "buffer": list(self.buffer), "mask": list(self.mask),
                "order": list(self.order)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`'s result."""
        self.rng.setstate(state["rng"])
        self.buffer, self.mask, self.order = list(state["buffer"]), list(state["mask"]), list(state["order"])


def _built_model_digest(model_dir: Path) -> str:
    """sha256 of the freshly built model (config, tokenizer, initial weights): a checkpoint resumes only onto the
    same build."""
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        path = model_dir / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def _save_checkpoint(model_dir: Path, model: Any, processor: Any, state: dict[str, Any], keep: bool) -> None:
    """Write the checkpoint next to the model (atomically: a half-written one never replaces the last good one)."""
    import torch

    final = model_dir / CHECKPOINT
    tmp = model_dir / (CHECKPOINT + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    torch.save(state, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    if keep:
        _keep_step(model_dir, model, processor, state["step"])


def _keep_step(model_dir: Path, model: Any, processor: Any, step: int) -> None:
    """Save the model as it is at ``step`` as a loadable folder ``<model>/pretrain-steps/step-N``."""
    step_dir = model_dir / STEPS / f"step-{step}"
    shutil.rmtree(step_dir, ignore_errors=True)
    model.save_pretrained(str(step_dir))
    processor.save_pretrained(str(step_dir))


def _load_checkpoint(model_dir: Path, params: PretrainParams, digest: str) -> dict[str, Any] | None:
    """The checkpoint's state when one is there; a clear error when it was written under other params or build."""
    import torch

    from thinkimg.train.common import TrainError

    path = model_dir / CHECKPOINT / "state.pt"
    if not path.exists():
        return None
    state = torch.load(path, weights_only=False)
    ours = params.model_dump(mode="json", exclude=_RESUMABLE_CHANGES)
    differ = sorted(k for k in ours if state["params"].get(k) != ours[k])
    if differ:
        was = ", ".join(f"{k}: {state['params'].get(k)!r} -> {ours[k]!r}" for k in differ)
        raise TrainError(f"{path}: the warm-start checkpoint was written with other model.pretrain params ({was}); "
                         "restore them to resume, or start over with --fresh")
    if state["model_digest"] != digest:
        raise TrainError(f"{path}: the warm-start checkpoint belongs to another build of the model (model.tiny or "
                         "model.seed changed, or the tokenizer's corpus); start over with --fresh")
    return state


def pretrain(model_dir: Path, params: PretrainParams, *, resume: bool = True,
             progress: bool = True) -> dict[str, Any]:
    """Train the model in ``model_dir`` for ``params.steps`` steps on the trajectory text; save it in place.

    With ``resume`` a checkpoint left by an interrupted run is continued (else removed and the run starts over).
    Returns the first and last logged losses, tokens seen, the step resumed from and seconds."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForImageTextToText, get_cosine_schedule_with_warmup

    from thinkimg.agent.policies.hf_processor import load_processor
    from thinkimg.train.common import TrainError

    if not params.dataset.is_dir():
        raise TrainError(f"{params.dataset}: dataset folder not found for model.pretrain (run `thinkimg data curate` "
                         "first, or set model.pretrain.steps to 0)")
    model_dir = Path(model_dir)
    digest = _built_model_digest(model_dir)
    if not resume:
        shutil.rmtree(model_dir / CHECKPOINT, ignore_errors=True)
        shutil.rmtree(model_dir / STEPS, ignore_errors=True)
    state = _load_checkpoint(model_dir, params, digest)
    processor = load_processor(model_dir)
    stream = TokenStream(processor, params.dataset, params.seq_len, params.relabel, params.seed)
    total = stream.tokens()
    chunks = total // params.seq_len
    if chunks < params.batch_size:
        raise TrainError(f"{params.dataset}: {total} tokens of trajectory text make {chunks} chunks of "
                         f"{params.seq_len}; model.pretrain needs at least batch_size={params.batch_size}")
    torch.manual_seed(params.seed)
    source = model_dir / CHECKPOINT if state else model_dir
    model = AutoModelForImageTextToText.from_pretrained(str(source), dtype=torch.float32)
    drill = state.get("copy_drill") if state else None
    if not state and params.copy_drill_steps:
        from thinkimg.train.copy_drill import copy_drill

        drill = copy_drill(model, processor.tokenizer, params.copy_drill_steps, params.copy_drill_batch_size,
                           params.copy_drill_learning_rate, params.seed, target=params.copy_drill_target,
                           restart_steps=params.copy_drill_restart_steps, progress=progress)
    rehearsal = None
    if params.copy_rehearsal:
        from thinkimg.train.copy_drill import Rehearsal

        rehearsal = Rehearsal(processor.tokenizer, params.copy_rehearsal, params.seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(params.warmup_ratio * params.steps), params.steps)
    losses: list[float] = []
    first, seconds = 0, 0.0
    if state:
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        stream.load_state(state["stream"])
        torch.set_rng_state(state["torch_rng"])
        if rehearsal:
            rehearsal.load_state(state["rehearsal"])
        losses, first, seconds = list(state["losses"]), state["step"], state["seconds"]
    start = time.perf_counter()
    bar = tqdm(range(first, params.steps), desc="pretrain", disable=not progress, initial=first, total=params.steps)
    for step in bar:
        rows = [stream.chunk_with_mask() for _ in range(params.batch_size)]
        batch = torch.tensor([ids for ids, _ in rows])
        if params.copy_weight:
            logits = model(input_ids=batch).logits[:, :-1]
            token_loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1), reduction="none")
            weight = 1 + params.copy_weight * torch.tensor([mask[1:] for _, mask in rows], dtype=torch.float32)
            loss = (token_loss * weight.reshape(-1)).sum() / weight.sum()
        else:
            loss = model(input_ids=batch, labels=batch).loss
        losses.append(loss.item())
        if rehearsal:
            loss = loss + rehearsal.loss(model)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(losses[-10:]) / len(losses[-10:]):.3f}")
        done = step + 1
        if params.save_steps and done % params.save_steps == 0 and done < params.steps:
            _save_checkpoint(model_dir, model, processor, {
                "step": done, "params": params.model_dump(mode="json", exclude=_RESUMABLE_CHANGES),
                "model_digest": digest, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "stream": stream.state(), "torch_rng": torch.get_rng_state(), "losses": losses, "copy_drill": drill,
                "rehearsal": rehearsal.state() if rehearsal else None,
                "seconds": seconds + time.perf_counter() - start}, params.keep_checkpoints)
    copy_after = None
    if drill or rehearsal:
        from thinkimg.train.copy_drill import held_out_copy

        copy_after = held_out_copy(model, processor.tokenizer, params.seed)
    model.save_pretrained(str(model_dir))
    shutil.rmtree(model_dir / CHECKPOINT, ignore_errors=True)
    if params.keep_checkpoints:
        _keep_step(model_dir, model, processor, params.steps)
    window = max(1, min(20, len(losses) // 4))
    return {"steps": params.steps, "chunks": chunks, "relabel": params.relabel, "copy_weight": params.copy_weight,
            "copy_drill": drill, "copy_rehearsal": params.copy_rehearsal, "copy_after_warm_start": copy_after,
            "tokens_seen": params.steps * params.batch_size * params.seq_len, "resumed_from": first,
            "loss_first": sum(losses[:window]) / window, "loss_last": sum(losses[-window:]) / window,
            "seconds": round(seconds + time.perf_counter() - start, 1)}
