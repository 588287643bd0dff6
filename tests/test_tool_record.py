"""A model keeps the tool schemas it was trained with; loading it under other tool schemas is an error naming the
change (the prompts' tool block would differ from the one it learnt on: a Point description edit made a 44 % SFT
model answer garbage)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from thinkimg.agent.policies.hf import HFPolicy
from thinkimg.agent.tool_record import (RECORD, ToolBlockMismatch, check_tool_record, current_schemas,
                                        tool_block_changes, trained_schemas)
from thinkimg.train.common import TrainError, check_model_dir
from thinkimg.train.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("record-tiny") / "model", seed=0, hidden_size=64, num_layers=2)


def _edited(schemas: list[dict], name: str, description: str) -> list[dict]:
    out = json.loads(json.dumps(schemas))
    for schema in out:
        if schema["function"]["name"] == name:
            schema["function"]["description"] = description
    return out


def _copy(tiny: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny, tmp_path / "model"))


def test_the_tiny_build_records_the_schemas_its_tokenizer_was_built_on(tiny):
    schemas, where = trained_schemas(tiny)
    assert where.endswith(RECORD) and schemas == current_schemas()
    assert {s["function"]["name"] for s in schemas} >= {"OCR", "Point", "Calculate"}
    check_tool_record(tiny)
    check_model_dir(tiny)


def test_a_changed_description_is_refused_by_the_loaders_with_the_tool_named(tiny, tmp_path):
    model = _copy(tiny, tmp_path)
    (model / RECORD).write_text(json.dumps(_edited(current_schemas(), "Point", "an older description")))
    with pytest.raises(ToolBlockMismatch, match=r"Point's description changed.*retrain"):
        check_tool_record(model)
    with pytest.raises(TrainError, match="Point's description changed"):
        check_model_dir(model)
    with pytest.raises(ToolBlockMismatch, match="Point's description changed"):
        HFPolicy(str(model), device="cpu")


def test_without_a_record_the_tiny_tokenizers_tool_tokens_tell(tiny, tmp_path, monkeypatch):
    """Tiny models built before the record: their tokenizer holds each schema line as a token."""
    model = _copy(tiny, tmp_path)
    (model / RECORD).unlink()
    schemas, where = trained_schemas(model)
    assert "tool tokens" in where and schemas == current_schemas()
    check_tool_record(model)
    import thinkimg.agent.tool_record as record

    monkeypatch.setattr(record, "current_schemas", lambda: _edited(schemas, "Crop", "crop differently"))
    with pytest.raises(ToolBlockMismatch, match=r"Crop's description changed.*tool tokens"):
        check_tool_record(model)


def test_a_model_recording_nothing_passes_and_a_broken_record_is_named(tiny, tmp_path):
    model = _copy(tiny, tmp_path)
    (model / RECORD).unlink()
    (model / "tokenizer.json").write_text(json.dumps({"added_tokens": [{"content": "<|im_end|>"}]}))
    assert trained_schemas(model) is None  # a real checkpoint not trained here: nothing to compare
    check_tool_record(model)
    (model / RECORD).write_text("[{")
    with pytest.raises(ToolBlockMismatch, match=f"{RECORD}: not JSON"):
        check_tool_record(model)


def test_changes_are_listed_per_tool():
    now = current_schemas()
    assert tool_block_changes(now, now) == []
    older = [s for s in now if s["function"]["name"] != "Calculate"]
    older = _edited(older, "OCR", "read text")
    older[1]["function"]["parameters"] = {"type": "object", "properties": {}}
    changes = tool_block_changes(older, now)
    assert "Calculate added" in changes and "OCR's description changed" in changes
    assert f"{older[1]['function']['name']}'s parameters changed" in changes
    assert tool_block_changes(list(reversed(now)), now) == ["the tools' order changed"]
