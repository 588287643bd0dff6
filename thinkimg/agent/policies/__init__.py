"""Policies: the models the runtime can drive, registered by name and imported only when chosen."""

from __future__ import annotations

import importlib
from typing import Any

from thinkimg.agent.policies.base import Policy

#: name -> "module:factory"; HF, vLLM and OpenAI-compatible policies arrive with their own modules.
POLICIES: dict[str, str] = {
    "scripted": "thinkimg.agent.policies.scripted:ScriptedPolicy",
    "openai": "thinkimg.agent.policies.openai_api:OpenAIPolicy",
    "vllm": "thinkimg.agent.policies.vllm:VLLMPolicy",
    "hf": "thinkimg.agent.policies.hf:HFPolicy",
}


def build_policy(name: str, **kwargs: Any) -> Policy:
    """Instantiate the policy registered as ``name`` with ``kwargs`` (its ``--model-args``)."""
    target = POLICIES.get(name)
    if target is None:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)


__all__ = ["POLICIES", "Policy", "build_policy"]
