"""Answer metrics: ChartQA relaxed accuracy, exact match, and aggregation of per-episode records.

Pure functions, no I/O.

Numbers accepted by :func:`parse_number` (after :func:`normalize_answer`-style cleaning, case kept):

- an optional sign (``-``, ``+`` or the Unicode minus ``−``), before or after a currency symbol;
- an optional currency symbol ``$ € £ ¥ ₹``;
- digits with an optional decimal part (``12``, ``12.5``, ``.5``); thousands separators only in valid groups of three
  (``1,234,567.8``; ``1,2`` is not a number, it reads as a list);
- an optional percent sign (``45%``, ``45.0 %``): the value is the written number (``45%`` parses as 45.0);
- an optional scale: ``k``/``K``/``thousand``, ``M``/``mn``/``million``, ``B``/``bn``/``billion``, ``tn``/``trillion``
  (``1.2k`` → 1200, ``12.5 million`` → 12 500 000). A lone lowercase ``m`` is refused (metres, minutes).

Everything else is not a number: number words (``"five"``), ranges, several numbers, units other than the above.

Relaxed match reads both sides with their markers. When exactly one side carries a ``%`` the other reading is also
tried (``45%`` matches ``45`` and ``0.45``): ChartQA's gold answers write percentages as bare numbers, while the
reference implementation (Pix2Struct's ``relaxed_correctness``) divides ``%`` values by 100, so accepting either
reading makes the metric agree with both. Likewise, when exactly one side carries a scale (``3 million`` vs ``3``),
both the scaled and the bare value are tried, since chart gold answers usually drop the axis unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "METRICS",
    "aggregate",
    "exact_match",
    "get_metric",
    "normalize_answer",
    "parse_number",
    "relaxed_match",
]

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_LOOSE_TAG = re.compile(r"</?answer>", re.IGNORECASE)
#: En and em dashes and the minus sign read as a hyphen ("1974–1980" == "1974-1980"; OCR and keyboards write "-").
_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-"})
_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019", "\u00ab": "\u00bb"}

_SCALES: dict[str, float] = {
    "k": 1e3, "K": 1e3, "thousand": 1e3,
    "M": 1e6, "mn": 1e6, "million": 1e6,
    "B": 1e9, "bn": 1e9, "billion": 1e9,
    "tn": 1e12, "trillion": 1e12,
}  # fmt: skip
_NUMBER = re.compile(
    r"""^
    (?P<sign1>[-+\u2212])?\s*
    (?P<cur>[$\u20ac\u00a3\u00a5\u20b9])?\s*
    (?P<sign2>[-+\u2212])?\s*
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)
    \s*(?P<pct>%)?
    \s*(?P<scale>[A-Za-z]+)?
    $""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Number:
    """A parsed answer: the written value, its scale multiplier, and whether it carried a percent sign."""

    value: float
    scale: float
    percent: bool

    @property
    def scaled(self) -> float:
        return self.value * self.scale


def _clean(text: str | None) -> str:
    """Answer text without tags, outer whitespace, trailing periods or surrounding quotes; case kept."""
    if text is None:
        return ""
    text = str(text)
    tagged = _ANSWER_TAG.findall(text)
    if tagged:
        text = tagged[-1]
    text = _LOOSE_TAG.sub(" ", text).translate(_DASHES)
    text = " ".join(text.split())
    while True:
        before = text
        text = text.strip()
        text = text.rstrip(".").rstrip()
        if len(text) >= 2 and _QUOTE_PAIRS.get(text[0]) == text[-1]:
            text = text[1:-1]
        if text == before:
            return text


def normalize_answer(text: str | None) -> str:
    """Answer text for comparison: inner text of the last ``<answer>`` tag, whitespace collapsed, dashes unified
    to ``-``, trailing period and surrounding quotes removed, case-folded. ``None`` gives ``""``."""
    return _clean(text).casefold()


def _parse(text: str | None) -> _Number | None:
    match = _NUMBER.match(_clean(text))
    if match is None or (match["sign1"] and match["sign2"]):
        return None
    scale_word = match["scale"]
    if scale_word is not None and scale_word not in _SCALES:
        return None
    value = float(match["num"].replace(",", ""))
    if (match["sign1"] or match["sign2"] or "+") in "-\u2212":
        value = -value
    return _Number(value, _SCALES[scale_word] if scale_word else 1.0, match["pct"] is not None)


def parse_number(text: str | None) -> float | None:
    """The single number an answer states (currency, ``%``, separators stripped; scale words applied), else None.

    ``"1,234.5"`` → 1234.5, ``"45%"`` → 45.0, ``"-$12"`` → -12.0, ``"1.2k"`` → 1200.0, ``"five"`` → None.
    See the module docstring for the exact grammar.
    """
    number = _parse(text)
    return None if number is None else number.scaled


def _readings(number: _Number, other: _Number) -> set[float]:
    """Values ``number`` may mean, given the markers the other side carries."""
    values = {number.scaled}
    if number.percent and not other.percent:
        values.add(number.scaled / 100.0)
    if number.scale != 1.0 and other.scale == 1.0:
        values |= {v / number.scale for v in values}
    return values


def _close(pred: float, gold: float, tolerance: float) -> bool:
    if gold == 0:
        return abs(pred) <= 1e-9
    return abs(pred - gold) <= tolerance * abs(gold) * (1 + 1e-9)


def exact_match(prediction: str | None, gold: str | None) -> bool:
    """Case-insensitive equality after :func:`normalize_answer`; an empty prediction never matches."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    return bool(pred) and pred == ref


def relaxed_match(prediction: str | None, gold: str | None, tolerance: float = 0.05) -> bool:
    """ChartQA relaxed accuracy: numbers within ``tolerance`` relative error of gold, anything else exact match.

    Gold 0 needs |prediction| <= 1e-9. Percent and scale readings: see the module docstring. Lists (``"A, B"``),
    words and number words (``"five"`` vs ``"5"`` is False) fall back to :func:`exact_match`.
    """
    pred, ref = _parse(prediction), _parse(gold)
    if pred is not None and ref is not None:
        return any(
            _close(p, g, tolerance) for p in _readings(pred, ref) for g in _readings(ref, pred)
        )
    return exact_match(prediction, gold)


METRICS: dict[str, Callable[[str, str], bool]] = {
    "relaxed_accuracy": relaxed_match,
    "exact_match": exact_match,
}


def get_metric(name: str) -> Callable[[str, str], bool]:
    """The registered metric ``name``; KeyError naming the known metrics otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known metrics: {', '.join(sorted(METRICS))}") from None


def answer_seen(gold: str | None, texts: Iterable[str]) -> bool:
    """Whether ``gold`` stands whole in one of ``texts`` (tool replies), compared as :func:`normalize_answer` compares
    answers: not inside a longer word or number (``"27"`` is not seen in ``"127"`` nor ``"27.5"``). A wrong answer
    whose gold was seen is a failure of reading the reply (copying, choosing), not of the tools finding it."""
    ref = normalize_answer(gold)
    if not ref:
        return False
    pattern = re.compile(rf"(?<![\w.]){re.escape(ref)}(?![\w]|\.\d)")
    return any(pattern.search(normalize_answer(text)) for text in texts)


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise per-episode records into run metrics.

    Each record: ``correct`` (bool), optional ``question_type`` (str), ``valid_format`` (bool), ``tool_calls`` (int),
    ``tool_failures`` (int), ``format_errors`` (int), ``answered`` (bool), ``answer_seen`` (bool, :func:`answer_seen`
    over the tool replies); missing counters read as 0/False. Records without a ``question_type`` count in the totals
    but not in ``by_type``. An empty list gives ``n == 0`` and None metrics. ``missed_seen_rate``: the share of
    episodes answered wrong although a tool reply held the gold answer whole.
    """
    n = len(records)
    by_type: dict[str, list[bool]] = {}
    for record in records:
        kind = record.get("question_type")
        if kind is not None:
            by_type.setdefault(str(kind), []).append(bool(record["correct"]))
    calls = sum(int(r.get("tool_calls", 0) or 0) for r in records)
    failures = sum(int(r.get("tool_failures", 0) or 0) for r in records)
    attempted = calls + sum(int(r.get("format_errors", 0) or 0) for r in records)
    return {
        "n": n,
        "accuracy": _mean(bool(r["correct"]) for r in records),
        "by_type": {k: {"n": len(v), "accuracy": _mean(v)} for k, v in sorted(by_type.items())},
        "valid_format_rate": _mean(bool(r.get("valid_format", False)) for r in records),
        "calls_per_episode": calls / n if n else None,
        "tool_failure_rate": (failures / calls if calls else 0.0) if n else None,
        # calls that parsed and ran, over every attempted call (successful, refused and malformed turns)
        "valid_call_rate": (calls - failures) / attempted if attempted else None,
        "answer_rate": _mean(bool(r.get("answered", False)) for r in records),
        "missed_seen_rate": _mean(bool(r.get("answer_seen", False)) and not r["correct"] for r in records),
    }
