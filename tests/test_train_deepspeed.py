"""DeepSpeed and multi-GPU launch configs (configs/deepspeed/*.json, configs/accelerate/*.yaml) and DeepSpeed runs.

Fast: every DeepSpeed JSON is a ZeRO config whose batch sizes, clipping and precision are "auto" (TRL's config fills
them; fixed values clash with it); every accelerate YAML loads with accelerate's own loader, and a DeepSpeed one
yields, through accelerate's own launcher code, the environment a launched process turns into a ``DeepSpeedPlugin``.

Slow (CPU, one process, no launcher): ``train_sft`` with ``deepspeed=configs/deepspeed/zero2.json`` (and zero3.json)
for one step. What DeepSpeed needs on CPU, as measured with deepspeed 0.19.8 / torch 2.13 / transformers 5.20:

* the distributed env vars of a one-process world (MASTER_ADDR, MASTER_PORT, RANK, LOCAL_RANK, WORLD_SIZE);
* nothing else to set: DeepSpeed picks its CPU accelerator when CUDA is absent (``DS_ACCELERATOR=cpu`` forces it) and
  that accelerator's torch.distributed backend is gloo (ccl only where oneccl_bindings_for_pytorch is installed);
* no DeepSpeed optimizer: the JSONs have no ``optimizer`` section, so the Trainer's torch AdamW is handed to ZeRO as a
  client optimizer (transformers sets ``zero_allow_untested_optimizer``); DeepSpeed's CPU Adam (a compiled op) is
  only needed with offload (zero3_offload.json);
* the one JIT-compiled op is ``deepspeed_shm_comm`` (a C++ compiler and ninja; ~55 s the first time, then cached in
  ~/.cache/torch_extensions/py311_cpu/, or $TORCH_EXTENSIONS_DIR).

A DeepSpeed run leaves process-wide state behind (the torch.distributed process group, accelerate's state singletons,
transformers' global ZeRO-3 flag, ``ACCELERATE_USE_DEEPSPEED=true`` in os.environ) that would turn later trainings in
the same pytest process into DeepSpeed ones and make ``from_pretrained`` build empty ZeRO-3 shards:
``_one_process_world`` clears all of it.

GPU: ``accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml`` on all GPUs, as the YAML documents;
the same launch with one process runs (slowly) on CPU too.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
import yaml
from conftest import trajectory, write_sft_dataset

from thinkimg.data.render import render_bar_chart
from thinkimg.tools import InProcessToolClient
from thinkimg.train.sft import SFTParams, train_sft
from thinkimg.train.tiny import build_tiny_model

REPO = Path(__file__).resolve().parents[1]
DEEPSPEED_DIR = REPO / "configs" / "deepspeed"
ACCELERATE_DIR = REPO / "configs" / "accelerate"
DEEPSPEED_CONFIGS = sorted(DEEPSPEED_DIR.glob("*.json"))
ACCELERATE_CONFIGS = sorted(ACCELERATE_DIR.glob("*.yaml"))
STAGES = {"zero2.json": 2, "zero3.json": 3, "zero3_offload.json": 3}
#: Keys TRL/the HF Trainer fill from the params (a fixed value that differs from them is an error at startup).
AUTO_KEYS = ["train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"]
HIDDEN = 64  # the tiny model's hidden size: reduce_bucket_size "auto" becomes HIDDEN * HIDDEN

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="needs the deepspeed extra: pip install -e '.[deepspeed]'")


def _name(path: Path) -> str:
    return path.name


# ------------------------------------------------------------------------------------------------ configs


def test_the_expected_config_files_exist():
    assert {p.name for p in DEEPSPEED_CONFIGS} == set(STAGES)
    assert {p.name for p in ACCELERATE_CONFIGS} == {"single_gpu.yaml", "multi_gpu.yaml", "deepspeed_zero2.yaml",
                                                    "deepspeed_zero3.yaml", "multi_node.yaml"}


@pytest.mark.parametrize("path", DEEPSPEED_CONFIGS, ids=_name)
def test_deepspeed_config_is_zero_with_auto_batch_sizes_and_precision(path):
    config = json.loads(path.read_text(encoding="utf-8"))
    zero = config["zero_optimization"]
    assert zero["stage"] == STAGES[path.name]
    for key in AUTO_KEYS:
        assert config[key] == "auto", key
    assert config["bf16"]["enabled"] == "auto" and config["fp16"]["enabled"] == "auto"
    assert zero["overlap_comm"] is True and zero["contiguous_gradients"] is True
    assert zero["reduce_bucket_size"] == "auto"
    if zero["stage"] == 3:
        assert zero["stage3_prefetch_bucket_size"] == "auto" and zero["stage3_param_persistence_threshold"] == "auto"
        # without it a ZeRO-3 save writes each rank's empty shard placeholders instead of the weights
        assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    offload = {zero.get(k, {}).get("device") for k in ("offload_optimizer", "offload_param")} - {None, "none"}
    if offload:
        assert offload == {"cpu"}
        # transformers refuses ZeRO-Offload with its own (torch) optimizer: DeepSpeed's, its settings from the params
        assert config["optimizer"]["type"] == "AdamW"
        assert set(config["optimizer"]["params"].values()) == {"auto"}
    else:
        assert "optimizer" not in config and "scheduler" not in config  # the Trainer's AdamW and schedule


def _launch_env(config_file: Path) -> tuple[object, dict[str, str]]:
    """``accelerate launch``'s resolved arguments for ``config_file`` and the ACCELERATE_* environment it gives each
    process, computed by accelerate's own launcher code (``launch_command`` in accelerate 1.15, minus launching)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "--main_process_port", "29500",
                                               "-m", "thinkimg.cli", "train", "sft", "--params", "params.yaml"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    elif args.multi_gpu:
        env = prepare_multi_gpu_env(args)
    else:
        env = {}
    return args, {k: v for k, v in env.items() if k.startswith("ACCELERATE_")}


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=_name)
def test_accelerate_config_loads_and_a_deepspeed_one_reaches_its_json(path, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DeepSpeedPlugin, DistributedType
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ")  # the header comment says how to launch with it
    assert f"accelerate launch --config_file configs/accelerate/{path.name}" in text
    assert "-m thinkimg.cli train" in text
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig) and config.compute_environment == "LOCAL_MACHINE"
    assert config.num_processes >= 1 and config.num_machines >= 1
    monkeypatch.chdir(REPO)  # the YAMLs name the JSON relative to the repository root, where launches run
    args, env = _launch_env(path)
    ds_file = config.deepspeed_config.get("deepspeed_config_file")
    if config.distributed_type != DistributedType.DEEPSPEED:
        assert not ds_file and not args.use_deepspeed
        return
    assert ds_file and (REPO / ds_file).is_file(), ds_file
    assert ds_file.startswith("configs/deepspeed/")
    # what a launched process does with that environment: transformers' TrainingArguments builds DeepSpeedPlugin()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        plugin = DeepSpeedPlugin()  # raises on settings accelerate ignores beside a JSON (mixed_precision, zero_stage)
        stage = json.loads((REPO / ds_file).read_text())["zero_optimization"]["stage"]
        assert plugin.zero_stage == stage == plugin.hf_ds_config.config["zero_optimization"]["stage"]
        assert plugin.zero3_init_flag == (stage == 3)
    finally:
        unset_hf_deepspeed_config()


def test_mixed_precision_beside_a_deepspeed_json_is_refused(tmp_path, monkeypatch):
    """Why the DeepSpeed YAMLs have no mixed_precision: the launched process would fail at startup."""
    from accelerate.utils import DeepSpeedPlugin

    config = yaml.safe_load((ACCELERATE_DIR / "deepspeed_zero2.yaml").read_text(encoding="utf-8"))
    config["mixed_precision"] = "bf16"
    config["deepspeed_config"]["deepspeed_config_file"] = str(DEEPSPEED_DIR / "zero2.json")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config), encoding="utf-8")
    _, env = _launch_env(bad)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="will be ignored"):
        DeepSpeedPlugin()


def test_the_documented_module_entry_point_runs_the_cli():
    """``accelerate launch ... -m thinkimg.cli train sft`` runs ``python -m thinkimg.cli train sft`` per process."""
    result = subprocess.run([sys.executable, "-m", "thinkimg.cli", "train", "--help"], cwd=REPO, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "sft" in result.stdout and "grpo" in result.stdout


# ------------------------------------------------------------------------------------------------ training fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("ds-tiny") / "model", seed=0, hidden_size=HIDDEN, num_layers=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Two trajectories: OCR (text only; the one CPU runs train on) and Crop (a tool image)."""
    client = InProcessToolClient()
    chart = render_bar_chart({"A": 12.0, "B": 7.0, "C": 3.5}, title="Costs")
    conversations = [
        (trajectory(client, chart, "t0", "What is the title of the chart?", [("OCR", {"image": "img_0"})], "Costs",
                    ocr_text='"Costs" [60, 8, 220, 30]'), "Costs"),
        (trajectory(client, chart, "t1", "What is the value of B?",
                    [("Crop", {"image": "img_0", "box": [40, 20, 400, 300]})], "7"), "7"),
    ]
    return write_sft_dataset(tmp_path_factory.mktemp("ds-data") / "charts", conversations)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _one_process_world(monkeypatch):
    """The env of a one-process torch.distributed world for DeepSpeed without a launcher; on exit, everything the run
    left process-wide is cleared (see the module docstring)."""
    from accelerate.state import AcceleratorState
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    before = set(os.environ)
    with monkeypatch.context() as mp:
        for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "RANK": "0",
                           "LOCAL_RANK": "0", "WORLD_SIZE": "1"}.items():
            mp.setenv(key, value)
        try:
            yield
        finally:
            unset_hf_deepspeed_config()
            AcceleratorState._reset_state(reset_partial_state=True)
            import deepspeed.comm.comm as ds_comm

            if ds_comm.cdb is not None and torch.distributed.is_initialized():
                ds_comm.destroy_process_group()  # torch's group and DeepSpeed's cached groups (stale in a next run)
            elif torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            ds_comm.cdb = None
            for key in set(os.environ) - before:
                if key.startswith("ACCELERATE_"):
                    del os.environ[key]


def _params(tiny: Path, dataset: Path, out: Path, stage_file: str) -> SFTParams:
    return SFTParams(model=tiny, dataset=dataset, out=out, max_steps=1, limit=1, learning_rate=1e-3, logging_steps=1,
                     save_steps=1, seed=0, deepspeed=DEEPSPEED_DIR / stage_file)


def _ds_checkpoint(out: Path) -> dict:
    """The DeepSpeed engine's own checkpoint of step 1 (only a DeepSpeed run writes global_step1/): its config."""
    folder = out / "checkpoint-1" / "global_step1"
    states = sorted(p.name for p in folder.glob("*.pt"))
    assert any("optim_states" in name for name in states), states
    model_states = next(p for p in folder.glob("*model_states.pt"))
    return torch.load(model_states, map_location="cpu", weights_only=False)["ds_config"]


def _empty_tensors(folder: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return [name for name in f.keys() if 0 in f.get_slice(name).get_shape()]


def _check_trained_model(out: Path, tiny: Path) -> None:
    """``out`` holds a full model (every tensor the base model has, shapes included) that one step changed."""
    from transformers import AutoModelForImageTextToText

    base = dict(AutoModelForImageTextToText.from_pretrained(str(tiny)).named_parameters())
    trained = dict(AutoModelForImageTextToText.from_pretrained(str(out)).named_parameters())
    assert trained.keys() == base.keys()
    assert all(trained[k].shape == base[k].shape for k in base)
    assert all(torch.isfinite(p).all() for p in trained.values())
    name = "lm_head.weight" if "lm_head.weight" in base else next(iter(base))
    assert not torch.equal(trained[name], base[name].to(trained[name].dtype))  # bf16 where the run was (GPU)


def _check_one_step(summary: dict, out: Path) -> None:
    assert summary["global_step"] == 1 and summary["steps"] == 1 and summary["trajectories"] == 1
    assert math.isfinite(summary["train_loss"]) and summary["train_loss"] > 0
    state = json.loads((out / "checkpoint-1" / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 1 and math.isfinite(losses[0])


def _one_sft_step(tiny, dataset, tmp_path, monkeypatch, config: str) -> tuple[SFTParams, dict]:
    """One SFT step with DeepSpeed ``config`` in a one-process world; the params and the DeepSpeed config it ran."""
    params = _params(tiny, dataset, tmp_path / "sft", config)
    with _one_process_world(monkeypatch):
        summary = train_sft(params, mlflow_run=False)
    _check_one_step(summary, params.out)
    return params, _ds_checkpoint(params.out)


# ------------------------------------------------------------------------------------------------ training


@pytest.mark.slow
@needs_deepspeed
def test_zero2_one_sft_step_in_one_process(tiny, dataset, tmp_path, monkeypatch):
    params, ds_config = _one_sft_step(tiny, dataset, tmp_path, monkeypatch, "zero2.json")
    assert ds_config["zero_optimization"]["stage"] == 2
    # the "auto" values as TRL/the Trainer filled them
    assert ds_config["zero_optimization"]["reduce_bucket_size"] == HIDDEN * HIDDEN
    assert ds_config["train_micro_batch_size_per_gpu"] == 1 and ds_config["gradient_accumulation_steps"] == 1
    assert ds_config["train_batch_size"] == 1 and ds_config["gradient_clipping"] == 1.0
    assert ds_config["bf16"]["enabled"] == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert not _empty_tensors(params.out)
    _check_trained_model(params.out, tiny)


@pytest.mark.slow
@needs_deepspeed
def test_zero3_one_sft_step_in_one_process(tiny, dataset, tmp_path, monkeypatch):
    params, ds_config = _one_sft_step(tiny, dataset, tmp_path, monkeypatch, "zero3.json")
    assert ds_config["zero_optimization"]["stage"] == 3
    assert ds_config["zero_optimization"]["stage3_param_persistence_threshold"] == 10 * HIDDEN
    # the Trainer's checkpoint gathers the shards (stage3_gather_16bit_weights_on_model_save)
    assert not _empty_tensors(params.out / "checkpoint-1")
    _check_trained_model(params.out / "checkpoint-1", tiny)
    assert not _empty_tensors(params.out), "ZeRO-3 shards were not gathered into the final model"
    _check_trained_model(params.out, tiny)


def _launch(config: str, num_processes: int, tiny: Path, dataset: Path, root: Path, *, max_steps: int,
            limit: int, timeout: int) -> tuple[subprocess.CompletedProcess, Path, Path]:
    """``accelerate launch --config_file configs/accelerate/<config> -m thinkimg.cli train sft`` from the repository
    root, as the YAML's header says; the DeepSpeed JSON comes from the YAML (sft.deepspeed unset)."""
    out, metrics = root / "sft", root / "metrics.json"
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump({"sft": {
        "model": str(tiny), "dataset": str(dataset), "out": str(out), "max_steps": max_steps, "limit": limit,
        "learning_rate": 1e-3, "logging_steps": 1, "save_steps": max_steps, "seed": 0}}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE") and
           not k.startswith("ACCELERATE_")}
    command = [str(Path(sys.executable).parent / "accelerate"), "launch", "--config_file",
               str(ACCELERATE_DIR / config), "--num_processes", str(num_processes),
               "--main_process_port", str(_free_port()),
               "-m", "thinkimg.cli", "train", "sft", "--params", str(params), "--fresh", "--no-mlflow",
               "--metrics", str(metrics)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return result, out, metrics


@pytest.mark.slow
@needs_deepspeed
def test_accelerate_launch_zero2_one_process(tiny, dataset, tmp_path):
    """The documented launch command, end to end, with one process (on CPU here: gloo, DeepSpeed's CPU accelerator)."""
    result, out, metrics = _launch("deepspeed_zero2.yaml", 1, tiny, dataset, tmp_path, max_steps=1, limit=1,
                                   timeout=400)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    summary = json.loads(metrics.read_text())
    assert summary["global_step"] == 1 and math.isfinite(summary["train_loss"])
    assert (out / "checkpoint-1" / "global_step1").is_dir()  # the DeepSpeed engine saved it
    _check_trained_model(out, tiny)


@pytest.mark.gpu
@needs_cuda
@needs_deepspeed
def test_accelerate_launch_zero2_on_all_gpus(tiny, dataset, tmp_path):
    """ZeRO-2 over every visible GPU (``--num_processes`` = their count), two SFT steps on the tiny model."""
    gpus = torch.cuda.device_count()
    result, out, metrics = _launch("deepspeed_zero2.yaml", gpus, tiny, dataset, tmp_path, max_steps=2, limit=0,
                                   timeout=580)
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    summary = json.loads(metrics.read_text())
    assert summary["global_step"] == 2 and math.isfinite(summary["train_loss"])
    shards = sorted(p.name for p in (out / "checkpoint-2" / "global_step2").glob("*optim_states.pt"))
    assert len(shards) == gpus, shards  # one optimizer-state shard per rank: ZeRO partitioned it
    assert (out / "model.safetensors").is_file() and not _empty_tensors(out)
    _check_trained_model(out, tiny)


def test_no_deepspeed_state_is_left_for_later_tests():
    """Runs after the in-process DeepSpeed trainings above (file order): later trainings must start clean."""
    from accelerate.state import AcceleratorState, PartialState
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    assert not torch.distributed.is_initialized()
    assert not is_deepspeed_zero3_enabled()
    assert not AcceleratorState._shared_state and not PartialState._shared_state
    assert not [k for k in os.environ if k.startswith("ACCELERATE_")]
    assert not {"MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE"} & set(os.environ)
