"""Evaluation tasks: a registry of named loaders that turn a benchmark's files into rows.

A row is ``{"id", "image" (PIL, RGB), "question", "answer", "question_type"}``. Loading is two-phase:

1. the loader reads and **validates** every record up front (a malformed record or a missing image file is a
   :class:`TaskError` naming the file and the record index, before any model runs);
2. :meth:`TaskData.rows` then yields rows, decoding each image only when its row is reached and never for the ids
   passed as ``skip`` (resumed runs do not decode what they will not use).

Register a task with :func:`register_task`; every task declares the metric that scores it (``relaxed_accuracy``
unless said otherwise). Loader arguments come from ``--task-args key=val,...`` as strings and are converted to the
loader's annotated types (``int``, ``float``, ``bool``, ``Path``); unknown arguments are errors.

Built-in tasks (see each loader's docstring for the exact file shape): ``chartqa``, ``chartgemma``, ``charxiv``,
``charts`` (a dataset folder written by ``thinkimg data curate`` or ``thinkimg data import``), ``synthetic_value``.
"""

from __future__ import annotations

import inspect
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from thinkimg.images import ImageError, load_image

__all__ = [
    "TASKS",
    "Task",
    "TaskData",
    "TaskError",
    "TaskRecord",
    "get_task",
    "load_task",
    "parse_key_values",
    "register_task",
]


class TaskError(ValueError):
    """A task's files or arguments are invalid; the message names the file and the record index."""


@dataclass
class TaskRecord:
    """One validated sample: everything but the image, which ``image`` (a callable) produces on demand."""

    id: str
    question: str
    answer: str
    question_type: str | None
    image: Callable[[], Image.Image]
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        row = {"id": self.id, "image": self.image(), "question": self.question, "answer": self.answer,
               "question_type": self.question_type}
        row.update(self.extra)
        return row


@dataclass
class TaskData:
    """A loaded task: its validated records (re-iterable, so the main run and the ablation can both read it)."""

    name: str
    metric: str
    records: list[TaskRecord]
    args: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def rows(self, skip: Iterable[str] = ()) -> Iterator[dict[str, Any]]:
        """Rows in order, images decoded lazily; ids in ``skip`` are left out without decoding their images."""
        skip = set(skip)
        for record in self.records:
            if record.id not in skip:
                yield record.row()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.rows()


@dataclass
class Task:
    """A registered task: its loader (returns a list of :class:`TaskRecord`) and the metric that scores it."""

    name: str
    loader: Callable[..., list[TaskRecord]]
    metric: str = "relaxed_accuracy"

    @property
    def description(self) -> str:
        return inspect.getdoc(self.loader) or ""


TASKS: dict[str, Task] = {}


def register_task(name: str, *, metric: str = "relaxed_accuracy") -> Callable:
    """Decorator: register ``loader(**args) -> list[TaskRecord]`` as task ``name`` scored by ``metric``."""

    def decorate(loader: Callable[..., list[TaskRecord]]) -> Callable[..., list[TaskRecord]]:
        if name in TASKS:
            raise ValueError(f"task {name!r} is already registered")
        TASKS[name] = Task(name, loader, metric)
        return loader

    return decorate


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise TaskError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def parse_key_values(text: str | None, *, option: str = "--task-args") -> dict[str, str]:
    """``"a=1,b=x"`` -> ``{"a": "1", "b": "x"}``; an item without ``=`` is an error naming ``option``."""
    out: dict[str, str] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option}: {item!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _convert(task: str, key: str, value: Any, annotation: Any) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if not isinstance(value, str):
        return value
    try:
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("bool"):
            lowered = value.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return lowered in ("true", "1", "yes")
        if kind.startswith("Path"):
            return Path(value).expanduser()
    except ValueError:
        raise TaskError(f"task {task}: argument {key}={value!r} is not a valid {kind.split(' ')[0]}") from None
    return value


def load_task(name: str, **args: Any) -> TaskData:
    """Load and validate task ``name`` with loader arguments ``args`` (strings are converted to the loader's types)."""
    task = get_task(name)
    params = inspect.signature(task.loader).parameters
    unknown = sorted(set(args) - set(params))
    if unknown:
        raise TaskError(f"task {name}: unknown argument(s) {', '.join(unknown)}; it takes: {', '.join(params)}")
    missing = [p for p, spec in params.items() if spec.default is inspect.Parameter.empty and p not in args]
    if missing:
        raise TaskError(f"task {name}: missing argument(s) {', '.join(missing)} (pass --task-args "
                        + ",".join(f"{m}=..." for m in missing) + ")")
    converted = {k: _convert(name, k, v, params[k].annotation) for k, v in args.items()}
    records = task.loader(**converted)
    seen: dict[str, int] = {}
    for i, record in enumerate(records):
        if record.id in seen:
            raise TaskError(f"task {name}: record {i} repeats id {record.id!r} (first at record {seen[record.id]})")
        seen[record.id] = i
    return TaskData(name=name, metric=task.metric, records=records, args=converted)


# ---------------------------------------------------------------------------------------------------- helpers


def _read_json_records(path: Path) -> Any:
    """A JSON document, or a JSON-lines file (``.jsonl``) as a list; errors name the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaskError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if path.suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskError(f"{path}: record {len(out)} (line {n + 1}) is not valid JSON: {exc.msg}") from None
        return out
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def _field(record: Any, keys: tuple[str, ...], where: str, *, required: bool = True) -> Any:
    """The first of ``keys`` present in ``record`` as a non-empty string/number; a clear error otherwise."""
    if not isinstance(record, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for key in keys:
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TaskError(f"{where}: field {key!r} must be a string or number, got {type(value).__name__}")
        if isinstance(value, str) and not value.strip():
            raise TaskError(f"{where}: field {key!r} is empty")
        return value
    if required:
        raise TaskError(f"{where}: missing field {' / '.join(repr(k) for k in keys)}")
    return None


def _image_loader(path: Path, where: str) -> Callable[[], Image.Image]:
    """Check that ``path`` is a readable image (header only) now; decode it fully when called."""
    if not path.is_file():
        raise TaskError(f"{where}: image file not found: {path}")
    try:
        with Image.open(path) as img:
            img.size  # noqa: B018  (header read)
    except (OSError, Image.DecompressionBombError) as exc:
        raise TaskError(f"{where}: cannot read image {path}: {exc}") from None

    def load() -> Image.Image:
        try:
            return load_image(path)
        except ImageError as exc:
            raise TaskError(f"{where}: {exc}") from None

    return load


def _strip_answer_tags(label: str) -> str:
    text = str(label).strip()
    low = text.lower()
    if low.startswith("<answer>") and low.endswith("</answer>"):
        text = text[len("<answer>"):-len("</answer>")]
    return text.strip()


# ---------------------------------------------------------------------------------------------------- tasks


@register_task("chartqa")
def chartqa(path: Path, split: str = "human", images: Path | None = None) -> list[TaskRecord]:
    """ChartQA (ahmed-masry/ChartQA) as distributed: a folder such as ``ChartQA Dataset/test`` holding
    ``test_human.json`` / ``test_augmented.json`` (JSON lists of ``{"imgname", "query", "label"}``) and ``png/``.

    ``path``: that folder, or one JSON file directly. ``split``: ``human``, ``augmented`` or a file stem
    (``test_human``); several joined by ``+`` (``human+augmented``). ``images``: the image folder (default
    ``<folder>/png``). The question type is the split (``human`` / ``augmented``); ids are ``<split>/<index>``.
    """
    path = Path(path)
    if path.is_file():
        files = [(path.stem.rsplit("_", 1)[-1], path)]
        folder = path.parent
    else:
        if not path.is_dir():
            raise TaskError(f"chartqa: path {path} is neither a folder nor a JSON file")
        folder, files = path, []
        for part in split.split("+"):
            part = part.strip()
            candidates = [folder / f"{part}.json", folder / f"{folder.name}_{part}.json"]
            candidates += sorted(folder.glob(f"*_{part}.json"))
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise TaskError(f"chartqa: no JSON file for split {part!r} in {folder} "
                                f"(looked for {part}.json, *_{part}.json)")
            files.append((part.rsplit("_", 1)[-1], found))
    image_dir = Path(images) if images is not None else folder / "png"
    records = []
    for kind, file in files:
        data = _read_json_records(file)
        if not isinstance(data, list):
            raise TaskError(f"{file}: expected a JSON list of records, got {type(data).__name__}")
        for i, rec in enumerate(data):
            where = f"{file}: record {i}"
            imgname = _field(rec, ("imgname",), where)
            question = _field(rec, ("query", "question"), where)
            label = _field(rec, ("label", "answer"), where)
            records.append(TaskRecord(id=f"{kind}/{i}", question=str(question), answer=str(label),
                                      question_type=kind, image=_image_loader(image_dir / str(imgname), where)))
    return records


@register_task("chartgemma")
def chartgemma(path: Path) -> list[TaskRecord]:
    """OpenThinkIMG-style chart QA file: a JSON list or a JSONL file of
    ``{"image_path", "question", "label": "<answer> X </answer>"}`` (``label`` may also be a bare answer).

    ``image_path`` is relative to the file's folder (absolute paths are kept). Optional fields: ``id`` (default:
    the record index) and ``question_type`` / ``type`` (default ``chartgemma``).
    """
    path = Path(path)
    data = _read_json_records(path)
    if not isinstance(data, list):
        raise TaskError(f"{path}: expected a JSON list (or JSONL) of records, got {type(data).__name__}")
    records = []
    for i, rec in enumerate(data):
        where = f"{path}: record {i}"
        image_path = Path(str(_field(rec, ("image_path", "image"), where)))
        question = _field(rec, ("question", "query"), where)
        label = _strip_answer_tags(str(_field(rec, ("label", "answer"), where)))
        if not label:
            raise TaskError(f"{where}: field 'label' has an empty <answer>")
        rid = _field(rec, ("id",), where, required=False)
        kind = _field(rec, ("question_type", "type"), where, required=False) or "chartgemma"
        full = image_path if image_path.is_absolute() else path.parent / image_path
        records.append(TaskRecord(id=str(rid if rid is not None else i), question=str(question), answer=label,
                                  question_type=str(kind), image=_image_loader(full, where)))
    return records


#: CharXiv reasoning question categories (``inst_category``), as in the CharXiv paper.
CHARXIV_CATEGORIES = {1: "text_in_chart", 2: "text_in_general", 3: "number_in_chart", 4: "number_in_general"}


@register_task("charxiv")
def charxiv(path: Path, images: Path | None = None) -> list[TaskRecord]:
    """CharXiv reasoning questions (princeton-nlp/CharXiv ``reasoning_val.json`` shape).

    ``path``: a JSON file holding either an object ``{key: record}`` or a list of records. A record has
    ``figure_id`` (image ``<images>/<figure_id>.jpg``, default ``images`` = ``<file folder>/images``) or
    ``figure_path`` (relative to the file's folder), the question in ``query`` / ``raw_question`` / ``question``,
    ``answer``, and optionally ``inst_category`` (1-4: text/number in chart/general, used as the question type).
    Ids are the object keys (or ``figure_id``/index for lists). Scored by relaxed accuracy here (CharXiv's own
    grader is an LLM judge; relaxed accuracy is exact for its numeric answers and strict for text ones).
    """
    path = Path(path)
    data = _read_json_records(path)
    if isinstance(data, dict):
        items = list(data.items())
    elif isinstance(data, list):
        items = [(None, rec) for rec in data]
    else:
        raise TaskError(f"{path}: expected a JSON object or list of records, got {type(data).__name__}")
    image_dir = Path(images) if images is not None else path.parent / "images"
    records = []
    for i, (key, rec) in enumerate(items):
        where = f"{path}: record {i}" + (f" ({key!r})" if key is not None else "")
        question = _field(rec, ("query", "raw_question", "question"), where)
        answer = _field(rec, ("answer",), where)
        figure_path = _field(rec, ("figure_path",), where, required=False)
        figure_id = _field(rec, ("figure_id",), where, required=False)
        if figure_path is not None:
            full = Path(str(figure_path))
            full = full if full.is_absolute() else path.parent / full
        elif figure_id is not None:
            full = image_dir / f"{figure_id}.jpg"
            if not full.exists() and (image_dir / f"{figure_id}.png").exists():
                full = image_dir / f"{figure_id}.png"
        else:
            raise TaskError(f"{where}: missing field 'figure_path' / 'figure_id'")
        category = rec.get("inst_category")
        kind = CHARXIV_CATEGORIES.get(category, str(category)) if category is not None else "reasoning"
        rid = key if key is not None else (figure_id if figure_id is not None else i)
        records.append(TaskRecord(id=str(rid), question=str(question), answer=str(answer), question_type=kind,
                                  image=_image_loader(full, where)))
    return records


@register_task("charts")
def charts(path: Path = Path("artifacts/datasets/charts"), split: str = "eval", n: int = 0) -> list[TaskRecord]:
    """A dataset folder in the project's format: ``<path>/<split>.jsonl`` (``split``: ``eval`` or ``rl``) of
    ``{"id", "image", "question", "answer", "question_type", ...}`` with ``image`` relative to ``path``.

    Made by ``thinkimg data curate`` (its ``eval`` split holds charts disjoint from the training ones) or
    ``thinkimg data import``. Ids and question types are the records'; ``n > 0`` keeps the first ``n`` records.
    """
    if split not in ("eval", "rl"):
        raise TaskError(f"charts: split must be 'eval' or 'rl', got {split!r}")
    if n < 0:
        raise TaskError(f"charts: n must be >= 0, got {n}")
    path = Path(path)
    if not path.is_dir():
        raise TaskError(f"charts: dataset folder {path} not found (it is made by `thinkimg data curate`, "
                        "or `thinkimg data import` for a benchmark)")
    file = path / f"{split}.jsonl"
    if not file.is_file():
        raise TaskError(f"{file}: not found (the dataset folder {path} has no {split!r} split)")
    data = _read_json_records(file)
    records = []
    for i, rec in enumerate(data[:n] if n else data):
        where = f"{file}: record {i}"
        rid = _field(rec, ("id",), where)
        question = _field(rec, ("question",), where)
        answer = _field(rec, ("answer",), where)
        kind = _field(rec, ("question_type",), where)
        image = _field(rec, ("image",), where)
        records.append(TaskRecord(id=str(rid), question=str(question), answer=str(answer), question_type=str(kind),
                                  image=_image_loader(path / str(image), where)))
    return records


_SYNTHETIC_WORDS = ["Apples", "Pears", "Plums", "Kiwis", "Lemons", "Figs", "Dates", "Limes", "Grapes", "Melons",
                    "Cherries", "Mangos"]
_SYNTHETIC_TITLES = ["Fruit sold", "Crates shipped", "Orders by product", "Weekly stock"]


@register_task("synthetic_value")
def synthetic_value(n: int = 50, seed: int = 0) -> list[TaskRecord]:
    """Rendered bar charts with printed values and "What is the value of X?" questions (``n`` charts, seeded).

    A self-contained smoke task: the evaluator, resume, ablation, viewer and MLflow logging run end to end without
    any dataset on disk. The data engine's held-out split (rendered charts, questions of several types) is the
    ``charts`` task. Same ``seed`` and ``n``, same charts and questions.
    """
    if n < 1:
        raise TaskError(f"synthetic_value: n must be >= 1, got {n}")
    rng = random.Random(seed)
    records = []
    for i in range(n):
        cats = rng.sample(_SYNTHETIC_WORDS, rng.randint(3, 5))
        table = {c: rng.randint(3, 95) for c in cats}
        title = rng.choice(_SYNTHETIC_TITLES)
        target = rng.choice(cats)

        def render(table: dict[str, int] = table, title: str = title) -> Image.Image:
            from thinkimg.data.render import render_bar_chart

            return render_bar_chart(table, title=title, size=(5.0, 3.6), dpi=100).image

        records.append(TaskRecord(id=f"synthetic_value/{seed}/{i}", question=f"What is the value of {target}?",
                                  answer=str(table[target]), question_type="value_lookup", image=render))
    return records
