"""The base-model stage: build the tiny Qwen2-VL locally, or check a real checkpoint on a local path.

``model`` section of ``params.yaml``. With ``pretrained`` unset the tiny model is built into ``out`` (deterministic
for the seed); with ``pretrained`` set (e.g. a downloaded Qwen2-VL-2B-Instruct folder) nothing is copied: the
checkpoint is checked to load (config, processor, a chat template that renders tools) and ``sft.model`` should point
at it. Either way ``<out>/base_model.json`` records what the base is.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field

from thinkimg.config import StrictModel, load_yaml
from thinkimg.train.common import TrainError, check_model_dir
from thinkimg.train.pretrain import PretrainParams


class TinyModelParams(StrictModel):
    """Size of the tiny model (see :func:`thinkimg.train.tiny.build_tiny_model`)."""

    hidden_size: int = Field(128, ge=16, le=4096)
    num_layers: int = Field(4, ge=1, le=64)
    num_heads: int = Field(4, ge=1, le=64)
    num_kv_heads: int = Field(2, ge=1, le=64)
    intermediate_size: int | None = Field(None, ge=16)
    vision_depth: int = Field(2, ge=1, le=32)
    vision_embed_dim: int = Field(64, ge=32, le=2048)
    vocab_size: int = Field(2048, ge=512, le=200_000)
    #: RoPE base: the rotation of the lowest frequency decides how far apart two tokens can still be matched by
    #: content alone (Qwen2-VL-2B uses 1e6).
    rope_theta: float = Field(10000.0, gt=1.0)
    #: A dataset whose ``sft`` split's text joins the tokenizer's corpus (labels and words of the training charts
    #: become whole tokens); None: the tokenizer learns from the built-in corpus only.
    tokenizer_dataset: Path | None = None
    #: Largest image in pixels: ``max_pixels / 28**2`` image tokens at most.
    max_pixels: int = Field(64 * 28 * 28, ge=4 * 28 * 28)
    min_pixels: int = Field(4 * 28 * 28, ge=28 * 28)


class ModelParams(StrictModel):
    """The ``model`` section of ``params.yaml``."""

    out: Path = Path("artifacts/models/base")
    seed: int = Field(0, ge=0)
    tiny: TinyModelParams = TinyModelParams()
    #: A real checkpoint folder (``save_pretrained`` layout with its processor); None builds the tiny model.
    pretrained: Path | None = None
    #: The tiny model's warm start on the training trajectories' text (thinkimg.train.pretrain); 0 steps skips it.
    pretrain: PretrainParams = PretrainParams()


def load_params(path: str | Path) -> ModelParams:
    """The ``model`` section of a params file (errors name the file and the field)."""
    return load_yaml(path, ModelParams, section="model")


def prepare_base_model(params: ModelParams, *, resume: bool = True) -> dict:
    """Build or check the base model; returns (and writes to ``<out>/base_model.json``) a description of it.

    ``resume`` continues an interrupted warm start from its checkpoint (False starts it over)."""
    from thinkimg.train.tiny import build_tiny_model

    if params.pretrained is None:
        tiny = params.tiny.model_dump(exclude={"tokenizer_dataset"})
        corpus = trajectory_texts(params.tiny.tokenizer_dataset) if params.tiny.tokenizer_dataset else []
        path = build_tiny_model(params.out, seed=params.seed, corpus=corpus, **tiny)
        info = {"kind": "tiny", "path": str(path), "seed": params.seed, **params.tiny.model_dump(mode="json"),
                "tokenizer_texts": len(corpus)}
        import torch
        from transformers import AutoModelForImageTextToText

        model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=torch.float32)
        info["parameters"] = sum(p.numel() for p in model.parameters())
        if params.pretrain.steps:
            from thinkimg.train.pretrain import pretrain

            info["pretrain"] = pretrain(path, params.pretrain, resume=resume)
    else:
        info = {"kind": "pretrained", "path": str(params.pretrained), **check_checkpoint(params.pretrained)}
        params.out.mkdir(parents=True, exist_ok=True)
    (params.out / "base_model.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def trajectory_texts(dataset: Path) -> list[str]:
    """The text of a dataset's ``sft`` trajectories (questions, tool calls' arguments, tool outputs, answers)."""
    from thinkimg.data.dataset import read_split
    from thinkimg.train.relabel import message_texts

    if not Path(dataset).is_dir():
        raise TrainError(f"{dataset}: dataset folder not found for model.tiny.tokenizer_dataset (run `thinkimg data "
                         "curate` first, or set it to null)")
    texts = []
    for record in read_split(dataset, "sft", check_images=False):
        for message in json.loads(record["conversation"])["messages"]:
            texts.extend(text for text in message_texts([message]) if text)
            for call in message.get("tool_calls") or []:
                texts.append(json.dumps(call["function"]["arguments"], ensure_ascii=False))
    return texts


def check_checkpoint(path: Path) -> dict:
    """Check a real checkpoint without loading its weights: config, processor, a chat template that renders tools."""
    check_model_dir(path)
    from transformers import AutoConfig

    from thinkimg.agent.policies.hf_processor import load_processor

    config = AutoConfig.from_pretrained(str(path))
    try:
        processor = load_processor(path)
    except (OSError, ValueError) as exc:
        raise TrainError(f"{path}: the processor does not load ({exc})") from None
    probe = [{"role": "user", "content": [{"type": "text", "text": "?"}]}]
    tool = {"type": "function", "function": {"name": "probe_tool", "description": "d",
                                             "parameters": {"type": "object", "properties": {}}}}
    try:
        text = processor.apply_chat_template(probe, tools=[tool], tokenize=False)
    except Exception as exc:  # noqa: BLE001 - any template error means the checkpoint cannot run tool rollouts
        raise TrainError(f"{path}: the chat template cannot render tools ({exc})") from None
    if "probe_tool" not in text:
        raise TrainError(f"{path}: the chat template ignores tools= (use a tool-calling template, e.g. TRL's "
                         "qwen3_vl.jinja)")
    return {"model_type": config.model_type}
