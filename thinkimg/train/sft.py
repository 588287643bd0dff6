"""Supervised fine-tuning on the verified tool trajectories of a dataset's ``sft`` split (TRL ``SFTTrainer``).

Every trajectory is trained on as GRPO will see it: the same chat template, the tool block byte-identical to the
``tools=`` rendering (carried in the system message, :mod:`thinkimg.train.chat`), every image (the chart and the
tool-returned ones) in the forward pass, and loss on the assistant turns only (tool calls and the final answer, each
with its end token). Messages and images are built lazily per batch from the stored JSON. A trajectory is never
truncated (that could cut an image span or the answer): longer ones than ``max_length`` are skipped and counted.

Checkpoints go to ``<out>/checkpoint-<step>``; a run resumes from the last one (step count, optimizer, scheduler and
data position restored); the final model and processor are saved into ``<out>`` for ``HFPolicy``.

``relabel`` (default 0) reads that share of the trajectories with their copied labels and answers replaced by made-up
ones (:mod:`thinkimg.train.relabel`), afresh on every read. Only the text changes: the images still show the old
labels, so such a trajectory teaches copying from the question and the tool replies and contradicts what the chart
shows. Meant for tiny models that cannot read the chart anyway and otherwise memorise the training labels; leave it
at 0 for a real checkpoint.

``copy_rehearsal`` (default 0) adds the copy loss of that many drill sequences to every step
(:class:`~thinkimg.train.copy_drill.Rehearsal`), for a tiny model whose copy head SFT would otherwise wear away;
with the tiny model's tokenizer the summary reports the held-out drill copy accuracy SFT ends with. A resumed run
draws its rehearsal sequences anew.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import Field

from thinkimg.config import load_yaml
from thinkimg.train.common import (TrainError, TrainParams, check_dataset_dir, check_model_dir, lora_config,
                                   prepare_out, run_training, save_final, stage_run,
                                   trainer_args)

EXPERIMENT = "sft"


class SFTError(TrainError):
    """SFT cannot start: a missing model or dataset folder, an empty split, unusable settings."""


class SFTParams(TrainParams):
    """The ``sft`` section of ``params.yaml`` (shared fields: :class:`~thinkimg.train.common.TrainParams`)."""

    out: Path = Path("artifacts/models/sft")
    #: On CPU keep 1 and raise ``gradient_accumulation_steps``: a padded batch leaves SDPA's causal fast path.
    per_device_batch_size: int = Field(1, ge=1, le=1024)
    #: Longest training sequence in tokens (images expanded); longer trajectories are skipped, never truncated.
    max_length: int = Field(4096, ge=64)
    #: Share of trajectories read relabelled (made-up labels in the text, not in the images); see the module doc.
    relabel: float = Field(0.0, ge=0.0, le=1.0)
    #: Copy-drill sequences whose loss is added to every step (tiny models; see the module doc); 0: none.
    copy_rehearsal: int = Field(0, ge=0, le=4096)


def load_params(path: str | Path) -> SFTParams:
    """The ``sft`` section of a params file (errors name the file and the field)."""
    return load_yaml(path, SFTParams, section="sft")


def fitting_records(params: SFTParams, renderer) -> tuple[list[dict[str, Any]], int]:
    """The split's records that fit ``max_length`` (in file order), and how many were skipped as too long."""
    from PIL import Image

    from thinkimg.data.dataset import read_split

    records = read_split(params.dataset, "sft")
    if params.limit:
        records = records[:params.limit]
    kept = []
    for record in records:
        data = json.loads(record["conversation"])
        sizes = []
        for name in data["images"].values():
            with Image.open(params.dataset / name) as image:
                sizes.append(image.size)
        if renderer.num_tokens(data["messages"], sizes) <= params.max_length:
            kept.append(record)
    return kept, len(records) - len(kept)


def sft_dataset(records: list[dict[str, Any]], root: Path, renderer, relabel: float = 0.0, seed: int = 0):
    """A ``datasets.Dataset`` of the trajectories' JSON whose rows become ``messages`` (PIL images inside) on access,
    a share ``relabel`` of them relabelled (a fresh draw on each access, from a generator seeded by ``seed``; a
    resumed run draws anew, so its relabelling differs from an uninterrupted run's).

    ``images`` stays empty: every image is already inside the messages, and TRL fills images only into placeholders
    outside tool messages. The column marks the dataset as a vision dataset for ``SFTTrainer``."""
    from datasets import Dataset

    from thinkimg.data.dataset import load_conversation
    from thinkimg.train.relabel import relabel as relabel_messages
    from thinkimg.train.relabel import PieceWords

    dataset = Dataset.from_dict({"id": [r["id"] for r in records],
                                 "conversation": [r["conversation"] for r in records]})
    rng = random.Random(seed)
    words = PieceWords(renderer.processor.tokenizer) if relabel else None

    def read(text: str) -> str:
        if not relabel or rng.random() >= relabel:
            return text
        data = json.loads(text)
        data["messages"] = relabel_messages(data["messages"], data.get("meta", {}), rng, words)
        return json.dumps(data)

    def transform(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        conversations = [load_conversation(root, {"conversation": read(c)}) for c in batch["conversation"]]
        return {"messages": [renderer.messages(c) for c in conversations], "images": [[] for _ in conversations]}

    dataset.set_transform(transform)
    return dataset


def rehearsing(trainer_class: type, rehearsal: Any) -> type:
    """``trainer_class`` with ``rehearsal.loss(model)`` added to each micro-batch's loss, scaled as the trainer
    scales its own for gradient accumulation (so a step's rehearsal weighs the same at any accumulation)."""

    class RehearsingTrainer(trainer_class):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                       num_items_in_batch=num_items_in_batch)
            extra = rehearsal.loss(model)
            # transformers divides the loss by the accumulation steps unless it counts as already scaled
            scaled = getattr(self, "loss_is_scaled_for_ga", None)
            if scaled is None:
                scaled = (getattr(self, "model_accepts_loss_kwargs", False) and num_items_in_batch is not None) \
                    or getattr(self, "compute_loss_func", None) is not None
            if scaled:
                extra = extra / self.current_gradient_accumulation_steps
            return (out[0] + extra, out[1]) if return_outputs else out + extra

    RehearsingTrainer.__name__ = RehearsingTrainer.__qualname__ = "Rehearsing" + trainer_class.__name__
    return RehearsingTrainer


def copy_kept(model: Any, tokenizer: Any, seed: int) -> dict[str, float]:
    """Held-out drill copy accuracy (:func:`~thinkimg.train.copy_drill.held_out_copy`) as metrics, for a tokenizer
    the drill can use (the tiny model's); empty for others (a real checkpoint's has no single-token space)."""
    from thinkimg.train.copy_drill import held_out_copy

    try:
        kept = held_out_copy(model, tokenizer, seed)
    except ValueError:  # not a tokenizer the drill is built for: nothing to report
        return {}
    return {f"copy_{name}": value for name, value in kept.items()}


def _config(params: SFTParams, *, report_to: list[str]):
    from trl import SFTConfig

    return SFTConfig(
        **trainer_args(params, "sft", report_to=report_to),
        per_device_train_batch_size=params.per_device_batch_size,
        max_length=None,  # TRL truncates at 1024 by default, which can cut an image span; see fitting_records
        assistant_only_loss=True,
        remove_unused_columns=False,  # the rows are built by the dataset's transform from columns no model takes
    )


def train_sft(params: SFTParams, *, resume: bool = True, mlflow_run: bool = True) -> dict[str, Any]:
    """Fine-tune ``params.model`` on the ``sft`` split of ``params.dataset``; save the result into ``params.out``.

    ``resume`` continues from the last checkpoint in ``out`` (else starts over, removing old checkpoints).
    ``mlflow_run`` logs params and per-step metrics into a new run of the ``sft`` experiment
    (:mod:`thinkimg.tracking`). Returns a summary: TRL's train metrics, steps, seconds per step, counts, paths."""
    with stage_run(params, EXPERIMENT, mlflow_run) as active:
        check_model_dir(params.model)
        check_dataset_dir(params.dataset)
        import torch
        from transformers import AutoModelForImageTextToText
        from trl import SFTTrainer

        from thinkimg.agent.env import ChartToolEnv
        from thinkimg.agent.policies.hf_processor import load_processor
        from thinkimg.agent.rollout import tool_schemas
        from thinkimg.train.chat import SFTRenderer

        processor = load_processor(params.model)
        renderer = SFTRenderer(processor, tool_schemas(ChartToolEnv()))
        records, too_long = fitting_records(params, renderer)
        if not records:
            raise SFTError(f"{params.dataset / 'sft.jsonl'}: no trajectories to train on ({too_long} longer than "
                           f"max_length={params.max_length} tokens were skipped)")
        config = _config(params, report_to=["mlflow"] if mlflow_run else [])
        checkpoint = prepare_out(params.out, resume)
        model = AutoModelForImageTextToText.from_pretrained(str(params.model), dtype=torch.float32)
        lora = lora_config(params.lora_r, params.lora_alpha, params.lora_dropout) if params.lora else None
        dataset = sft_dataset(records, params.dataset, renderer, params.relabel, params.seed)
        trainer_class = SFTTrainer
        if params.copy_rehearsal:
            from thinkimg.train.copy_drill import Rehearsal

            trainer_class = rehearsing(SFTTrainer, Rehearsal(processor.tokenizer, params.copy_rehearsal,
                                                             params.seed))
        trainer = trainer_class(model=model, args=config, train_dataset=dataset, processing_class=processor,
                                peft_config=lora)
        summary = run_training(
            trainer, params, checkpoint, active=active,
            summary={"trajectories": len(records), "skipped_too_long": too_long, "relabel": params.relabel,
                     "copy_rehearsal": params.copy_rehearsal,
                     "resumed_from": checkpoint, "out": str(params.out)},
            log=("trajectories", "skipped_too_long"),
            after=lambda: copy_kept(trainer.model, processor.tokenizer, params.seed),
            save=lambda: save_final(trainer, processor, params.out, params.lora))
    return summary
