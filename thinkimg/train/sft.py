"""Supervised fine-tuning on the verified tool trajectories of a dataset's ``sft`` split (TRL ``SFTTrainer``).

Every trajectory is trained on as GRPO will see it: the same chat template, the tool block byte-identical to the
``tools=`` rendering (carried in the system message, :mod:`thinkimg.train.chat`), every image (the chart and the
tool-returned ones) in the forward pass, and loss on the assistant turns only (tool calls and the final answer, each
with its end token). Messages and images are built lazily per batch from the stored JSON. A trajectory is never
truncated (that could cut an image span or the answer): longer ones than ``max_length`` are skipped and counted.

Checkpoints go to ``<out>/checkpoint-<step>``; a run resumes from the last one (step count, optimizer, scheduler and
data position restored); the final model and processor are saved into ``<out>`` for ``HFPolicy``.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from thinkimg import tracking
from thinkimg.config import StrictModel, load_yaml
from thinkimg.train.common import (TrainError, check_dataset_dir, check_deepspeed, check_model_dir, checkpoint_step,
                                   is_main_process, lora_config, prepare_out, save_final, use_bf16)

EXPERIMENT = "sft"


class SFTError(TrainError):
    """SFT cannot start: a missing model or dataset folder, an empty split, unusable settings."""


class SFTParams(StrictModel):
    """The ``sft`` section of ``params.yaml``."""

    #: The base model folder (a ``save_pretrained`` checkpoint with its processor).
    model: Path
    dataset: Path = Path("artifacts/datasets/charts")
    #: Checkpoints and the final model.
    out: Path = Path("artifacts/models/sft")
    #: Optimizer steps; 0 trains for ``epochs`` instead.
    max_steps: int = Field(0, ge=0)
    epochs: float = Field(1.0, gt=0)
    #: Learning-rate schedule (transformers names: linear, cosine, constant_with_warmup, ...) and warmup share.
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    learning_rate: float = Field(1e-5, gt=0, le=1.0)
    #: On CPU keep 1 and raise ``gradient_accumulation_steps``: a padded batch leaves SDPA's causal fast path.
    per_device_batch_size: int = Field(1, ge=1, le=1024)
    gradient_accumulation_steps: int = Field(1, ge=1, le=4096)
    #: Longest training sequence in tokens (images expanded); longer trajectories are skipped, never truncated.
    max_length: int = Field(4096, ge=64)
    seed: int = Field(0, ge=0)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(200, ge=1)
    #: Checkpoints kept in ``out`` (the oldest are deleted).
    save_total_limit: int = Field(2, ge=1)
    lora: bool = False
    lora_r: int = Field(16, ge=1, le=1024)
    lora_alpha: float = Field(32.0, gt=0)
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    gradient_checkpointing: bool = False
    #: bf16 mixed precision; None: on where the GPU supports it, off on CPU (slower there).
    bf16: bool | None = None
    #: Trajectories used (the first ones of the split); 0: all.
    limit: int = Field(0, ge=0)
    #: A DeepSpeed JSON config (configs/deepspeed/zero2.json, zero3.json); needs the ``deepspeed`` extra.
    deepspeed: Path | None = None


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


def sft_dataset(records: list[dict[str, Any]], root: Path, renderer):
    """A ``datasets.Dataset`` of the trajectories' JSON whose rows become ``messages`` (PIL images inside) on access.

    ``images`` stays empty: every image is already inside the messages, and TRL fills images only into placeholders
    outside tool messages. The column marks the dataset as a vision dataset for ``SFTTrainer``."""
    from datasets import Dataset

    from thinkimg.data.dataset import load_conversation

    dataset = Dataset.from_dict({"id": [r["id"] for r in records],
                                 "conversation": [r["conversation"] for r in records]})

    def transform(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        conversations = [load_conversation(root, {"conversation": c}) for c in batch["conversation"]]
        return {"messages": [renderer.messages(c) for c in conversations], "images": [[] for _ in conversations]}

    dataset.set_transform(transform)
    return dataset


def _config(params: SFTParams, *, report_to: list[str]):
    import torch
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(params.out),
        max_steps=params.max_steps or -1,
        num_train_epochs=params.epochs,
        learning_rate=params.learning_rate,
        lr_scheduler_type=params.lr_scheduler,
        warmup_steps=params.warmup_ratio,
        per_device_train_batch_size=params.per_device_batch_size,
        gradient_accumulation_steps=params.gradient_accumulation_steps,
        max_length=None,  # TRL truncates at 1024 by default, which can cut an image span; see fitting_records
        assistant_only_loss=True,
        seed=params.seed,
        data_seed=params.seed,
        logging_steps=params.logging_steps,
        save_strategy="steps",
        save_steps=params.save_steps,
        save_total_limit=params.save_total_limit,
        gradient_checkpointing=params.gradient_checkpointing,
        bf16=use_bf16(params.bf16, "sft"),
        deepspeed=check_deepspeed(params.deepspeed, params.lora),
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,  # the rows are built by the dataset's transform from columns no model takes
        report_to=report_to,
        run_name="sft",
    )


def train_sft(params: SFTParams, *, resume: bool = True, mlflow_run: bool = True) -> dict[str, Any]:
    """Fine-tune ``params.model`` on the ``sft`` split of ``params.dataset``; save the result into ``params.out``.

    ``resume`` continues from the last checkpoint in ``out`` (else starts over, removing old checkpoints).
    ``mlflow_run`` logs params and per-step metrics into a new run of the ``sft`` experiment
    (:mod:`thinkimg.tracking`). Returns a summary: TRL's train metrics, steps, seconds per step, counts, paths."""
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
    trainer = SFTTrainer(model=model, args=config, train_dataset=sft_dataset(records, params.dataset, renderer),
                         processing_class=processor, peft_config=lora_config(params.lora_r, params.lora_alpha, params.lora_dropout)
                         if params.lora else None)
    summary: dict[str, Any] = {"trajectories": len(records), "skipped_too_long": too_long,
                               "resumed_from": checkpoint, "out": str(params.out)}
    start_step = checkpoint_step(checkpoint)

    run = tracking.start_run(experiment=EXPERIMENT, run_name="sft", params={"sft": params.model_dump(mode="json")},
                             tags={"resumed_from": checkpoint or ""}) if mlflow_run and is_main_process() \
        else nullcontext()
    with run as active:
        start = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=checkpoint)
        seconds = time.perf_counter() - start
        steps = trainer.state.global_step - start_step
        summary.update(result.metrics, global_step=trainer.state.global_step, steps=steps,
                       s_per_step=seconds / steps if steps else None)
        if active is not None:
            tracking.log_metrics({k: summary[k] for k in ("trajectories", "skipped_too_long", "s_per_step")})
            summary["mlflow_run_id"] = active.info.run_id

    save_final(trainer, processor, params.out, params.lora)
    return summary
