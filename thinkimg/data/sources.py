"""Real source tables under ``data/``: a validated manifest, the CSVs, and chart-sized views of them.

``data/sources.yaml`` (written by ``scripts/export_source_tables.py``) describes each CSV under ``data/sources/``:
its origin and licence, the split it belongs to, and its columns. A source is a long table with up to three
dimension columns and one or more numeric measure columns:

* ``entity``: what a snapshot compares (countries, sectors, age bands);
* ``time``: what a trend runs over (years, months), in the file's row order;
* ``group``: picks the subset shown together (a region, a location); one group value per chart.

:func:`sample_table` draws a small :class:`~thinkimg.data.tables.Table` from one source: a snapshot (categories
= entities at one time) or a trend (categories = consecutive times), with a title from the manifest's template,
values scaled into a display unit and rounded for a chart. Errors name the file and the field, or the CSV line.
"""

from __future__ import annotations

import math
import random
import string
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, PositiveInt, model_validator

from thinkimg.config import ConfigError, StrictModel, load_yaml
from thinkimg.data.tables import Table

MANIFEST = "sources.yaml"
#: Longest category or series label a chart shows; longer entities are skipped.
MAX_LABEL = 24
#: Random draws :func:`sample_table` tries before it gives up on a request.
MAX_TRIES = 200
#: Display scales for large counts and money, largest first: (threshold, factor, word).
SCALES = ((1e9, 1e9, "billion"), (1e6, 1e6, "million"), (1e4, 1e3, "thousand"))
#: Title placeholders each view may use (``group``/``time``/``subject`` only where the source has that column).
PLACEHOLDERS = {"by_entity": {"measure", "group", "time"}, "by_time": {"measure", "group", "subject", "span"}}

View = Literal["by_entity", "by_time"]


class SourceError(ConfigError):
    """A source manifest or CSV is invalid, or a source cannot give the table asked for."""


class Origin(StrictModel):
    """Where a table came from: the pip package, its dataset, the licence and the credit it asks for."""

    package: str
    version: str
    dataset: str
    licence: str
    credit: str
    #: What the export changed (subset, aggregation, unit conversion, shortened labels).
    notes: str = ""


class Dimension(StrictModel):
    """A dimension column and its display name (the chart's category axis name)."""

    column: str
    name: str


class Entity(Dimension):
    """The compared things; ``ordered`` when they have a natural order (age bands)."""

    ordered: bool = False


class Time(Dimension):
    """The time column, in the file's row order; ``strides`` are the steps a trend may take through it."""

    strides: tuple[PositiveInt, ...] = (1,)


class Measure(StrictModel):
    """A numeric column: its series label, its phrase in titles and its unit.

    ``scale`` shows large values in thousand / million / billion ``unit``. Measures with the same ``family``
    (and unit) can share a chart; the family then names them in the title. ``decimals`` fixes the rounding;
    without it values keep about three significant figures.
    """

    column: str
    name: str
    title: str = ""
    unit: str = ""
    scale: bool = False
    decimals: int | None = Field(None, ge=0, le=3)
    family: str | None = None

    @property
    def phrase(self) -> str:
        return self.title or self.name


class Titles(StrictModel):
    """Title templates; a view is available when its template is set.

    ``by_entity``: {measure}, {group}, {time}; ``by_time``: {measure}, {group}, {subject}, {span}.
    """

    by_entity: str | None = None
    by_time: str | None = None


class SourceSpec(StrictModel):
    """One source table in the manifest."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    file: str
    split_group: Literal["train", "eval"]
    origin: Origin
    entity: Entity | None = None
    time: Time | None = None
    group: str | None = None
    measures: list[Measure] = Field(min_length=1)
    titles: Titles

    @model_validator(mode="after")
    def _consistent(self) -> SourceSpec:
        columns = [m.column for m in self.measures] + [d.column for d in (self.entity, self.time) if d]
        columns += [self.group] if self.group else []
        if len(set(columns)) != len(columns):
            raise ValueError(f"a column is named twice: {columns}")
        if self.titles.by_entity is None and self.titles.by_time is None:
            raise ValueError("titles: set by_entity, by_time or both")
        if self.titles.by_entity is not None and self.entity is None:
            raise ValueError("titles.by_entity needs an entity column")
        if self.titles.by_time is not None and self.time is None:
            raise ValueError("titles.by_time needs a time column")
        absent = {"group"} if self.group is None else set()
        absent |= {"time"} if self.time is None else set()
        absent |= {"subject"} if self.entity is None else set()
        for view in ("by_entity", "by_time"):
            template = getattr(self.titles, view)
            if template is None:
                continue
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            unknown = fields - (PLACEHOLDERS[view] - absent)
            if unknown:
                raise ValueError(f"titles.{view}: placeholder(s) {sorted(unknown)} not available here")
        for family, members in self.families().items():
            if len({(m.unit, m.scale, m.decimals) for m in members}) > 1:
                raise ValueError(f"measures of family {family!r} differ in unit, scale or decimals")
        return self

    def families(self) -> dict[str, list[Measure]]:
        """family -> its measures, in manifest order."""
        out: dict[str, list[Measure]] = {}
        for m in self.measures:
            if m.family:
                out.setdefault(m.family, []).append(m)
        return out

    @property
    def dimensions(self) -> list[str]:
        return [d.column for d in (self.entity, self.time) if d] + ([self.group] if self.group else [])


class Manifest(StrictModel):
    """``data/sources.yaml``."""

    sources: list[SourceSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Manifest:
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise ValueError(f"source names repeat: {names}")
        return self


@dataclass(frozen=True, eq=False)
class Source:
    """A loaded source: its manifest entry and its rows (dimension columns as strings, measures as floats)."""

    spec: SourceSpec
    frame: pd.DataFrame

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def split_group(self) -> str:
        return self.spec.split_group

    @property
    def label(self) -> str:
        """``<package>:<dataset>``, the :attr:`Table.source` of its tables."""
        return f"{self.spec.origin.package}:{self.spec.origin.dataset}"

    @cached_property
    def times(self) -> list[str]:
        """The time values in file order (none without a time column)."""
        return _in_order(self.frame[self.spec.time.column]) if self.spec.time else []

    @cached_property
    def entities(self) -> dict[str, list[str]]:
        """group value ("" without a group column) -> its entities with short labels, in file order."""
        groups = self.frame.groupby(self.spec.group, sort=False) if self.spec.group else [("", self.frame)]
        if self.spec.entity is None:
            return {g: [] for g, _ in groups}
        return {g: _short(_in_order(rows[self.spec.entity.column])) for g, rows in groups}

    def options(self, *, n_categories: int, n_series: int = 1, ordered: bool | None = None) -> list[tuple[View, str]]:
        """The (view, series mode) pairs that may give such a table (missing values are met when sampling).

        Views: ``by_entity`` (categories = entities) and ``by_time`` (categories = times). Series modes:
        ``measure`` (one series), ``family`` (measures of one family), ``across`` (several times in
        ``by_entity``, several entities in ``by_time``).
        """
        spec = self.spec
        most = max(len(e) for e in self.entities.values())
        steps = (len(self.times) - 1) // min(spec.time.strides) + 1 if spec.time else 0
        out: list[tuple[View, str]] = []
        for view, template, view_ordered, size, across in (
                ("by_entity", spec.titles.by_entity, spec.entity and spec.entity.ordered, most, len(self.times)),
                ("by_time", spec.titles.by_time, True, steps, most)):
            if template is None or ordered not in (None, view_ordered) or n_categories > size:
                continue
            if n_series == 1:
                out.append((view, "measure"))
                continue
            if any(len(ms) >= n_series for ms in spec.families().values()):
                out.append((view, "family"))
            if across >= n_series:
                out.append((view, "across"))
        return out

    def supports(self, *, n_categories: int, n_series: int = 1, ordered: bool | None = None) -> bool:
        """Whether :func:`sample_table` may give such a table from this source."""
        return bool(self.options(n_categories=n_categories, n_series=n_series, ordered=ordered))


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest; errors name the file and the field."""
    try:
        return load_yaml(path, Manifest)
    except ConfigError as exc:
        raise SourceError(str(exc)) from None


def load_csv(spec: SourceSpec, path: str | Path) -> pd.DataFrame:
    """Read one source CSV; a missing column, an empty key, a non-number or a repeated key names the line."""
    path = Path(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SourceError(f"{path}: cannot read CSV ({exc})") from None
    needed = spec.dimensions + [m.column for m in spec.measures]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise SourceError(f"{path}: missing column(s) {missing} named in the manifest (source {spec.name!r})")
    frame = raw[needed].copy()
    for col in spec.dimensions:
        empty = frame.index[frame[col].str.strip() == ""]
        if len(empty):
            raise SourceError(f"{path}:{empty[0] + 2}: column {col!r} is empty")
    for m in spec.measures:
        text = frame[m.column].str.strip()
        values = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = frame.index[(text != "") & ~np.isfinite(values)]
        if len(bad):
            raise SourceError(f"{path}:{bad[0] + 2}: column {m.column!r}: {text[bad[0]]!r} is not a finite number")
        frame[m.column] = values.astype(float)
    keys = spec.dimensions
    dup = frame.index[frame.duplicated(keys)]
    if len(dup):
        raise SourceError(f"{path}:{dup[0] + 2}: repeats the key {frame.loc[dup[0], keys].tolist()} of {keys}")
    return frame


def load_sources(data_dir: str | Path = "data", split: str | None = None) -> list[Source]:
    """Every source of ``<data_dir>/sources.yaml`` (only those of ``split`` when given), CSVs loaded."""
    data_dir = Path(data_dir)
    manifest = load_manifest(data_dir / MANIFEST)
    if split is not None and split not in ("train", "eval"):
        raise SourceError(f"split must be 'train' or 'eval', not {split!r}")
    return [Source(spec, load_csv(spec, data_dir / spec.file)) for spec in manifest.sources
            if split is None or spec.split_group == split]


def sample_table(source: Source, rng: random.Random, *, n_categories: int, n_series: int = 1,
                 ordered: bool | None = None) -> Table:
    """A chart-sized view of ``source``: ``n_categories`` categories x ``n_series`` series, drawn with ``rng``.

    ``ordered`` True asks for ordered categories (a trend over time, or ordered entities such as age bands),
    False for unordered ones, None for either. Raises :class:`SourceError` when the source cannot give it.
    """
    if n_categories < 1 or n_series < 1:
        raise SourceError(f"{source.name}: n_categories and n_series must be >= 1")
    options = source.options(n_categories=n_categories, n_series=n_series, ordered=ordered)
    for _ in range(MAX_TRIES if options else 0):
        view, mode = rng.choice(options)
        draw = _draw_by_entity if view == "by_entity" else _draw_by_time
        table = draw(source, rng, n_categories, n_series, mode)
        if table is not None:
            return table
    raise SourceError(f"{source.name}: cannot draw {n_categories} categories x {n_series} series "
                      f"(ordered={ordered}) from this source")


def _in_order(values: pd.Series) -> list[str]:
    """Distinct values in file order."""
    return list(dict.fromkeys(values))


def _short(labels: list[str]) -> list[str]:
    return [x for x in labels if len(x) <= MAX_LABEL]


def _pick(rng: random.Random, pool: list[str], k: int, *, window: bool = False) -> list[str]:
    """``k`` values of ``pool`` in pool order: a random subset, or a run of consecutive ones (``window``)."""
    if window:
        start = rng.randrange(len(pool) - k + 1)
        return pool[start:start + k]
    return [pool[i] for i in sorted(rng.sample(range(len(pool)), k))]


def _pick_measures(spec: SourceSpec, rng: random.Random, n_series: int, mode: str) -> list[Measure]:
    if mode != "family":
        return [rng.choice(spec.measures)]
    family = rng.choice([ms for ms in spec.families().values() if len(ms) >= n_series])
    return sorted(rng.sample(family, n_series), key=family.index)


def _pick_group(source: Source, rng: random.Random, need: int) -> tuple[str, pd.DataFrame, dict[str, str]]:
    """A random group value (with at least ``need`` entities where there is an entity column) and its rows."""
    spec = source.spec
    groups = [g for g, es in source.entities.items() if spec.entity is None or len(es) >= need]
    group = rng.choice(groups)
    if not spec.group:
        return group, source.frame, {}
    return group, source.frame[source.frame[spec.group] == group], {spec.group: group}


def _draw_by_entity(source: Source, rng: random.Random, n_categories: int, n_series: int,
                    mode: str) -> Table | None:
    """Categories = entities of one group at one time; series = measures or (mode "across") times."""
    spec = source.spec
    measures = _pick_measures(spec, rng, n_series, mode)
    group, frame, where = _pick_group(source, rng, n_categories)
    times = _pick(rng, source.times, n_series if mode == "across" else 1) if spec.time else []
    if spec.time:
        frame = frame[frame[spec.time.column].isin(times)]
    if mode == "across":
        wide = frame.pivot(index=spec.entity.column, columns=spec.time.column, values=measures[0].column)
        columns = {t: (spec.time.column, t) for t in times}
    else:
        where.update({spec.time.column: times[0]} if spec.time else {})
        wide = frame.set_index(spec.entity.column)[[m.column for m in measures]]
        columns = {m.name: ("measure", m.column) for m in measures}
    wide = wide.reindex(columns=[key for _, key in columns.values()]).dropna()
    pool = source.entities[group]
    if not spec.entity.ordered:  # ordered entities (age bands) come as a run, missing values or not
        pool = [e for e in pool if e in wide.index]
        if len(pool) < n_categories:
            return None
    chosen = _pick(rng, pool, n_categories, window=spec.entity.ordered)
    if not set(chosen) <= set(wide.index):
        return None
    context = {"measure": _measure_phrase(measures), "group": group, "time": _join(times)}
    return _table(source, spec.titles.by_entity.format(**context), spec.entity.name, spec.entity.ordered,
                  chosen, wide, columns, measures, where, spec.entity.column)


def _draw_by_time(source: Source, rng: random.Random, n_categories: int, n_series: int,
                  mode: str) -> Table | None:
    """Categories = times at one stride; series = measures of one entity or (mode "across") entities."""
    spec = source.spec
    measures = _pick_measures(spec, rng, n_series, mode)
    group, frame, where = _pick_group(source, rng, n_series if mode == "across" else 1)
    entities = _pick(rng, source.entities[group], n_series if mode == "across" else 1) if spec.entity else []
    if spec.entity:
        frame = frame[frame[spec.entity.column].isin(entities)]
    if mode == "across":
        wide = frame.pivot(index=spec.time.column, columns=spec.entity.column, values=measures[0].column)
        columns = {e: (spec.entity.column, e) for e in entities}
    else:
        where.update({spec.entity.column: entities[0]} if spec.entity else {})
        wide = frame.set_index(spec.time.column)[[m.column for m in measures]]
        columns = {m.name: ("measure", m.column) for m in measures}
    wide = wide.reindex(columns=[key for _, key in columns.values()]).dropna()
    stride = rng.choice([s for s in spec.time.strides if (n_categories - 1) * s < len(source.times)])
    start = rng.randrange(len(source.times) - (n_categories - 1) * stride)
    chosen = source.times[start::stride][:n_categories]
    if not set(chosen) <= set(wide.index):
        return None
    context = {"measure": _measure_phrase(measures), "group": group, "subject": _join(entities),
               "span": f"{chosen[0]}–{chosen[-1]}"}
    return _table(source, spec.titles.by_time.format(**context), spec.time.name, True, chosen, wide,
                  columns, measures, where, spec.time.column)


def _measure_phrase(measures: list[Measure]) -> str:
    return measures[0].phrase if len(measures) == 1 else measures[0].family


def _join(labels: list[str]) -> str:
    """"a", "a and b", "a, b and c" ("" for none)."""
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _table(source: Source, title: str, category_name: str, ordered: bool, categories: list[str],
           wide: pd.DataFrame, columns: dict[str, tuple[str, str]], measures: list[Measure],
           where: dict[str, str], category_column: str) -> Table:
    """Scale and round the rows ``categories`` of ``wide``; ``columns``: series name -> (origin column, key)."""
    measure = measures[0]
    raw = {name: [float(wide.at[c, key]) for c in categories] for name, (_, key) in columns.items()}
    biggest = max(abs(v) for vs in raw.values() for v in vs)
    factor, unit = 1.0, measure.unit
    if measure.scale:
        for threshold, f, word in SCALES:
            if biggest >= threshold:
                factor, unit = f, f"{word} {measure.unit}".strip()
                break
    decimals = measure.decimals if measure.decimals is not None else _decimals(biggest / factor)
    series = {name: [_round(v / factor, decimals) for v in vs] for name, vs in raw.items()}
    meta = {"decimals": decimals, "scale": factor, "category_column": category_column,
            "series": {name: list(origin) for name, origin in columns.items()}, "where": where,
            "measure": measure.column if len(measures) == 1 else None}
    return Table(title=title, categories=list(categories), series=series, unit=unit, category_name=category_name,
                 ordered=ordered, source=source.label, split_group=source.split_group, meta=meta)


def _decimals(biggest: float) -> int:
    """Decimals that give the largest value three significant figures (0 to 3)."""
    if biggest <= 0:
        return 0
    return min(3, max(0, 2 - math.floor(math.log10(biggest))))


def _round(value: float, decimals: int) -> float:
    return round(value, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
