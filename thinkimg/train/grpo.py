"""GRPO with the chart tools in the loop: TRL ``GRPOTrainer(environment_factory=ChartToolEnv)``.

Each rollout is an episode of :class:`~thinkimg.agent.env.ChartToolEnv`, the environment evaluation uses: the prompt
is the chart and the question of a row of the dataset's ``rl`` split, rendered with the tool block (the same bytes
SFT trained on); the model's tool calls run through the episode's ToolClient (the tool server when
``grpo.tool_server_url`` or ``THINKIMG_TOOL_SERVER_URL`` is set, else in-process) behind a result cache keyed by
(tool, arguments, image content), so the G generations of a prompt pay for OCR once. Images a tool returns reach the
next turn and the loss forward; every model turn is trained and tool-result tokens are masked (TRL's tool loop).
Rewards: :mod:`thinkimg.train.rewards`, weighted from params.

Rollout backends: ``hf`` (transformers ``generate``, CPU or GPU), ``vllm_colocate`` (vLLM inside the training
process, GPU) and ``vllm_server`` (a ``trl vllm-serve`` process). vLLM needs the ``gpu`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from thinkimg.config import load_yaml
from thinkimg.train.common import (TrainError, TrainParams, check_dataset_dir, check_model_dir, lora_config,
                                   prepare_out, run_training, save_final, stage_run,
                                   trainer_args)
from thinkimg.train.rewards import REWARDS, reward_funcs

EXPERIMENT = "grpo"
#: Tokens a policy must never generate: an image span it writes itself breaks the next forward
#: ("image features and image tokens do not match").
VISION_TOKENS = ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")


class GRPOParams(TrainParams):
    """The ``grpo`` section of ``params.yaml`` (shared fields: :class:`~thinkimg.train.common.TrainParams`)."""

    split: Literal["rl", "eval", "sft"] = "rl"
    out: Path = Path("artifacts/models/grpo")
    learning_rate: float = Field(1e-6, gt=0, le=1.0)
    #: Rollouts per prompt (the group whose rewards are compared).
    num_generations: int = Field(8, ge=2, le=1024)
    #: Rollouts per device per step; a multiple of ``num_generations`` (prompts per step = this / num_generations).
    per_device_batch_size: int = Field(8, ge=1, le=4096)
    #: Tokens of a whole rollout after the prompt: model turns + tool results (images expanded).
    max_completion_length: int = Field(1024, ge=16)
    #: Tool-calling rounds per rollout.
    max_tool_calls: int = Field(4, ge=0, le=64)
    temperature: float = Field(1.0, gt=0, le=10)
    #: KL coefficient against the starting model (0: no reference model kept).
    beta: float = Field(0.0, ge=0)
    #: How a group's rewards become advantages: divided by the group's standard deviation (``group``, TRL's default),
    #: the batch's (``batch``) or not at all (``none``, Dr. GRPO): unscaled, a group whose rollouts differ only in the
    #: small format / tool-use rewards moves the policy little, where ``group`` scales those differences to +-1.
    scale_rewards: Literal["group", "batch", "none"] = "group"
    #: TRL's loss aggregation over tokens (``dapo``: TRL's default; ``dr_grpo``, ``grpo``, ``bnpo``).
    loss_type: Literal["dapo", "dr_grpo", "grpo", "bnpo"] = "dapo"
    #: Reward weights by name: correctness (eval metric), closeness (partial credit for a near copy of a text answer),
    #: format, tool_use (see thinkimg.train.rewards).
    rewards: dict[str, float] = Field(default_factory=lambda: {"correctness": 1.0, "format": 0.2, "tool_use": 0.1})
    metric: Literal["relaxed_accuracy", "exact_match"] = "relaxed_accuracy"
    rollout_backend: Literal["hf", "vllm_colocate", "vllm_server"] = "hf"
    #: ``vllm_server``: the ``trl vllm-serve`` URL.
    vllm_server_url: str | None = None
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    #: The tool server (comma-separated replicas); None: ``THINKIMG_TOOL_SERVER_URL`` or the tools in-process.
    tool_server_url: str | None = None
    #: Tools config for the in-process tools.
    tools_config: Path | None = Path("configs/tools.yaml")
    #: Tool results cached (entries); 0 disables the cache.
    tool_cache_entries: int = Field(8192, ge=0)
    logging_steps: int = Field(1, ge=1)
    save_steps: int = Field(50, ge=1)
    #: Log sample rollouts to MLflow (TRL's completions table).
    log_completions: bool = False

    @model_validator(mode="after")
    def _check(self) -> GRPOParams:
        if self.per_device_batch_size * self.gradient_accumulation_steps % self.num_generations:
            raise ValueError(f"per_device_batch_size * gradient_accumulation_steps "
                             f"({self.per_device_batch_size} * {self.gradient_accumulation_steps}) must be a multiple "
                             f"of num_generations ({self.num_generations})")
        unknown = sorted(set(self.rewards) - set(REWARDS))
        if unknown:
            raise ValueError(f"unknown reward(s) {unknown} in rewards; known: {', '.join(REWARDS)}")
        if not any(self.rewards.values()):
            raise ValueError(f"rewards: every weight is 0; give one of {', '.join(REWARDS)} a weight")
        if self.rollout_backend == "vllm_server" and not self.vllm_server_url:
            raise ValueError("rollout_backend vllm_server needs vllm_server_url (the `trl vllm-serve` address)")
        return self


def load_params(path: str | Path) -> GRPOParams:
    """The ``grpo`` section of a params file (errors name the file and the field)."""
    return load_yaml(path, GRPOParams, section="grpo")


def rl_dataset(params: GRPOParams):
    """The prompts: one row per question with ``prompt`` (the question as the user's turn; TRL puts the image before
    it), ``image`` (PIL), ``answer`` and the question's metadata (TRL passes the row to ``ChartToolEnv.reset``)."""
    from thinkimg.data.dataset import load_split

    dataset = load_split(params.dataset, params.split)
    if params.limit:
        dataset = dataset.select(range(min(params.limit, len(dataset))))
    if len(dataset) == 0:
        raise TrainError(f"{params.dataset / (params.split + '.jsonl')}: no questions to train on")
    return dataset.map(lambda question: {"prompt": [{"role": "user", "content": question}]}, input_columns="question")


def tool_client(params: GRPOParams):
    """The ToolClient rollouts call through, behind the result cache: the tool server of ``grpo.tool_server_url`` or
    ``THINKIMG_TOOL_SERVER_URL`` (comma-separated replicas; ``THINKIMG_TOOLS_TOKEN`` as bearer token), else the
    tools in-process with ``grpo.tools_config``."""
    from thinkimg.server.client import connect
    from thinkimg.tools import CachedToolClient

    client = connect(params.tool_server_url, params.tools_config)
    return CachedToolClient(client, params.tool_cache_entries) if params.tool_cache_entries else client


def environment_factory(client):
    """A factory of ChartToolEnv episodes sharing ``client`` (TRL builds one per concurrent rollout)."""
    from thinkimg.agent.env import ChartToolEnv

    def make() -> ChartToolEnv:
        return ChartToolEnv(client)

    return make


def _check_backend(params: GRPOParams) -> None:
    if params.rollout_backend == "hf":
        return
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise TrainError(f"rollout_backend {params.rollout_backend} needs vLLM: pip install -e '.[gpu]' on a CUDA "
                         "machine (or set grpo.rollout_backend: hf)") from None


def grpo_config(params: GRPOParams, processor: Any, *, report_to: list[str], reward_weights: list[float]):
    """TRL's ``GRPOConfig`` for ``params``."""
    from trl import GRPOConfig

    tokenizer = getattr(processor, "tokenizer", processor)
    banned = [[tokenizer.convert_tokens_to_ids(t)] for t in VISION_TOKENS if t in tokenizer.get_vocab()]
    vllm = params.rollout_backend != "hf"
    return GRPOConfig(
        **trainer_args(params, "grpo", report_to=report_to),
        per_device_train_batch_size=params.per_device_batch_size,
        num_generations=params.num_generations,
        max_completion_length=params.max_completion_length,
        max_tool_calling_iterations=params.max_tool_calls,
        temperature=params.temperature,
        beta=params.beta,
        scale_rewards=params.scale_rewards,
        loss_type=params.loss_type,
        reward_weights=reward_weights,
        generation_kwargs=None if vllm else {"bad_words_ids": banned},
        use_vllm=vllm,
        vllm_mode="server" if params.rollout_backend == "vllm_server" else "colocate",
        vllm_server_base_url=params.vllm_server_url if params.rollout_backend == "vllm_server" else None,
        vllm_gpu_memory_utilization=params.vllm_gpu_memory_utilization,
        log_completions=params.log_completions,
    )


def build_trainer(params: GRPOParams, *, resume: bool = True, mlflow_run: bool = True, trainer_cls: type | None = None,
                  client=None) -> tuple[Any, dict[str, Any]]:
    """The configured trainer and what it was built from (``checkpoint`` to resume from, ``client``, counts).

    ``trainer_cls`` replaces ``GRPOTrainer`` (tests script the generation; the bench times its phases);
    ``client`` replaces the ToolClient of :func:`tool_client`."""
    check_model_dir(params.model)
    check_dataset_dir(params.dataset)
    _check_backend(params)
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # environment_factory is experimental: trl is pinned
    import torch
    from transformers import AutoModelForImageTextToText
    from trl import GRPOTrainer

    from thinkimg.agent.policies.hf_processor import load_processor

    processor = load_processor(params.model)
    # Prompts are padded on the left (generation continues them). TRL pads its prompt ids so but builds the image
    # token types with the processor's own padding: padded on the right, a shorter prompt's image tokens are
    # misplaced and the forward fails ("shape mismatch" in get_rope_index) in any step with several prompts and
    # no tool image.
    getattr(processor, "tokenizer", processor).padding_side = "left"
    funcs, weights = reward_funcs(params.rewards, params.metric)
    dataset = rl_dataset(params)
    config = grpo_config(params, processor, report_to=["mlflow"] if mlflow_run else [], reward_weights=weights)
    checkpoint = prepare_out(params.out, resume)
    client = client if client is not None else tool_client(params)
    model = AutoModelForImageTextToText.from_pretrained(str(params.model), dtype=torch.float32)
    trainer = (trainer_cls or GRPOTrainer)(
        model=model, reward_funcs=funcs, args=config, train_dataset=dataset, processing_class=processor,
        environment_factory=environment_factory(client),
        peft_config=lora_config(params.lora_r, params.lora_alpha, params.lora_dropout) if params.lora else None)
    return trainer, {"checkpoint": checkpoint, "client": client, "processor": processor, "questions": len(dataset)}


def train_grpo(params: GRPOParams, *, resume: bool = True, mlflow_run: bool = True, trainer_cls: type | None = None,
               client=None) -> dict[str, Any]:
    """Train ``params.model`` with GRPO on the ``rl`` split; save the result into ``params.out``.

    ``resume`` continues from the last checkpoint in ``out`` (else starts over). With ``mlflow_run`` params and
    per-step metrics (each reward, tool-call frequency and failure rate, KL, completion length) go to a new run of
    the ``grpo`` experiment. Returns a summary: TRL's train metrics, steps, seconds per step, tool cache counts."""
    with stage_run(params, EXPERIMENT, mlflow_run) as active:
        trainer, built = build_trainer(params, resume=resume, mlflow_run=mlflow_run, trainer_cls=trainer_cls,
                                       client=client)
        checkpoint, client = built["checkpoint"], built["client"]

        def cache_counts() -> dict[str, Any]:
            return {"tool_cache_hits": client.hits, "tool_cache_misses": client.misses} \
                if hasattr(client, "hits") else {}

        try:
            summary = run_training(trainer, params, checkpoint, active=active, after=cache_counts,
                                   summary={"questions": built["questions"], "resumed_from": checkpoint,
                                            "out": str(params.out)},
                                   save=lambda: save_final(trainer, built["processor"], params.out, params.lora))
        finally:
            client.close()
    return summary
