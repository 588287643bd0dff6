"""The table a chart shows: categories x series, with a title, a unit and where the numbers came from.

Every chart the data engine draws is a view of one :class:`Table`; every answer is computed from it. Tables come
from the source tables under ``data/`` (:mod:`thinkimg.data.sources`) or from the seeded synthetic generator
(:mod:`thinkimg.data.synthetic`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


class TableError(ValueError):
    """A table is malformed (the message says which field)."""


@dataclass
class Table:
    """Rows are categories (x labels, wedge labels, line x positions); columns are series (one per colour).

    ``series`` maps a series name to its values, aligned with ``categories``. A single-series table has one
    entry (its name is the value's name, e.g. "Revenue"). ``ordered`` says the categories have a natural order
    (years, months): trend questions and line charts need it. ``source`` names the origin
    (``"synthetic:<theme>"`` or ``"<package>:<dataset>"``); ``split_group`` decides train/eval disjointness.
    """

    title: str
    categories: list[str]
    series: dict[str, list[float]]
    unit: str = ""
    category_name: str = ""
    ordered: bool = False
    source: str = ""
    split_group: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.categories:
            raise TableError(f"table {self.title!r}: no categories")
        if len(set(self.categories)) != len(self.categories):
            raise TableError(f"table {self.title!r}: categories repeat: {self.categories}")
        if not self.series:
            raise TableError(f"table {self.title!r}: no series")
        for name, values in self.series.items():
            if len(values) != len(self.categories):
                raise TableError(f"table {self.title!r}: series {name!r} has {len(values)} values for "
                                 f"{len(self.categories)} categories")
            if any(not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) for v in values):
                raise TableError(f"table {self.title!r}: series {name!r} holds a non-finite or non-number value")

    @property
    def series_names(self) -> list[str]:
        return list(self.series)

    @property
    def single(self) -> bool:
        """One series only."""
        return len(self.series) == 1

    def column(self, series: str | None = None) -> dict[str, float]:
        """category -> value for one series (the first when ``series`` is None)."""
        name = series if series is not None else self.series_names[0]
        return dict(zip(self.categories, self.series[name]))

    def value(self, category: str, series: str | None = None) -> float:
        return self.column(series)[category]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Table:
        return cls(**data)
