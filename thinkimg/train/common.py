"""What SFT and GRPO share: the error type, input checks, output folders and resume, precision, LoRA."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


class TrainError(ValueError):
    """Training cannot start: a missing model or dataset folder, an empty split, unusable settings."""


def check_model_dir(path: Path) -> None:
    """``path`` holds a ``save_pretrained`` checkpoint (config.json); TrainError naming it otherwise."""
    if not (Path(path) / "config.json").is_file():
        raise TrainError(f"{path}: model folder not found (expected a save_pretrained checkpoint with config.json "
                         "and its processor; build the tiny one with `thinkimg train base-model`)")


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
    """Save the trained model (LoRA merged; ZeRO-3 shards gathered by the trainer) and its processor into ``out``,
    written by the main process only."""
    if lora:
        if trainer.is_world_process_zero():
            trainer.model.merge_and_unload().save_pretrained(str(out))
    else:
        trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(out))
