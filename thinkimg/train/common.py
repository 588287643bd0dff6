"""What SFT and GRPO share: the error type, input checks, output folders and resume, precision, LoRA."""

from __future__ import annotations

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
    if resume or last is None:
        return last
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


def check_deepspeed(config: Path | None) -> str | None:
    """The DeepSpeed JSON config path as a string, after checking it exists and deepspeed imports."""
    if config is None:
        return None
    if not Path(config).is_file():
        raise TrainError(f"{config}: DeepSpeed config not found (see configs/deepspeed/)")
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        raise TrainError("deepspeed is not installed: pip install -e '.[deepspeed]'") from None
    return str(config)
