"""``thinkimg data curate``: render charts, ask questions, verify expert trajectories, write the dataset.

Work is cut into chunks of charts (``chunk_charts`` each) that depend only on ``(seed, split, chunk index)``, so
the output is the same for a seed whatever the number of workers. Chunks run in worker processes; each finished
chunk is saved under ``<out>/.parts`` at once, so an interrupted run resumes where it stopped. A split takes chunks
0, 1, 2, ... until it holds its target number of records (``sft``: verified trajectories; ``rl``, ``eval``:
questions); chunks computed past that point are discarded. The eval split draws its tables from source tables and
synthetic themes of the ``eval`` split group only, so it is disjoint from the charts the model trains on.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from pydantic import Field
from tqdm.auto import tqdm

from thinkimg.config import StrictModel, ToolsConfig, load_yaml
from thinkimg.data.dataset import QARecord, SFTRecord, write_jsonl
from thinkimg.data.questions import QUESTION_TYPES, ask, chart_kind
from thinkimg.data.render import RenderedChart, render_chart, render_panels, sample_style
from thinkimg.data.tables import Table

SPLIT_GROUP = {"sft": "train", "rl": "train", "eval": "eval"}

#: Chart kinds the engine draws (``panels``: 2-4 titled bar subplots).
CHART_KINDS = ("bar", "hbar", "grouped_bar", "stacked_bar", "line", "scatter", "pie", "panels")

#: (min, max) categories and series per chart kind.
_SHAPE = {
    "bar": ((3, 8), (1, 1)), "hbar": ((3, 8), (1, 1)), "grouped_bar": ((3, 5), (2, 3)),
    "stacked_bar": ((3, 6), (2, 3)), "line": ((4, 10), (1, 3)), "scatter": ((4, 8), (2, 2)),
    "pie": ((3, 6), (1, 1)), "panels": ((3, 5), (1, 1)),
}


class CurateError(ValueError):
    """Curation cannot start or go on (bad parameters, an output folder from other parameters)."""


class DataParams(StrictModel):
    """The ``data`` section of ``params.yaml``."""

    seed: int = 0
    #: Where the dataset is written.
    out: Path = Path("artifacts/datasets/charts")
    #: Source tables (``data/sources.yaml`` and its CSV files).
    data_dir: Path = Path("data")
    #: Tool configuration the expert's tools run with.
    tools_config: Path | None = Path("configs/tools.yaml")
    sft_trajectories: int = Field(1000, ge=0)
    rl_questions: int = Field(2000, ge=0)
    eval_questions: int = Field(500, ge=0)
    questions_per_chart: int = Field(3, ge=1, le=10)
    #: Share of charts drawn from the source tables (the rest from synthetic tables).
    source_fraction: float = Field(0.5, ge=0.0, le=1.0)
    #: Relative weight of each chart kind.
    chart_kinds: dict[str, float] = Field(default_factory=lambda: {
        "bar": 3, "hbar": 2, "grouped_bar": 1.5, "stacked_bar": 1, "line": 2, "scatter": 1, "pie": 1.5, "panels": 1.5})
    workers: int = Field(2, ge=1, le=64)
    chunk_charts: int = Field(12, ge=1, le=1000)
    #: Model turns an expert trajectory may take.
    max_rounds: int = Field(6, ge=2, le=20)

    def model_post_init(self, _context: Any) -> None:
        unknown = sorted(set(self.chart_kinds) - set(CHART_KINDS))
        if unknown:
            raise ValueError(f"chart_kinds: unknown kind(s) {unknown}; kinds: {', '.join(CHART_KINDS)}")
        if not any(w > 0 for w in self.chart_kinds.values()):
            raise ValueError("chart_kinds: at least one kind needs a positive weight")

    def targets(self) -> dict[str, int]:
        return {"sft": self.sft_trajectories, "rl": self.rl_questions, "eval": self.eval_questions}


def load_params(path: str | Path) -> DataParams:
    """The ``data`` section of a params file (errors name the file and the field)."""
    return load_yaml(path, DataParams, section="data")


# ---------------------------------------------------------------------------------------------- one chart


class _Tables:
    """Where a chart's table comes from: the source tables of a split group, or a synthetic theme."""

    def __init__(self, data_dir: Path, source_fraction: float):
        from thinkimg.data.sources import load_sources

        self.source_fraction = source_fraction
        self.sources = {group: load_sources(data_dir, split=group) if source_fraction > 0 else []
                        for group in ("train", "eval")}

    def table(self, rng: random.Random, group: str, kind: str, n_categories: int, n_series: int) -> Table:
        from thinkimg.data.sources import sample_table
        from thinkimg.data.synthetic import synthetic_table

        ordered = True if kind == "line" else False if kind in ("pie", "scatter") else None
        if rng.random() < self.source_fraction:
            fit = [s for s in self.sources[group]
                   if s.supports(n_categories=n_categories, n_series=n_series, ordered=ordered)]
            if fit:
                return sample_table(rng.choice(fit), rng, n_categories=n_categories, n_series=n_series,
                                    ordered=ordered)
        return synthetic_table(rng, n_categories=n_categories, n_series=n_series, ordered=ordered, split_group=group)


def _fits(kind: str, table: Table) -> bool:
    values = [v for vs in table.series.values() for v in vs]
    if kind in ("pie", "stacked_bar"):
        return all(v > 0 for v in values)
    return True


def _decimals(table: Table) -> int:
    """Decimals the table's values need (at most 2), so printed values are exact."""
    need = 0
    for values in table.series.values():
        for v in values:
            for d in range(3):
                if abs(round(v, d) - v) < 1e-9:
                    break
            need = max(need, d)
    return need


def _as_scatter(table: Table) -> Table:
    (xname, xs), (yname, ys) = list(table.series.items())[:2]
    unit = f" ({table.unit})" if table.unit else ""
    return Table(title=table.title, categories=table.categories, series={"x": xs, "y": ys}, unit="",
                 category_name=table.category_name, ordered=False, source=table.source,
                 split_group=table.split_group, meta={**table.meta, "x_label": xname + unit, "y_label": yname + unit})


def sample_chart(rng: random.Random, group: str, tables: _Tables, weights: dict[str, float]) -> RenderedChart:
    """Draw one chart (kind, table(s), style) for ``group`` ("train"/"eval") and render it."""
    kinds = [k for k in CHART_KINDS if weights.get(k, 0) > 0]
    kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
    (c_lo, c_hi), (s_lo, s_hi) = _SHAPE[kind]
    if kind == "panels":
        n = rng.randint(2, 4)
        panels: list[Table] = []
        while len(panels) < n:
            table = tables.table(rng, group, rng.choice(["bar", "hbar"]), rng.randint(c_lo, c_hi), 1)
            if table.title not in {p.title for p in panels}:
                panels.append(table)
        style = sample_style(rng, rng.choice(["bar", "hbar"]), n_series=1, n_categories=c_hi, n_panels=n,
                             decimals=max(_decimals(t) for t in panels))
        style.value_labels = True  # panel questions read printed values after zooming in
        return render_panels(panels, style)
    for _ in range(50):
        try:  # a shape no source or theme of the group can give: draw another shape
            table = tables.table(rng, group, kind, rng.randint(c_lo, c_hi), rng.randint(s_lo, s_hi))
        except ValueError:
            continue
        if _fits(kind, table):
            break
    else:
        raise CurateError(f"no table of split group {group!r} fits a {kind} chart in 50 draws")
    if kind == "scatter":
        table = _as_scatter(table)
    style = sample_style(rng, kind, n_series=len(table.series), n_categories=len(table.categories),
                         decimals=_decimals(table))
    return render_chart(table, style)


# ---------------------------------------------------------------------------------------------- one chunk

_WORKER: dict[str, Any] = {}


def _worker_init(params_json: str) -> None:
    """Per-process state: the params, the table sources and (lazily) the tools."""
    params = DataParams.model_validate_json(params_json)
    _WORKER.clear()
    _WORKER["params"] = params
    _WORKER["tables"] = _Tables(params.data_dir, params.source_fraction)


def _tools_client():
    if "client" not in _WORKER:
        from thinkimg.tools import InProcessToolClient

        params: DataParams = _WORKER["params"]
        config = load_yaml(params.tools_config, ToolsConfig) if params.tools_config else ToolsConfig()
        if params.workers > 1 and not config.ocr.threads:
            config.ocr.threads = 1  # one OCR thread per worker process: the workers already fill the cores
        _WORKER["client"] = InProcessToolClient(config)
    return _WORKER["client"]


def _save_png(image, path: Path) -> None:
    from thinkimg.images import encode_png

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image))


def run_chunk(split: str, chunk: int) -> dict[str, Any]:
    """Make one chunk: its charts, questions and (``sft``) verified trajectories. Images are written under
    ``<out>/images/<split>-<chunk>/``; the records come back (and are saved by the caller)."""
    params: DataParams = _WORKER["params"]
    root = params.out
    folder = f"images/{split}-{chunk:05d}"
    charts, questions = [], []
    for i in range(params.chunk_charts):
        rng = random.Random(f"{params.seed}/{split}/{chunk}/{i}")
        chart = sample_chart(rng, SPLIT_GROUP[split], _WORKER["tables"], params.chart_kinds)
        chart_id = f"{split}-{chunk:05d}-{i:02d}"
        image_path = f"{folder}/{chart_id}.png"
        _save_png(chart.image, root / image_path)
        tables = chart.table if isinstance(chart.table, list) else [chart.table]
        kind = chart_kind(chart)
        charts.append({"id": chart_id, "image": image_path, "kind": kind,
                       "tables": [t.to_dict() for t in tables], "metadata": chart.metadata()})
        source = ",".join(sorted({t.source for t in tables}))
        for j, q in enumerate(ask(chart, rng, params.questions_per_chart)):
            questions.append((chart, QARecord(id=f"{chart_id}-q{j}", image=image_path, question=q.text,
                                              answer=q.answer, question_type=q.type, chart_kind=kind,
                                              chart_id=chart_id, source=source, tools=q.tools), q.plan))
    stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # question type -> [attempted, kept]
    if split != "sft":
        return {"records": [r.model_dump() for _, r, _ in questions], "charts": charts, "stats": {}}
    records = []
    for record, conversation in verify(questions, params.max_rounds):
        stats[record.question_type][0] += 1
        if conversation is None:
            continue
        stats[record.question_type][1] += 1
        records.append(_sft_record(record, conversation, root, folder).model_dump())
    return {"records": records, "charts": charts, "stats": dict(stats)}


def verify(questions: list[tuple[RenderedChart, QARecord, dict]], max_rounds: int):
    """Run the scripted expert on each question with the real tools; yield (record, conversation or None when
    its final answer does not match the gold one)."""
    from thinkimg.agent.policies.scripted import ScriptedPolicy
    from thinkimg.agent.rollout import rollout
    from thinkimg.data.experts import expert
    from thinkimg.eval.metrics import relaxed_match

    by_id = {r.id: r for _, r, _ in questions}
    rows = [{"id": r.id, "image": chart.image, "question": r.question, "answer": r.answer,
             "question_type": r.question_type, "plan": plan} for chart, r, plan in questions]
    episodes = rollout(ScriptedPolicy(expert), rows, client=_tools_client(), max_rounds=max_rounds,
                       batch_size=max(1, len(rows)), tool_workers=1)
    for episode in episodes:
        record = by_id[episode.row["id"]]
        ok = episode.valid_format and episode.tool_failures == 0 and relaxed_match(episode.answer, record.answer)
        yield record, (episode.conversation if ok else None)


def _sft_record(record: QARecord, conversation, root: Path, folder: str) -> SFTRecord:
    files = {"img_0": record.image}
    for ref, image in conversation.images.items():
        if ref != "img_0":
            files[ref] = f"{folder}/{record.id}.{ref}.png"
            _save_png(image, root / files[ref])
    data = {"messages": conversation.messages, "images": files, "meta": conversation.meta}
    fields = record.model_dump(exclude={"image"})
    return SFTRecord(**fields, conversation=json.dumps(data, ensure_ascii=False), images=list(files.values()))


# ---------------------------------------------------------------------------------------------- the whole run


def data_hash(data_dir: str | Path) -> str:
    """sha256 over the files under ``data_dir`` (relative paths and contents, in sorted order)."""
    data_dir = Path(data_dir)
    digest = hashlib.sha256()
    if data_dir.is_dir():
        for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(data_dir)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _fingerprint(params: DataParams, data_sha: str) -> str:
    keep = params.model_dump(mode="json", exclude={"workers", "out"})
    return hashlib.sha256(json.dumps([keep, data_sha], sort_keys=True).encode()).hexdigest()[:16]


class _Progress:
    """Which chunks each split has, and whether it has reached its target."""

    def __init__(self, targets: dict[str, int]):
        self.targets = targets
        self.done: dict[str, dict[int, int]] = {s: {} for s in targets}
        self.next: dict[str, int] = {s: 0 for s in targets}

    def last_chunk(self, split: str) -> int | None:
        """The chunk at which ``split`` reaches its target (all chunks before it done), else None."""
        total, chunk = 0, 0
        if self.targets[split] == 0:
            return -1
        while chunk in self.done[split]:
            total += self.done[split][chunk]
            if total >= self.targets[split]:
                return chunk
            chunk += 1
        return None

    def wants_more(self, split: str, in_flight: int) -> bool:
        if self.last_chunk(split) is not None:
            return False
        done = self.done[split]
        per_chunk = max(1.0, sum(done.values()) / len(done)) if done else 1.0
        return sum(done.values()) + in_flight * per_chunk < self.targets[split]


def curate(params: DataParams, *, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Produce the dataset ``params`` describe (resuming an interrupted run); returns the dataset card."""
    start = time.perf_counter()
    root = params.out
    _Tables(params.data_dir, params.source_fraction)  # bad source tables fail here, not inside a worker process
    sha = data_hash(params.data_dir)
    fingerprint = _fingerprint(params, sha)
    parts = root / ".parts"
    card_path = root / "card.json"
    if card_path.is_file() and not force:
        card = json.loads(card_path.read_text())
        if card.get("fingerprint") == fingerprint:
            return card
    stamp = parts / "fingerprint"
    if root.exists() and (force or not stamp.is_file() or stamp.read_text() != fingerprint):
        saved = [p for p in root.iterdir() if p != parts] + list(parts.glob("*.json"))
        if not force and saved:
            raise CurateError(f"{root} holds a dataset made with other parameters or data; pass --force to replace "
                              "it, or choose another data.out")
        shutil.rmtree(root)
    parts.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)

    state = _Progress(params.targets())
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for file in parts.glob("*.json"):
        split, chunk = file.stem.rsplit("-", 1)
        results[(split, int(chunk))] = json.loads(file.read_text())
        state.done[split][int(chunk)] = len(results[(split, int(chunk))]["records"])
    resumed = len(results)

    bar = tqdm(total=sum(params.targets().values()), desc="curate", unit="record", disable=not progress,
               dynamic_ncols=True)
    bar.update(sum(min(sum(d.values()), state.targets[s]) for s, d in state.done.items()))

    def save(split: str, chunk: int, result: dict[str, Any]) -> None:
        tmp = parts / f"{split}-{chunk:05d}.json.tmp"
        tmp.write_text(json.dumps(result, ensure_ascii=False))
        os.replace(tmp, parts / f"{split}-{chunk:05d}.json")
        before = min(sum(state.done[split].values()), state.targets[split])
        results[(split, chunk)] = result
        state.done[split][chunk] = len(result["records"])
        bar.update(min(sum(state.done[split].values()), state.targets[split]) - before)

    params_json = params.model_dump_json()
    with bar:
        if params.workers == 1:
            _worker_init(params_json)
            for split in state.targets:
                while state.wants_more(split, 0):
                    chunk = _next_chunk(state, split)
                    save(split, chunk, run_chunk(split, chunk))
        else:
            _run_pool(params, params_json, state, save)

    return _finish(params, results, state, fingerprint, sha, start, resumed)


def _next_chunk(state: _Progress, split: str) -> int:
    while state.next[split] in state.done[split]:
        state.next[split] += 1
    chunk = state.next[split]
    state.next[split] += 1
    return chunk


def _run_pool(params: DataParams, params_json: str, state: _Progress, save) -> None:
    ctx = multiprocessing.get_context("spawn")
    in_flight: dict[Future, tuple[str, int]] = {}
    with ProcessPoolExecutor(params.workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(params_json,)) as pool:
        while True:
            for split in state.targets:  # sft first: its chunks are the slowest
                while len(in_flight) < params.workers + 1:
                    busy = sum(1 for s, _ in in_flight.values() if s == split)
                    if not state.wants_more(split, busy):
                        break
                    chunk = _next_chunk(state, split)
                    in_flight[pool.submit(run_chunk, split, chunk)] = (split, chunk)
            if not in_flight:
                return
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in finished:
                split, chunk = in_flight.pop(future)
                save(split, chunk, future.result())


def _finish(params: DataParams, results: dict, state: _Progress, fingerprint: str, sha: str, start: float,
            resumed: int) -> dict[str, Any]:
    root = params.out
    charts: list[dict[str, Any]] = []
    counts: dict[str, Any] = {}
    kept: dict[str, dict[str, int]] = defaultdict(lambda: {"attempted": 0, "kept": 0})
    used: set[str] = set()
    for split in state.targets:
        last = state.last_chunk(split)
        records = []
        for chunk in range(last + 1):
            result = results[(split, chunk)]
            used.add(f"{split}-{chunk:05d}")
            records.extend(result["records"])
            charts.extend(result["charts"])
            for qtype, (attempted, ok) in result["stats"].items():
                kept[qtype]["attempted"] += attempted
                kept[qtype]["kept"] += ok
        write_jsonl(root / f"{split}.jsonl", records)
        counts[split] = {
            "records": len(records),
            "charts": len({r["chart_id"] for r in records}),
            "question_types": dict(sorted(Counter(r["question_type"] for r in records).items())),
            "chart_kinds": dict(sorted(Counter(r["chart_kind"] for r in records).items())),
            "sources": dict(sorted(Counter(("synthetic" if r["source"].startswith("synthetic") else "source table")
                                           for r in records).items())),
        }
    for folder in (root / "images").iterdir() if (root / "images").is_dir() else []:
        if folder.name not in used:
            shutil.rmtree(folder)
    write_jsonl(root / "charts.jsonl", charts)
    card = {
        "fingerprint": fingerprint,
        "seed": params.seed,
        "params": params.model_dump(mode="json"),
        "data_sha256": sha,
        "counts": counts,
        "charts_by_kind": dict(sorted(Counter(c["kind"] for c in charts).items())),
        "sft_kept": {t: {**v, "rate": round(v["kept"] / v["attempted"], 4) if v["attempted"] else None}
                     for t, v in sorted(kept.items())},
        "question_types": {name: t.description for name, t in QUESTION_TYPES.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "resumed_chunks": resumed,
    }
    (root / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    (root / "README.md").write_text(dataset_card(card))
    shutil.rmtree(root / ".parts")
    return card


def dataset_card(card: dict[str, Any]) -> str:
    """The dataset card (README.md): a ``datasets`` config header, then what was produced and how."""
    lines = ["---", "configs:"]
    for split in ("sft", "rl", "eval"):
        lines += [f"- config_name: {split}", "  data_files:", "  - split: train", f"    path: {split}.jsonl"]
    lines += ["---", "", "# ThinkIMG chart dataset", "",
              "Charts rendered from tables with known answers; `sft` holds expert trajectories executed against the "
              "real tools and kept only when the final answer matched the gold one; `eval` is built from source "
              "tables and synthetic themes disjoint from those of `sft` and `rl`.", "",
              f"- seed: {card['seed']}",
              f"- data/ sha256: `{card['data_sha256']}`",
              f"- curated in {card['seconds']} s with {card['params']['workers']} worker(s)", "",
              "## Records", "", "| split | records | charts |", "|---|---|---|"]
    for split, c in card["counts"].items():
        lines.append(f"| {split} | {c['records']} | {c['charts']} |")
    lines += ["", "## Question types", "", "| type | " + " | ".join(card["counts"]) + " | sft kept rate | tools |",
              "|---|" + "---|" * (len(card["counts"]) + 2)]
    for qtype, description in card["question_types"].items():
        row = [str(card["counts"][s]["question_types"].get(qtype, 0)) for s in card["counts"]]
        k = card["sft_kept"].get(qtype)
        rate = f"{100 * k['rate']:.1f} % ({k['kept']}/{k['attempted']})" if k and k["rate"] is not None else "-"
        lines.append(f"| {qtype} | " + " | ".join(row) + f" | {rate} | {description} |")
    lines += ["", "## Chart kinds", "", "| kind | " + " | ".join(card["counts"]) + " |",
              "|---|" + "---|" * len(card["counts"])]
    kinds = sorted({k for c in card["counts"].values() for k in c["chart_kinds"]})
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(str(c["chart_kinds"].get(kind, 0)) for c in card["counts"].values())
                     + " |")
    lines += ["", "## Parameters", "", "```json", json.dumps(card["params"], indent=2), "```", ""]
    return "\n".join(lines)
