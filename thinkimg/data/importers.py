"""``thinkimg data import``: turn a benchmark in its published format into the project's dataset format.

Each format is read by the matching validated loader of :mod:`thinkimg.eval.tasks` (every record and image file
is checked before anything is written). The importer then writes, under ``out``::

    images/<format>/   one PNG per distinct image (named after the first record's id)
    <split>.jsonl      QARecords (``eval`` or ``rl``), readable with :func:`thinkimg.data.dataset.read_split`
    card.json          counts per question type, the source, the loader arguments and the command
    README.md          the same, as a dataset card

Everything is written to a temporary folder next to ``out`` and moved into place only once complete, so a failed
import leaves ``out`` as it was.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thinkimg.data.dataset import QARecord, write_jsonl
from thinkimg.eval.tasks import TaskError, TaskRecord, load_task
from thinkimg.images import encode_png, image_hash

__all__ = ["IMPORTERS", "BenchmarkImportError", "Importer", "import_benchmark"]

IMPORT_SPLITS = ("eval", "rl")


class BenchmarkImportError(ValueError):
    """A benchmark cannot be imported; the message names the file and the record index where there is one."""


@dataclass(frozen=True)
class Importer:
    """A benchmark format: the eval task whose loader reads it, and the file shape it expects."""

    task: str
    description: str


IMPORTERS: dict[str, Importer] = {
    "chartqa": Importer("chartqa", "ChartQA: a folder with test_human.json / test_augmented.json "
                                   '([{"imgname", "query", "label"}]) and png/ (loader args: split, images)'),
    "chartgemma": Importer("chartgemma", "OpenThinkIMG / ChartGemma: a JSON or JSONL file of "
                                         '{"image_path", "question", "label": "<answer> X </answer>"}'),
    "charxiv": Importer("charxiv", 'CharXiv reasoning_val.json: {key: {"figure_id", "query", "answer", '
                                   '"inst_category"}} and images/ (loader arg: images)'),
}


def import_benchmark(fmt: str, path: str | Path, out: str | Path, *, split: str = "eval",
                     loader_args: Mapping[str, Any] | None = None, force: bool = False) -> dict[str, Any]:
    """Import benchmark ``fmt`` read from ``path`` as split ``split`` of the dataset folder ``out``; returns the card.

    ``loader_args`` go to the format's loader (strings are converted, as for ``--task-args``); a mapping, not
    keywords, because loaders have their own ``split`` (ChartQA: ``human`` / ``augmented``). A non-empty ``out``
    is refused unless ``force``: then the files this import writes replace theirs (``images/<fmt>/`` as a whole)
    and nothing else in ``out`` is touched.
    """
    importer = IMPORTERS.get(fmt)
    if importer is None:
        raise BenchmarkImportError(f"unknown benchmark format {fmt!r}; known formats: {', '.join(IMPORTERS)}")
    if split not in IMPORT_SPLITS:
        raise BenchmarkImportError(f"split must be one of {', '.join(IMPORT_SPLITS)}, got {split!r}")
    path, out, loader_args = Path(path), Path(out), dict(loader_args or {})
    if out.exists() and not out.is_dir():
        raise BenchmarkImportError(f"{out}: output exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise BenchmarkImportError(f"{out}: output folder is not empty (pass force=True / --force to replace "
                                   f"its {split}.jsonl, card.json, README.md and images/{fmt}/)")
    try:
        records = load_task(importer.task, path=path, **loader_args).records
    except TaskError as exc:
        raise BenchmarkImportError(str(exc)) from exc
    if not records:
        raise BenchmarkImportError(f"{path}: no records to import")

    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        qa = _write_images(fmt, path, records, stage)
        write_jsonl(stage / f"{split}.jsonl", qa)
        card = _card(fmt, importer, path, out, split, loader_args, qa)
        (stage / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (stage / "README.md").write_text(dataset_card(card), encoding="utf-8")
        _move_into(stage, out, fmt)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return card


def _write_images(fmt: str, path: Path, records: list[TaskRecord], stage: Path) -> list[QARecord]:
    """Decode each record's image and write it as PNG (identical images once); the records that cite them."""
    folder = stage / "images" / fmt
    folder.mkdir(parents=True)
    by_hash: dict[str, str] = {}
    used: set[str] = set()
    qa = []
    for record in records:
        try:
            img = record.image()
        except TaskError as exc:
            raise BenchmarkImportError(str(exc)) from exc
        digest = image_hash(img)
        stem = by_hash.get(digest)
        if stem is None:
            stem = _safe_stem(record.id, used)
            (folder / f"{stem}.png").write_bytes(encode_png(img))
            by_hash[digest] = stem
        qa.append(QARecord(id=f"{fmt}/{record.id}", image=f"images/{fmt}/{stem}.png", question=record.question,
                           answer=record.answer, question_type=record.question_type or fmt, chart_kind="",
                           chart_id=f"{fmt}/{stem}", source=f"{fmt}:{path.name}", tools=[]))
    return qa


def _safe_stem(record_id: str, used: set[str]) -> str:
    """A file name stem made of ``[A-Za-z0-9._-]`` from ``record_id``, unique (case-insensitively) within ``used``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", record_id).strip("._")[:80] or "record"
    stem, n = base, 1
    while stem.lower() in used:
        n += 1
        stem = f"{base}-{n}"
    used.add(stem.lower())
    return stem


def _card(fmt: str, importer: Importer, path: Path, out: Path, split: str, loader_args: dict[str, Any],
          qa: list[QARecord]) -> dict[str, Any]:
    args = {k: str(v) for k, v in loader_args.items()}
    command = ["thinkimg", "data", "import", fmt, str(path), "--out", str(out), "--split", split]
    if args:
        command += ["--args", ",".join(f"{k}={v}" for k, v in args.items())]
    return {
        "format": fmt,
        "task": importer.task,
        "description": importer.description,
        "source": str(path.resolve()),
        "loader_args": args,
        "command": shlex.join(command),
        "counts": {split: {
            "records": len(qa),
            "charts": len({r.chart_id for r in qa}),
            "question_types": dict(sorted(Counter(r.question_type for r in qa).items())),
        }},
    }


def dataset_card(card: dict[str, Any]) -> str:
    """The README.md of an imported dataset: a ``datasets`` config header, the source and the counts."""
    (split, counts), = card["counts"].items()
    lines = ["---", "configs:", f"- config_name: {split}", "  data_files:", "  - split: train",
             f"    path: {split}.jsonl", "---", "", f"# {card['format']} benchmark, imported", "",
             card["description"], "",
             f"- source: `{card['source']}`",
             f"- command: `{card['command']}`",
             f"- split `{split}`: {counts['records']} records on {counts['charts']} images", "",
             "## Question types", "", "| type | records |", "|---|---|"]
    lines += [f"| {qtype} | {n} |" for qtype, n in counts["question_types"].items()]
    return "\n".join(lines) + "\n"


def _move_into(stage: Path, out: Path, fmt: str) -> None:
    """Move the staged dataset into ``out``: the folder itself when ``out`` is absent or empty, else file by file."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():
        stage.rename(out)
        return
    target = out / "images" / fmt
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(exist_ok=True)
    (stage / "images" / fmt).rename(target)
    for item in stage.iterdir():
        if item.is_file():
            item.replace(out / item.name)
