"""What SFT and GRPO share: the error type, input checks, output folders and resume, precision, LoRA."""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from thinkimg import tracking
from thinkimg.config import StrictModel


class TrainError(ValueError):
    """Training cannot start: a missing model or dataset folder, an empty split, unusable settings."""


class TrainParams(StrictModel):
    """What the ``sft`` and ``grpo`` sections share: model, data, schedule, checkpoints, LoRA, precision, DeepSpeed."""

    #: The starting model folder (a ``save_pretrained`` checkpoint with its processor).
    model: Path
    dataset: Path = Path("artifacts/datasets/charts")
    #: Checkpoints and the final model.
    out: Path
    #: Optimizer steps; 0 trains for ``epochs`` instead.
    max_steps: int = Field(0, ge=0)
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(1e-5, gt=0, le=1.0)
    #: Learning-rate schedule (transformers names) and the share of steps spent warming up.
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    gradient_accumulation_steps: int = Field(1, ge=1, le=4096)
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
    #: A DeepSpeed JSON config (configs/deepspeed/zero2.json, zero3.json); needs the ``deepspeed`` extra.
    deepspeed: Path | None = None
    #: Records used (the first ones of the split); 0: all.
    limit: int = Field(0, ge=0)
    #: Log the final model's files to the stage's MLflow run (the model registry registers them from there).
    log_model: bool = True


def trainer_args(params: TrainParams, section: str, *, report_to: list[str]) -> dict[str, Any]:
    """The ``TrainingArguments`` keywords SFTConfig and GRPOConfig share, from ``params``."""
    import torch

    return dict(
        output_dir=str(params.out), max_steps=params.max_steps or -1, num_train_epochs=params.epochs,
        learning_rate=params.learning_rate, lr_scheduler_type=params.lr_scheduler, warmup_steps=params.warmup_ratio,
        gradient_accumulation_steps=params.gradient_accumulation_steps, seed=params.seed, data_seed=params.seed,
        logging_steps=params.logging_steps, save_strategy="steps", save_steps=params.save_steps,
        save_total_limit=params.save_total_limit, gradient_checkpointing=params.gradient_checkpointing,
        bf16=use_bf16(params.bf16, section), deepspeed=check_deepspeed(params.deepspeed, params.lora),
        dataloader_num_workers=0, dataloader_pin_memory=torch.cuda.is_available(), report_to=report_to,
        run_name=section)


def check_model_dir(path: Path) -> None:
    """``path`` holds a ``save_pretrained`` checkpoint (config.json) trained with the tools now registered (its
    ``tool_schemas.json``, :mod:`thinkimg.agent.tool_record`); TrainError naming it otherwise."""
    from thinkimg.agent.tool_record import ToolBlockMismatch, check_tool_record

    if not (Path(path) / "config.json").is_file():
        raise TrainError(f"{path}: model folder not found (expected a save_pretrained checkpoint with config.json "
                         "and its processor; build the tiny one with `thinkimg train base-model`)")
    try:
        check_tool_record(path)
    except ToolBlockMismatch as exc:
        raise TrainError(str(exc)) from None


def check_dataset_dir(path: Path) -> None:
    if not Path(path).is_dir():
        raise TrainError(f"{path}: dataset folder not found (build it with `thinkimg data curate`)")


def is_main_process() -> bool:
    """True on the process that writes shared files (rank 0 of a torchrun/accelerate launch, or a plain run)."""
    return int(os.environ.get("RANK", "0")) == 0


def use_bf16(setting: bool | None, section: str) -> bool:
    """bf16 where asked for, or by default where the GPU supports it (off on CPU, 2-4x slower there)."""
    import torch

    available = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if setting and not available:
        raise TrainError(f"bf16: true needs a GPU with bf16 support; set {section}.bf16 to false (or leave it unset) "
                         "on CPU")
    return available if setting is None else setting


def prepare_out(out: Path, resume: bool) -> str | None:
    """The checkpoint to resume from, if any; without ``resume`` an earlier run's checkpoints are removed."""
    from transformers.trainer_utils import get_last_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    last = get_last_checkpoint(str(out))
    if resume or last is None or not is_main_process():
        return last if resume else None
    for folder in out.glob("checkpoint-*"):
        if folder.is_dir():
            shutil.rmtree(folder)
    return None


def checkpoint_step(checkpoint: str | None) -> int:
    """The optimizer step a checkpoint was saved at (0 for none)."""
    if checkpoint is None:
        return 0
    from transformers import TrainerState

    return TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json")).global_step


def lora_config(r: int, alpha: float, dropout: float) -> Any:
    """A PEFT LoRA config on every linear layer of the language model."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM")


def check_deepspeed(config: Path | None, lora: bool = False) -> str | None:
    """The DeepSpeed JSON config path as a string, after checking it exists, parses, and deepspeed imports."""
    if config is None:
        return None
    if not Path(config).is_file():
        raise TrainError(f"{config}: DeepSpeed config not found (see configs/deepspeed/)")
    try:
        stage = json.loads(Path(config).read_text(encoding="utf-8")).get("zero_optimization", {}).get("stage", 0)
    except (json.JSONDecodeError, AttributeError) as exc:
        raise TrainError(f"{config}: not a DeepSpeed JSON config ({exc})") from None
    if lora and stage == 3:
        raise TrainError(f"{config}: LoRA with ZeRO-3 is not supported (merging sharded adapters); use ZeRO-2")
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise TrainError("deepspeed is not installed: pip install -e '.[deepspeed]'") from None
    return str(config)


def save_final(trainer: Any, processor: Any, out: Path, lora: bool) -> None:
    """Save the trained model (LoRA merged; ZeRO-3 shards gathered by the trainer), its processor and the tool schemas
    it was trained with into ``out``, written by the main process only."""
    from thinkimg.agent.tool_record import save_tool_record

    if lora:
        if trainer.is_world_process_zero():
            trainer.model.merge_and_unload().save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(out))
        save_tool_record(out)


def stage_run(params: TrainParams, section: str, enabled: bool):
    """The stage's MLflow run (experiment ``section``; a child of the pipeline's run when there is one), opened before
    anything is checked so that any failure of the stage marks it FAILED; a null context without MLflow or off the
    main process."""
    if not (enabled and is_main_process()):
        return nullcontext()
    return tracking.start_run(experiment=section, run_name=section, params={section: params.model_dump(mode="json")},
                              tags={"thinkimg.stage": section})


def run_training(trainer: Any, params: TrainParams, checkpoint: str | None, *, active: Any,
                 summary: dict[str, Any], save: Callable[[], None], log: tuple[str, ...] = (),
                 after: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Train (resuming from ``checkpoint``), ``save()`` the final model, and return ``summary`` updated with TRL's
    train metrics, global step, steps run, seconds per step and ``curve`` (the per-step log: step and numbers).

    ``active`` is the stage's MLflow run (:func:`stage_run`) or None. ``after()`` adds entries once training is
    done; they, ``s_per_step`` and the ``log`` keys of ``summary`` are logged to the run as metrics; with
    ``params.log_model`` the saved model's files are logged as ``model/``."""
    start_step = checkpoint_step(checkpoint)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    steps = trainer.state.global_step - start_step
    summary.update(result.metrics, global_step=trainer.state.global_step, steps=steps,
                   s_per_step=seconds / steps if steps else None)
    extra = after() if after else {}
    summary.update(extra)
    save()
    summary["curve"] = [{k: v for k, v in entry.items() if isinstance(v, (int, float))}
                        for entry in trainer.state.log_history if "step" in entry and "train_runtime" not in entry]
    if active is not None:
        import mlflow

        mlflow.set_tag("resumed_from", checkpoint or "")
        tracking.log_metrics({k: summary[k] for k in ("s_per_step", *log, *extra)})
        if params.log_model:
            summary["model_uri"] = tracking.log_model_folder(params.out)
        summary["mlflow_run_id"] = active.info.run_id
    return summary
