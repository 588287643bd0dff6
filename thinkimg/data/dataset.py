"""The on-disk dataset format the data engine and the importers write, and SFT, GRPO and eval read.

A dataset is a folder::

    README.md      dataset card (counts per split, chart kind and question type; kept rates; seeds; data hash)
    card.json      the same, machine-readable
    rl.jsonl       {"id", "image", "question", "answer", "question_type", "chart_kind", "chart_id", "source", "tools"}
    eval.jsonl     same fields as rl.jsonl (held-out charts, from source tables disjoint from the other splits)
    sft.jsonl      the same fields plus "conversation" (a JSON string: the verified trajectory, Conversation.to_json)
                   and "images" (the files it cites); no "image" column
    charts.jsonl   per chart: its id, image, table, style and element boxes (the renderer's metadata)
    images/        PNG files; every path in the JSONL files is relative to the dataset folder

Trajectories are stored as JSON strings (not Arrow structs: tool-call arguments differ per tool). Load a split with
:func:`load_split` (a ``datasets.Dataset``) or :func:`read_split` (validated dicts; errors name file, line, field).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from thinkimg.agent.conversation import Conversation

SPLITS = ("sft", "rl", "eval")


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names the file, the line and the field."""


class _Record(BaseModel):
    """What every record says about its question."""

    model_config = ConfigDict(extra="forbid")

    id: str
    question: str
    answer: str
    question_type: str
    chart_kind: str = ""
    chart_id: str = ""
    source: str = ""
    tools: list[str] = []


class QARecord(_Record):
    """One question on one image (the ``rl`` and ``eval`` splits; imported benchmarks too)."""

    image: str


class SFTRecord(_Record):
    """One verified trajectory (the ``sft`` split)."""

    conversation: str
    images: list[str]


RECORD_MODELS: dict[str, type[BaseModel]] = {"sft": SFTRecord, "rl": QARecord, "eval": QARecord}


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any] | BaseModel]) -> int:
    """Write records as JSON lines atomically (a temporary file renamed into place); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with open(tmp, "w", encoding="utf-8") as fh:
        for record in records:
            data = record.model_dump() if isinstance(record, BaseModel) else record
            fh.write(json.dumps(data, ensure_ascii=False) + "\n")
            n += 1
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return n


def read_split(root: str | Path, split: str, *, check_images: bool = True) -> list[dict[str, Any]]:
    """The validated records of one split; every image they cite must exist (unless ``check_images=False``)."""
    if split not in RECORD_MODELS:
        raise DatasetError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    root = Path(root)
    path = root / f"{split}.jsonl"
    model = RECORD_MODELS[split]
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (a dataset folder holds {', '.join(s + '.jsonl' for s in SPLITS)})")
    records = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = model.model_validate_json(line)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or "record"
                raise DatasetError(f"{path}: line {n}: field {where!r}: {err['msg']}") from None
            files = record.images if isinstance(record, SFTRecord) else [record.image]
            if check_images:
                for name in files:
                    if not (root / name).is_file():
                        raise DatasetError(f"{path}: line {n}: image file not found: {root / name}")
            records.append(record.model_dump())
    return records


def load_conversation(root: str | Path, record: dict[str, Any]) -> Conversation:
    """The trajectory of an ``sft`` record, images loaded from the dataset folder."""
    root = Path(root)
    data = json.loads(record["conversation"])
    return Conversation.from_json(data, root)


def load_split(root: str | Path, split: str):
    """One split as a ``datasets.Dataset``; in ``rl``/``eval`` the ``image`` column decodes to PIL images."""
    from datasets import Dataset, Image

    root = Path(root).resolve()
    records = read_split(root, split)
    if split == "sft":
        for r in records:
            r["images"] = [str(root / name) for name in r["images"]]
        return Dataset.from_list(records)
    for r in records:
        r["image"] = str(root / r["image"])
    return Dataset.from_list(records).cast_column("image", Image())
