"""OCR and Point: the chart's text with pixel boxes, and the pixel point of a described element.

Point matches the description against the OCR lines (exact, then containment, then fuzzy) and answers with the
centre of the matched text. "The bar for X" walks from the label X into the plot (up from an x tick label, right
from a y tick label) to the first bar-like region and answers with that bar's centre. "The value label of X" finds
that bar, then the text printed at one of its ends, in line with it (what ``bar_label`` and most chart tools
print). "The point of S at X" walks up from the category label X (its tick) to the first pixels of series S's
colour, read off S's legend handle ("the point at X": the line drawn with the most ink), and answers with the
middle of that mark: where the line tools read the value off the axis. "The bar of S for X" (grouped or stacked
bars) is the block of S's colour at X's tick, "the value label of S for X" the number printed at it (over its end,
or inside a stacked segment), "the top of the stack for X" the top of all the segments standing over X. Where a
chart prints no value, "the value label of [S for] X" says so and gives the bar's ends or the line's point instead,
the pixel a line tool reads the value at. "The value labels of "A" and "B"" lists those values in one reply
(``Point: 2 value labels: 252, 430 (for "A", "B")``: the numbers side by side, as a calculation takes them), "the
value labels" every bar's in order. "The chart title" is the whole title, its lines joined, when it is set over
several lines.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from pydantic import Field, field_validator

from thinkimg.tools.base import Tool, ToolArgs, ToolError, ToolResult
from thinkimg.tools.boxes import overlap_1d
from thinkimg.tools.ocr.base import TextLine
from thinkimg.tools.regions import upscale_region
from thinkimg.tools.registry import register_tool
from thinkimg.tools.segment import Region, as_rgb_array, background_color, region_around

Box = tuple[int, int, int, int]

#: Longest description Point accepts.
MAX_DESCRIPTION = 200
#: Lowest fuzzy similarity (difflib ratio) that still counts as a match.
FUZZY_MIN = 0.75


# --------------------------------------------------------------------------------------------------------------
# OCR


@register_tool
class OCR(Tool):
    name = "OCR"
    description = (
        "Read the text of the image: one line per text line in reading order, each with its pixel box "
        "[x1, y1, x2, y2] (tick labels, values, titles, legend entries)."
    )
    Args = ToolArgs

    def run(self, image: Image.Image, args: ToolArgs) -> ToolResult:
        lines = self.context.ocr(image)
        text = "\n".join(format_line(ln) for ln in lines) if lines else f"No text found in {args.image}."
        return ToolResult(
            text=text,
            data={"lines": [ln.to_dict() for ln in lines], "width": image.width, "height": image.height},
        )


def format_line(line: TextLine) -> str:
    """``"Apples" [118, 451, 166, 465]``: the text as a JSON string, then its pixel box."""
    x0, y0, x1, y1 = line.box
    return f"{json.dumps(line.text, ensure_ascii=False)} [{x0}, {y0}, {x1}, {y1}]"


_OCR_LINE = re.compile(r'^(".*") \[(-?\d+), (-?\d+), (-?\d+), (-?\d+)\]$')


def parse_ocr_text(text: str) -> list[TextLine]:
    """The inverse of the OCR tool's text: one :class:`TextLine` per ``"text" [x0, y0, x1, y1]`` line (other lines,
    e.g. "No text found", are skipped; confidence is not in the text and reads as 1.0)."""
    lines = []
    for raw in text.splitlines():
        m = _OCR_LINE.match(raw.strip())
        if m:
            try:
                value = json.loads(m.group(1))
            except json.JSONDecodeError:
                continue
            lines.append(TextLine(str(value), tuple(int(g) for g in m.groups()[1:]), 1.0))
    return lines


# --------------------------------------------------------------------------------------------------------------
# Text normalisation and matching

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2212": "-", "\u2013": "-"})
#: Words that describe *what kind* of element is meant, not its text; stripped from both ends of a description.
_FILLER = re.compile(
    r"^(?:the|a|an|this|that|of|for|named|called|labeled|labelled|saying|reading|with|text|word|words|label|labels|"
    r"tick|ticks|legend|entry|entries|item|key|axis|x|y|horizontal|vertical|category|categories|data|value|values|"
    r"number|title|chart|plot|graph|figure|heading|header|caption|in|on|at|point|to|element|marker)$"
)


def normalize(text: str) -> str:
    """Lowercase, unify quotes and dashes, drop apostrophes, thousands separators, currency and percent signs and
    punctuation (a dot stays inside numbers), collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 32,308 -> 32308
    text = text.replace("'", "")  # Don't -> dont, Iran's -> irans
    text = re.sub(r"-(?!\d)|(?<=\w)-", " ", text)  # a hyphen separates words ("y-axis", "Dial-up"); "-5" stays
    text = re.sub(r"[^\w.\-]+", " ", text).replace("_", " ")
    tokens = []
    for tok in text.split():
        tok = tok.strip(".")
        if tok and tok != "-":
            tokens.append(tok)
    return " ".join(tokens)


def strip_filler(norm: str) -> str:
    """Drop element-kind words ("the", "tick label", "legend entry", "x-axis title", ...) from both ends."""
    tokens = norm.split()
    while tokens and _FILLER.match(tokens[0]):
        tokens.pop(0)
    while tokens and _FILLER.match(tokens[-1]):
        tokens.pop()
    return " ".join(tokens)


def _is_number(token: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(?:\.\d+)?", token))


def _sub_index(needle: list[str], hay: list[str]) -> int:
    """Start of ``needle`` as a contiguous token run in ``hay``, or -1."""
    n = len(needle)
    for i in range(len(hay) - n + 1):
        if hay[i : i + n] == needle:
            return i
    return -1


@dataclass
class Match:
    """An OCR line matched to a description: its score and the (sub-)box of the matched text."""

    line: TextLine
    score: float
    box: Box

    @property
    def label(self) -> TextLine:
        """The matched text as a line of its own: the line, or the part of it the match covers."""
        return self.line if self.box == self.line.box else TextLine(self.line.text, self.box, self.line.confidence)


def _sub_box(line: TextLine, norm_line: str, start_tok: int, n_tok: int) -> Box:
    """The part of a horizontal line's box holding tokens ``start_tok .. start_tok + n_tok`` (by character share)."""
    x0, y0, x1, y1 = line.box
    tokens = norm_line.split()
    if n_tok == len(tokens) or (x1 - x0) < (y1 - y0):
        return line.box
    before = len(" ".join(tokens[:start_tok])) + (1 if start_tok else 0)
    span = len(" ".join(tokens[start_tok : start_tok + n_tok]))
    total = max(1, len(norm_line))
    sx0 = x0 + int(round((x1 - x0) * before / total))
    sx1 = x0 + int(round((x1 - x0) * (before + span) / total))
    return sx0, y0, max(sx0 + 1, sx1), y1


def score_line(target: str, line: TextLine, norm_line: str, *, loose: bool = True) -> tuple[float, Box]:
    """How well ``line`` matches the normalised ``target``: 1 exact, ~0.9 the target inside the line, and when
    ``loose``: ~0.75 the line inside the target, ``0.7 * ratio`` fuzzy (only when both hold the same numbers);
    else 0. Returns the score and the box of the matched text."""
    if not target or not norm_line:
        return 0.0, line.box
    if target == norm_line:
        return 1.0, line.box
    t_tok, l_tok = target.split(), norm_line.split()
    i = _sub_index(t_tok, l_tok)
    if i >= 0:
        return 0.85 + 0.1 * len(target) / len(norm_line), _sub_box(line, norm_line, i, len(t_tok))
    if not loose:
        return 0.0, line.box
    if len(norm_line) >= 3 and _sub_index(l_tok, t_tok) >= 0 and not all(_is_number(t) for t in l_tok):
        return 0.7 + 0.1 * len(norm_line) / len(target), line.box
    # Fuzzy matching never applies to numbers: "41" must not match "40", nor "2019 sales" match "2018 sales".
    t_num = [t for t in t_tok if _is_number(t)]
    if len(t_num) == len(t_tok) or t_num != [t for t in l_tok if _is_number(t)]:
        return 0.0, line.box
    ratio = difflib.SequenceMatcher(None, _as_letters(target), _as_letters(norm_line), autojunk=False).ratio()
    return (0.7 * ratio, line.box) if ratio >= FUZZY_MIN else (0.0, line.box)


#: Digits OCR reads in place of the letters they look like, inside words ("0ct", "Apri1").
_LOOKALIKES = str.maketrans("01", "ol")


def _as_letters(norm: str) -> str:
    """``norm`` with the look-alike digits of its words (tokens holding a letter) read as letters; numbers stay."""
    return " ".join(t.translate(_LOOKALIKES) if re.search(r"[a-z]", t) else t for t in norm.split())


def best_matches(targets: list[str], lines: list[TextLine], loose: int = 1) -> list[Match]:
    """All lines that share the best score over ``targets`` (several equally good matches are all returned);
    only the first ``loose`` targets may match loosely (partly or fuzzily), the others must be found whole."""
    scored: list[Match] = []
    for line in lines:
        norm_line = normalize(line.text)
        best = (0.0, line.box)
        for k, target in enumerate(targets):
            s = score_line(target, line, norm_line, loose=k < loose)
            if s[0] > best[0]:
                best = s
        if best[0] > 0:
            scored.append(Match(line, best[0], best[1]))
    if not scored:
        return []
    top = max(m.score for m in scored)
    return [m for m in scored if m.score >= top - 1e-9]


def nearest_texts(target: str, lines: list[TextLine], k: int = 3) -> list[str]:
    """The ``k`` OCR texts most similar to ``target`` (for a helpful "not found" message)."""
    unique = list(dict.fromkeys(ln.text for ln in lines))  # reading order breaks ties
    ranked = sorted(unique, key=lambda t: -difflib.SequenceMatcher(None, target, normalize(t), autojunk=False).ratio())
    return ranked[:k]


# --------------------------------------------------------------------------------------------------------------
# Description parsing

_BAR_PATTERNS = [
    re.compile(r"^(?:the |a )?bars? (?:for|of|representing|labeled|labelled|named|called|showing|at|above) (.+)$"),
    re.compile(r"^(?:the |a )?(.+?) bars?$"),
    re.compile(r"^(?:the |a )?bars? (.+)$"),
]
#: Quoted text ("...", '...', curly quotes); a quote must open after a space and close before one, so the
#: apostrophes of "Iran's" or "Don't" are no quotes.
_QUOTED = re.compile(r"(?:^|(?<=[\s(]))[\"'\u201c\u2018](.+?)[\"'\u201d\u2019](?=$|[\s.,;:!?)])")


#: "the highest bar", "the second lowest bar", "the tallest bar": bars ranked by the value they draw.
_RANK_PATTERN = re.compile(r"^(?:the |a )?(?:(second|2nd|third|3rd|fourth|4th) )?"
                           r"(highest|tallest|longest|largest|biggest|lowest|shortest|smallest) bars?$")
_ORDINAL = {None: 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}

#: "the value label of X", "value of X", "the value printed for X", "the value at the bar for X".
_VALUE_PATTERN = re.compile(
    r"^(?:the |a )?(?:printed )?values?(?: labels?| printed)? (?:of|for|at|on) (?:the )?(?:bars? (?:for|of) )?(.+)$")


#: A point of a plotted line over a category: "the point of S at X", "the point for the S line at X", "the S line
#: at X" (series S, category X), or, on a chart with one line, "the point at X" / "the line at X".
_LINE_POINT_PATTERNS = [
    re.compile(r"^(?:the |a )?(?:data )?(?:point|marker) (?:of|for|on) (?:the )?(.+?)(?: line| series)? at (.+)$"),
    re.compile(r"^(?:the |a )?(.+?) (?:line|series) at (.+)$"),
    re.compile(r"^(?:the |a )?()(?:data )?(?:point|marker|line) at (.+)$"),
]


#: A bar of one series over a category, on a grouped or stacked bar chart: "the bar of S for X", "the S bar for X",
#: "the segment of S for X"; with "value label" the text printed at it: "the value label of S for X".
_SERIES_BAR_PATTERNS = [
    re.compile(r"^(?:the |a )?(?:printed )?(values?)(?: labels?)? (?:of|for) (?:the )?(.+?)"
               r"(?: bars?| segments?| series)? (?:for|at|in) (.+)$"),
    re.compile(r"^(?:the |a )?()(?:bar|segment) (?:of|for) (?:the )?(.+?)(?: series)? (?:for|at|in) (.+)$"),
    re.compile(r"^(?:the |a )?()(.+?) (?:bar|segment) (?:for|at|in) (.+)$"),
]
#: Several printed values in one reply: "the value labels of "A" and "B"", "the value labels of A, B and C"; every
#: bar's: "the value labels", "all value labels", "every value label".
_VALUES_PATTERN = re.compile(r"^(?:the )?(?:printed )?value labels (?:of|for) (?:the )?(?:bars? (?:for|of) )?(.+)$")
_ALL_VALUES_PATTERN = re.compile(r"^(?:(?:the |all (?:the )?)(?:printed )?value labels(?: of (?:all|every) (?:the )?"
                                 r"bars?)?|every (?:printed )?value label)$")
#: How many values one "the value labels of ..." may ask for.
MAX_VALUES = 12
#: A printed value: "12", "-3.5", "1,204.0", "45%", "$12".
_PRINTED_NUMBER = re.compile(r"^-?[$€£]?\d[\d,]*(?:\.\d+)?%?$")
#: The top of a stacked bar: "the top of the stack for X".
_STACK_PATTERN = re.compile(r"^(?:the |a )?top of (?:the )?(?:stack|stacked bar|bar) (?:for|of|at) (.+)$")


@dataclass
class Query:
    """What a description asks for: text ``targets`` (normalised; the first ``loose`` of them may match partly or
    fuzzily, the rest only whole), whether the bar of that label is meant, or the value printed at that bar
    (``value``), and ``role``, a text-less element ("title", "x axis title", "y axis title")."""

    targets: list[str]
    bar: bool = False
    role: str | None = None
    loose: int = 1
    value: bool = False
    #: A bar by its rank: (k, highest first?), e.g. (2, True) for "the second highest bar".
    rank: tuple[int, bool] | None = None
    #: A point of a plotted line: the category label it stands over, and its series (None: the chart's one line).
    line_at: str | None = None
    series: str | None = None
    #: A bar of ``series`` over this category (grouped or stacked bars); ``value`` asks for its printed value.
    #: The description also reads as one label's bar ("the value label of Men at 65"), the ``targets``: that
    #: reading is taken when a text reads the whole of it ("Men at 65").
    bar_at: str | None = None
    #: The top of the stacked bar over this category.
    stack_at: str | None = None
    #: Several value labels in one reply: the categories named (``values``), or every bar's (``all_values``).
    values: list[str] | None = None
    all_values: bool = False


def parse_description(description: str) -> Query:
    """Split a description into the text to look for and the kind of element."""
    quoted = [normalize(q) for q in _QUOTED.findall(description) if normalize(q)]
    norm = normalize(description)
    if _ALL_VALUES_PATTERN.match(norm):
        return Query(targets=[], all_values=True)
    several = _VALUES_PATTERN.match(norm) and _VALUES_PATTERN.match(" ".join(description.lower().split()))
    if several:  # split the text as written: normalising drops the commas between the names
        items = quoted or [strip_filler(normalize(t)) for t in re.split(r",\s*(?:and\s+)?|\s+and\s+",
                                                                        several.group(1))]
        items = [t for t in items if t]
        if len(items) >= 2:
            return Query(targets=[norm], values=items)
    ranked = _RANK_PATTERN.match(norm)
    if ranked and not quoted:
        top = ranked.group(2) in ("highest", "tallest", "longest", "largest", "biggest")
        return Query(targets=[], bar=True, rank=(_ORDINAL[ranked.group(1)], top))
    stack = _STACK_PATTERN.match(norm)
    if stack and strip_filler(stack.group(1)) and not quoted:
        return Query(targets=[norm], stack_at=strip_filler(stack.group(1)))
    series_bar = next((m for m in (p.match(norm) for p in _SERIES_BAR_PATTERNS)
                       if m and strip_filler(m.group(2)) and strip_filler(m.group(3))), None)
    for pattern in _LINE_POINT_PATTERNS if series_bar is None else []:
        m = pattern.match(norm)
        if m and strip_filler(m.group(2)):
            series = strip_filler(m.group(1)) or None
            return Query(targets=[norm], line_at=strip_filler(m.group(2)), series=series)
    bar = value = False
    body = norm
    m = _VALUE_PATTERN.match(norm)
    if m and strip_filler(m.group(1)):
        bar = value = True
        body = m.group(1)
    for pattern in _BAR_PATTERNS if not value else []:
        m = pattern.match(norm)
        if m and strip_filler(m.group(1)):
            bar, body = True, m.group(1)
            break
    stripped = strip_filler(body)
    primary = list(dict.fromkeys(quoted + ([stripped] if stripped else [])))
    whole = [t for t in dict.fromkeys([body, norm]) if t and t not in primary]
    role = None
    if not primary:
        words = set(norm.split())
        if words & {"title", "heading"} or ("axis" in words and words & {"label", "name"}):
            if words & {"y", "vertical"}:
                role = "y axis title"
            elif words & {"x", "horizontal"}:
                role = "x axis title"
            elif words & {"title", "heading"}:
                role = "title"
    query = Query(targets=primary + whole, bar=bar, role=role, loose=len(primary), value=value)
    if series_bar is not None and not quoted:
        query.bar, query.value = True, bool(series_bar.group(1)) or value
        query.series, query.bar_at = strip_filler(series_bar.group(2)), strip_filler(series_bar.group(3))
    return query


# --------------------------------------------------------------------------------------------------------------
# Roles without text: the chart title and axis titles


def _is_vertical(line: TextLine) -> bool:
    x0, y0, x1, y1 = line.box
    return (y1 - y0) > 1.5 * (x1 - x0) and len(line.text) >= 3


def _row(lines: list[TextLine], line: TextLine) -> list[TextLine]:
    """The lines in ``line``'s row, itself included (vertical centres within half a line height)."""
    half = max(2.0, (line.box[3] - line.box[1]) / 2)
    return [o for o in lines if abs(o.center[1] - line.center[1]) <= half]


def _rows(lines: list[TextLine], line: TextLine) -> int:
    """How many other lines share ``line``'s row."""
    return sum(1 for o in _row(lines, line) if o is not line)


def _numeric(line: TextLine) -> bool:
    tokens = normalize(line.text).split()
    return bool(tokens) and all(_is_number(t) for t in tokens)


def find_role(role: str, lines: list[TextLine], width: int, height: int) -> list[TextLine]:
    """The line that plays ``role`` by layout. Title: the topmost line of two or more words in the top quarter
    (else its topmost line that is not a number), with the lines of its block (:func:`title_block`). OCR boxes are
    no measure of type size (ascenders and descenders change a box's height by a third), so size is not used.
    Y-axis title: the leftmost vertical line. X-axis title: the lowest text line of the bottom quarter that stands
    alone in its row (tick labels come in rows)."""
    horizontal = [ln for ln in lines if not _is_vertical(ln)]
    if role == "title":
        top = [ln for ln in horizontal if ln.center[1] < height * 0.25 and not _numeric(ln)]
        wordy = [ln for ln in top if len(normalize(ln.text).split()) >= 2]
        first = min(wordy or top, key=lambda ln: ln.box[1], default=None)
        return [title_block(first, horizontal)] if first is not None else []
    if role == "y axis title":
        vertical = [ln for ln in lines if _is_vertical(ln) and ln.center[0] < width * 0.5]
        return [min(vertical, key=lambda ln: ln.box[0])] if vertical else []
    if role == "x axis title":
        low = [ln for ln in horizontal if ln.center[1] > height * 0.75 and not _numeric(ln) and _rows(lines, ln) == 0]
        return [max(low, key=lambda ln: ln.box[3])] if low else []
    return []


def _aligned(a: Box, b: Box, tolerance: float) -> bool:
    """Set in one column of text: centred on each other, or flush left, or flush right."""
    return (abs((a[0] + a[2]) - (b[0] + b[2])) / 2 <= tolerance or abs(a[0] - b[0]) <= tolerance
            or abs(a[2] - b[2]) <= tolerance)


def _join(parts: list[TextLine]) -> TextLine:
    """Lines as one: texts joined by spaces in the given order, boxes united, the lowest confidence."""
    box = (min(ln.box[0] for ln in parts), min(ln.box[1] for ln in parts), max(ln.box[2] for ln in parts),
           max(ln.box[3] for ln in parts))
    return TextLine(" ".join(" ".join(ln.text.split()) for ln in parts), box, min(ln.confidence for ln in parts))


def _row_pieces(line: TextLine, lines: list[TextLine]) -> tuple[list[TextLine], bool]:
    """``line`` and the lines continuing it in its row (height within 35 %, at most half a line height apart: one
    line of text the OCR cut in two), left to right; and whether the row is shared: by a line within three line
    heights, or, for a number, by anything (value labels and ticks stand in rows with other text)."""
    height = line.box[3] - line.box[1]
    row = sorted(_row(lines, line), key=lambda o: o.box[0])
    i = row.index(line)
    lo = hi = i

    def touches(a: TextLine, b: TextLine) -> bool:
        return (abs((b.box[3] - b.box[1]) - height) <= 0.35 * height
                and -0.5 * height <= b.box[0] - a.box[2] <= 0.5 * height)

    while lo > 0 and touches(row[lo - 1], row[lo]):
        lo -= 1
    while hi < len(row) - 1 and touches(row[hi], row[hi + 1]):
        hi += 1
    pieces = row[lo:hi + 1]
    x0, x1 = pieces[0].box[0], pieces[-1].box[2]
    numeric = all(map(_numeric, pieces))
    others = [o for o in row[:lo] + row[hi + 1:]
              if numeric or o.box[0] - x1 <= 3 * height and x0 - o.box[2] <= 3 * height]
    return pieces, bool(others)


def _heads_number_column(line: TextLine, lines: list[TextLine]) -> bool:
    """True when a number stands under ``line`` within four line heights, flush right with it (axis ticks)."""
    height = line.box[3] - line.box[1]
    return any(o is not line and _numeric(o) and 0 < o.box[1] - line.box[1] <= 4 * height
               and abs(o.box[2] - line.box[2]) <= 0.4 * height for o in lines)


def _smaller_type(line: TextLine, other: TextLine) -> bool:
    """True when ``line`` is set in clearly smaller type than ``other``: under 80 % of its width per character (both
    ten characters or more; shorter texts say little about type size)."""
    if min(len(line.text), len(other.text)) < 10:
        return False
    per_char = (line.box[2] - line.box[0]) / len(line.text)
    return per_char < 0.8 * (other.box[2] - other.box[0]) / len(other.text)


def title_block(first: TextLine, lines: list[TextLine]) -> TextLine:
    """``first`` and the lines set directly above and under it in about the same type and aligned with it (a title
    broken over several lines), as one line: their texts joined by spaces, their boxes united; a row the OCR cut in
    two is joined first (:func:`_row_pieces`). A line continues the block when it is near (vertical gap -35 % to
    45 % of a line height), in about the same type (box height within 45 %: OCR boxes of one font differ by a third
    with and without descenders; and, for lines of ten characters or more, at least 80 % of the width per
    character: a subtitle in smaller type is narrower), centred or flush left or right with the line it continues
    (within 40 % of a line height), alone in its row, and, if a number, not the head of a column of numbers. A
    legend entry, a tick or a value label next to a title fails one of these."""
    height = first.box[3] - first.box[1]
    pieces, _ = _row_pieces(first, lines)
    used = {id(ln) for ln in pieces}
    block = [_join(pieces)]

    def continuation(edge: TextLine, below: bool) -> tuple[list[TextLine], TextLine] | None:
        def near(line: TextLine) -> bool:
            upper, lower = (edge.box, line.box) if below else (line.box, edge.box)
            return (id(line) not in used and -0.35 * height <= lower[1] - upper[3] <= 0.45 * height
                    and abs((line.box[3] - line.box[1]) - height) <= 0.45 * height)

        for line in sorted(filter(near, lines), key=lambda ln: abs(ln.center[1] - edge.center[1])):
            row, crowded = _row_pieces(line, lines)
            joined = _join(row)
            if (not crowded and _aligned(joined.box, edge.box, 0.4 * height) and not _smaller_type(joined, edge)
                    and not (_numeric(joined) and _heads_number_column(joined, lines))):
                return row, joined
        return None

    for below in (False, True):
        while (found := continuation(block[-1] if below else block[0], below)) is not None:
            row, joined = found
            used |= {id(ln) for ln in row}
            block.insert(len(block) if below else 0, joined)
    return block[0] if len(block) == 1 else _join(block)


# --------------------------------------------------------------------------------------------------------------
# The bar for a label


def _is_glyph(region: Region, text_boxes: list[Box]) -> bool:
    """True when the region lies mostly inside one text box and covers well under half of it (a letter or digit;
    a small bar with its value printed on it covers most of that value's box)."""
    box = region.box
    area = max(1, (box[2] - box[0]) * (box[3] - box[1]))
    for t in text_boxes:
        ix = max(0, min(box[2], t[2]) - max(box[0], t[0]))
        iy = max(0, min(box[3], t[3]) - max(box[1], t[1]))
        if ix * iy >= 0.5 * area and region.area < 0.5 * (t[2] - t[0]) * (t[3] - t[1]):
            return True
    return False


def dominant_color(arr: np.ndarray) -> tuple[int, int, int]:
    """The most common colour of the image (a chart's background; more robust than the border, which may be a
    frame)."""
    step = max(1, int(np.sqrt(arr.shape[0] * arr.shape[1] / 40_000)))
    sample = arr[::step, ::step].reshape(-1, 3).astype(np.int32)
    keys = (sample[:, 0] << 16) | (sample[:, 1] << 8) | sample[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    key = int(values[np.argmax(counts)])
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def _differs(color, other, tol: int = 24) -> bool:
    return max(abs(int(a) - int(b)) for a, b in zip(color, other)) > tol


def _is_bar(region: Region, arr: np.ndarray, backgrounds: list[tuple[int, int, int]], label: Box,
            text_boxes: list[Box]) -> bool:
    """A bar: a solid, filled block at least 3 px thick, not of a background colour, not a glyph of some text and
    not a panel that encloses the label itself."""
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = region.box
    bw, bh = x1 - x0, y1 - y0
    if bw < 3 or bh < 3 or region.area < 20 or region.area > 0.4 * w * h:
        return False
    if region.area < 0.6 * bw * bh:
        return False
    if not all(_differs(region.color, bg) for bg in backgrounds):
        return False
    if x0 <= label[0] and y0 <= label[1] and x1 >= label[2] and y1 >= label[3]:
        return False
    return not _is_glyph(region, text_boxes)


def walk_to_bar(
    arr: np.ndarray, start: tuple[int, int], direction: tuple[int, int], label: Box, text_boxes: list[Box],
    max_steps: int,
) -> tuple[Region, int] | None:
    """Walk from ``start`` in ``direction`` (up or right) to the first bar-like region; returns it and the distance
    walked. Whatever else the walk meets (axis lines, ticks, grid, glyphs, a 3-D floor) is walked through."""
    h, w = arr.shape[:2]
    backgrounds = [dominant_color(arr), background_color(arr)]
    bg_arr = np.array(backgrounds[0], np.int16)
    x, y = start
    dx, dy = direction
    steps = 0
    while 0 <= x < w and 0 <= y < h and steps <= max_steps:
        if int(np.abs(arr[y, x].astype(np.int16) - bg_arr).max()) > 40:
            region = region_around(arr, x, y)
            if region.mask[y, x]:
                if _is_bar(region, arr, backgrounds, label, text_boxes):
                    return region, steps
                # Walk through this region to where the walk leaves it.
                while 0 <= x < w and 0 <= y < h and region.mask[y, x]:
                    x += dx
                    y += dy
                    steps += 1
                continue
        x += dx
        y += dy
        steps += 1
    return None


def _walk_starts(line: TextLine, line_height: float) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where to start walking from a label and which way, most likely first: up from an x tick label (from the
    upper-right corner of a rotated one, where its tick is), right from a y tick label."""
    x0, y0, x1, y1 = line.box
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    bw, bh = x1 - x0, y1 - y0
    up_center = ((cx, y0 - 1), (0, -1))
    up_right = ((max(x0, x1 - 2), y0 - 1), (0, -1))
    right = ((x1, cy), (1, 0))
    rotated = len(normalize(line.text)) >= 3 and bh > 1.6 * line_height and bw > 0.5 * bh
    if rotated:
        return [up_right, up_center, right]
    return [up_center, right, up_right]


def find_bar(
    arr: np.ndarray, line: TextLine, text_boxes: list[Box], line_height: float
) -> tuple[Region, tuple[int, int]] | None:
    """The bar belonging to the label ``line``: the nearest bar reached by the walks of :func:`_walk_starts`."""
    h, w = arr.shape[:2]
    best = None
    others = [b for b in text_boxes if b != line.box]
    for rank, (start, direction) in enumerate(_walk_starts(line, line_height)):
        sx, sy = start
        if not (0 <= sx < w and 0 <= sy < h):
            continue
        found = walk_to_bar(arr, start, direction, line.box, others, max_steps=max(w, h))
        if found is None:
            continue
        region, dist = found
        # Prefer the likeliest start unless another reaches a bar much sooner.
        key = dist + rank * 2 * line_height
        if best is None or key < best[0]:
            best = (key, region, start)
    if best is None:
        return None
    return best[1], best[2]


@dataclass
class LabelledBar:
    """A bar found from its category label: the label, the bar region, and whether the bar stands vertically."""

    label: TextLine
    region: Region
    vertical: bool
    distance: float


def _line_height(lines: list[TextLine]) -> float:
    heights = [ln.box[3] - ln.box[1] for ln in lines if ln.box[2] - ln.box[0] >= ln.box[3] - ln.box[1]]
    return float(np.median(heights)) if heights else 12.0


def labelled_bars(arr: np.ndarray, lines: list[TextLine]) -> list[LabelledBar]:
    """The bars of the chart's category axis, each with its label: the labels set in one row under vertical bars
    (their tops level) or one column beside horizontal ones (their right edges level) that reach the most distinct
    bars; a value label printed at a bar, or a tick label of the value axis that meets a bar from its side, is not
    a category label."""
    text_boxes = [ln.box for ln in lines]
    height = _line_height(lines)
    found: list[LabelledBar] = []
    for line in lines:
        hit = find_bar(arr, line, text_boxes, height)
        if hit is not None:
            region, (_, sy) = hit
            vertical = sy < line.box[1]
            distance = (line.box[1] - region.box[3]) if vertical else (region.box[0] - line.box[2])
            found.append(LabelledBar(line, region, vertical, distance))
    best: list[LabelledBar] = []
    for anchor in found:
        edge = 1 if anchor.vertical else 2  # tops of a row of labels, right edges of a column
        group = [b for b in found if b.vertical == anchor.vertical
                 and abs(b.label.box[edge] - anchor.label.box[edge]) <= height / 2]
        by_bar: dict[tuple[int, int, int, int], LabelledBar] = {}
        for b in group:
            if b.region.box not in by_bar or b.distance < by_bar[b.region.box].distance:
                by_bar[b.region.box] = b
        if len(by_bar) > len(best):
            best = list(by_bar.values())
    return best


def signed_lengths(bars: list[LabelledBar]) -> list[float]:
    """Each bar's length from the common baseline (the edge most bars share), negative for bars on the other side
    of it: proportional to the values the bars draw."""
    vertical = bars[0].vertical
    edges = [b.region.box[i] for b in bars for i in ((1, 3) if vertical else (0, 2))]
    baseline = max(edges, key=lambda e: sum(abs(e - other) <= 2 for other in edges))
    out = []
    for b in bars:
        lo, hi = (b.region.box[1], b.region.box[3]) if vertical else (b.region.box[0], b.region.box[2])
        if vertical:  # pixel y grows downwards: a bar standing on the baseline reaches up to lo
            out.append(baseline - lo if abs(hi - baseline) <= 2 else -(hi - baseline))
        else:
            out.append(hi - baseline if abs(lo - baseline) <= 2 else -(baseline - lo))
    return out


def text_at_bar_end(bar: Box, label: Box, lines: list[TextLine], line_height: float,
                    vertical: bool) -> TextLine | None:
    """The text printed at an end of ``bar`` (just beyond it, or inside near it), in line with the bar: for a
    vertical bar a text overlapping its columns, for a horizontal one its rows; the nearest within two line
    heights of an end. ``label`` (the category's own text) is never the answer, nor a text without a digit (a
    neighbour's slanted label, an axis title: printed values are numbers)."""
    a0, a1 = (0, 2) if vertical else (1, 3)   # the bar's cross axis
    e0, e1 = (1, 3) if vertical else (0, 2)   # its length axis
    best: tuple[float, TextLine] | None = None
    for line in lines:
        box = line.box
        if not any(ch.isdigit() for ch in line.text):
            continue
        if box == tuple(label) or overlap_1d(box[a0], box[a1], label[a0], label[a1]) > 0.5 and \
                overlap_1d(box[e0], box[e1], label[e0], label[e1]) > 0.5:
            continue
        if overlap_1d(box[a0], box[a1], bar[a0], bar[a1]) < 0.5:
            continue
        mid = (box[e0] + box[e1]) / 2
        gap = min(abs(box[e1] - bar[e0]), abs(box[e0] - bar[e1]), abs(mid - bar[e0]), abs(mid - bar[e1]))
        if gap <= 2 * line_height and (best is None or gap < best[0]):
            best = (gap, line)
    return best[1] if best else None


# --------------------------------------------------------------------------------------------------------------
# The point of a line over a category

#: How far (max channel difference) a pixel may be from a line's colour and still belong to it.
LINE_COLOR_TOLERANCE = 30


def _ink(arr: np.ndarray, bg: tuple[int, int, int]) -> np.ndarray:
    """Pixels that differ from the background colour ``bg`` (by more than 40 in some channel)."""
    return np.abs(arr.astype(np.int16) - np.array(bg, np.int16)).max(axis=-1) > 40


def _off_boxes(mask: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """A copy of ``mask`` cleared inside ``boxes`` and a pixel round them (text boxes: OCR cuts glyph edges)."""
    out = mask.copy()
    for x0, y0, x1, y1 in boxes:
        out[max(0, y0 - 1):y1 + 1, max(0, x0 - 1):x1 + 1] = False
    return out


def _straight(mask: np.ndarray) -> np.ndarray:
    """The long straight rules of ``mask``: horizontal or vertical runs a sixth of the image long (at least 21 px)."""
    h, w = mask.shape
    m = mask.astype(np.uint8)
    straight = cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((1, max(21, w // 6 | 1)), np.uint8))  # odd: centred
    return straight | cv2.morphologyEx(m, cv2.MORPH_OPEN, np.ones((max(21, h // 6 | 1), 1), np.uint8))


def _rules_like(arr: np.ndarray, ink: np.ndarray, color: tuple[int, int, int]) -> bool:
    """Whether a line of ``color`` must be told from the chart's rules (axes, ticks, frame, gridlines): a grey
    line, or one whose colour most of the rules' pixels are within :data:`LINE_COLOR_TOLERANCE` of."""
    if max(color) - min(color) < 40:
        return True
    rules = _straight(ink).astype(bool)
    if rules.sum() < 20:
        return False
    close = np.abs(arr[rules].astype(np.int16) - np.array(color, np.int16)).max(axis=1) <= LINE_COLOR_TOLERANCE
    return bool(close.mean() > 0.5)


def _without_rules(mask: np.ndarray, rules: bool = True) -> np.ndarray:
    """``mask`` less its long straight rules (axes, gridlines, frames: horizontal or vertical runs a sixth of the
    image long; with ``rules``) and less specks under 12 pixels (tick marks, the fringe of text)."""
    m = mask.astype(np.uint8)
    if rules:
        m &= 1 - _straight(m)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    big = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= 12)
    return np.isin(labels, big[big > 0])


def _mode_color(pixels: np.ndarray) -> tuple[tuple[int, int, int], int]:
    """The most common exact colour of an ``(n, 3)`` pixel array and how many pixels have it."""
    keys = (pixels[:, 0].astype(np.int32) << 16) | (pixels[:, 1].astype(np.int32) << 8) | pixels[:, 2]
    values, counts = np.unique(keys, return_counts=True)
    i = int(np.argmax(counts))
    key = int(values[i])
    return ((key >> 16) & 255, (key >> 8) & 255, key & 255), int(counts[i])


def main_line_color(arr: np.ndarray, ink: np.ndarray, text_boxes: list[Box]) -> tuple[int, int, int] | None:
    """The colour of the line drawn with the most ink (``ink``: the image's, see :func:`_ink`): the commonest colour
    off the background, outside text and off the straight rules (a plotted line is not one, or not all of it, and
    its markers never are)."""
    keep = _without_rules(_off_boxes(ink, text_boxes))
    if keep.sum() < 20:
        return None
    color, count = _mode_color(arr[keep])
    return color if count >= 10 else None


def series_color(arr: np.ndarray, ink: np.ndarray, bg: tuple[int, int, int], entry: TextLine, text_boxes: list[Box],
                 line_height: float) -> tuple[int, int, int] | None:
    """The colour of the series a legend entry (or a label printed at the line) names: the commonest colour, other
    than the text's own, in the entry's row from a few letters left of its text to its first letters (a legend
    handle; OCR boxes often take the handle in), else right of its text; else the text's own colour when it is
    coloured (charts that name each line in its colour). ``ink`` is the image's off background ``bg``."""
    h, w = arr.shape[:2]
    x0, y0, x1, y1 = entry.box
    rows = slice(max(0, y0 + 1), min(h, max(y0 + 2, y1 - 1)))  # inside the entry's row: clear of a legend frame
    tail = arr[y0:y1, max(x0, x1 - int(2 * line_height)):x1].reshape(-1, 3)  # the text's last letters: text only
    far = np.abs(tail.astype(np.int16) - np.array(bg, np.int16)).max(axis=1)
    tail, far = tail[far > 40], far[far > 40]
    # Small type is mostly anti-aliased edge: its colour is that of the strokes' cores, the pixels furthest from the
    # background (the commonest pixel may be a mid grey as light as a grey line's handle).
    core = tail[far >= far.max() - 16] if len(tail) else tail
    text_color = np.median(core, axis=0).astype(np.int16) if len(core) else None
    reach = int(4 * line_height)
    ink = _off_boxes(ink, [b for b in text_boxes if b != entry.box
                           and not _handle_read_as_text(arr, ink, b, entry.box, reach, line_height)])
    for c0, c1 in ((x0 - reach, min(x1, x0 + int(1.5 * line_height))), (x1 + 1, x1 + reach)):
        cols = slice(max(0, c0), min(w, c1))
        mask = ink[rows, cols]
        # A handle is a stroke at least 2 px thick or a marker; a frame's edge or a glyph's fringe is 1 px.
        # (OpenCV anchors an even kernel off centre, so the opening is shifted a pixel: keep it inside the mask.)
        thick = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool) & mask
        keep = thick if thick.sum() >= 6 else mask
        if text_color is not None:
            keep = keep & (np.abs(arr[rows, cols].astype(np.int16) - text_color).max(axis=2) > LINE_COLOR_TOLERANCE)
        # A mark that runs on past the window's outer edge is the plot beside the legend (a bar), not a handle.
        inked = np.flatnonzero(keep.any(axis=0))
        outer = 0 if c0 < x0 else keep.shape[1] - 1
        if len(inked) and outer in inked:
            runs = np.split(inked, np.flatnonzero(np.diff(inked) > 1) + 1)
            cut = runs[0] if outer == 0 else runs[-1]
            if len(cut) < len(inked):
                keep = keep.copy()
                keep[:, cut[0]:cut[-1] + 1] = False
        pixels = arr[rows, cols][keep]
        if len(pixels) >= 6:
            color, count = _mode_color(pixels)
            if count >= 4:
                return color
    if text_color is not None and int(text_color.max() - text_color.min()) > 60:  # coloured text, not black or grey
        return tuple(int(c) for c in text_color)
    return None


def _handle_read_as_text(arr: np.ndarray, ink: np.ndarray, box: Box, entry: Box, reach: int,
                         line_height: float) -> bool:
    """Whether OCR's text ``box`` is the legend handle of ``entry`` read as text (a line with a marker comes out as
    "IT" or "-o-"): it stands in the entry's row, ends within a line height of the entry's first letter on its left,
    and most of its ink is coloured, where text is black or grey."""
    x0, y0, x1, y1 = box
    overlap = min(y1, entry[3]) - max(y0, entry[1])
    if overlap < (entry[3] - entry[1]) / 2 or not entry[0] - reach <= x0 < entry[0] \
            or not entry[0] - line_height <= x1 <= entry[2]:
        return False
    window = (slice(y0, y1), slice(x0, min(x1, entry[0])))  # the part left of the entry's text
    pixels = arr[window][ink[window]]
    if len(pixels) < 6:
        return False
    spread = pixels.max(axis=1).astype(np.int16) - pixels.min(axis=1)
    return bool((spread > 60).mean() >= 0.5)


def tick_x(ink: np.ndarray, raw: np.ndarray, label: Box, line_height: float, rotated: bool) -> int:
    """The x of the tick a category label stands under, the tick nearest where the label's anchor would put it
    (the upper-right corner of a slanted label, else its centre); that anchor itself when no tick is found.
    ``raw`` is the image's ink, ``ink`` the same without text. With the x axis drawn (a row inked across just
    above the label) a tick is a thin mark in the three rows under it — above the label's pad, though a slanted
    label's box may reach up there; without it, a short thin vertical mark in the line height above the label."""
    x0, y0, x1, y1 = label
    expected = x1 - 1 if rotated else (x0 + x1) // 2
    lo, hi = max(0, x0 - int(line_height)), min(ink.shape[1], x1 + int(line_height))
    top = max(0, int(y0 - 2 - line_height))
    if lo >= hi or top >= y0:
        return expected
    rows = raw[top:y0 + 2, x0:x1].mean(axis=1)  # over the label's width: the axis may start inside the window
    axis = int(np.argmax(rows))
    if rows[axis] > 0.6:
        below = top + axis + 1
        while below < raw.shape[0] and raw[below, x0:x1].mean() > 0.6:  # an axis two or more pixels thick
            below += 1
        marked = raw[below:below + 3, lo:hi].all(axis=0) if below + 3 <= raw.shape[0] else np.zeros(hi - lo, bool)
    else:
        bottom = y0 - 2  # OCR boxes may cut a glyph's edge: stay clear of the label's own strokes
        band = ink[top:bottom, lo:hi]
        if len(band) < 3:
            return expected
        run = np.zeros(band.shape[1], int)
        longest = np.zeros(band.shape[1], int)
        for row in band:  # the longest vertical run of ink in each column
            run = np.where(row, run + 1, 0)
            longest = np.maximum(longest, run)
        floor = max(3, int(np.median(longest)) + 2)  # strokes crossing the band lengthen every column
        marked = (longest >= floor) & ~band[0]  # a run from the band's top goes on above it: a spine or a line
    best = None
    idx = np.flatnonzero(marked)
    for group in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if len(idx) else []:
        if len(group) <= 3:
            x = lo + int(round(float(group.mean())))
            if best is None or abs(x - expected) < abs(best - expected):
                best = x
    limit = max(line_height, (x1 - x0) / 2 + 2)
    return best if best is not None and abs(best - expected) <= limit else expected


def slanted(arr: np.ndarray, box: Box, bg: tuple[int, int, int]) -> bool:
    """True for a label set at a slant, rising to the right as rotated tick labels are: the further right its
    strokes, the higher (x and y of its ink correlate below -0.2; level or upright text: about 0, within 0.25)."""
    x0, y0, x1, y1 = box
    if x1 - x0 < 8 or y1 - y0 < 8:
        return False
    ys, xs = np.nonzero(_ink(arr[y0:y1, x0:x1], bg))
    if len(xs) < 10 or xs.std() == 0 or ys.std() == 0:
        return False
    return float(np.corrcoef(xs, ys)[0, 1]) < -0.2


def walk_to_mark(mask: np.ndarray, start: tuple[int, int], half_width: int = 2) -> tuple[int, int] | None:
    """Walk up from ``start`` to the first pixels of ``mask`` in the columns ``half_width`` either side; returns
    ``(x, y)``, y the middle of that run of rows (a marker's centre, or the middle of a line's stroke)."""
    h, w = mask.shape
    sx, sy = start
    c0, c1 = max(0, sx - half_width), min(w, sx + half_width + 1)
    if c0 >= c1 or not 0 < sy <= h:
        return None
    hit_rows = mask[:sy, c0:c1].any(axis=1)
    ys = np.flatnonzero(hit_rows)
    if len(ys) == 0:
        return None
    bottom = top = int(ys[-1])
    while top - 1 >= 0 and hit_rows[top - 1]:
        top -= 1
    return sx, (top + bottom + 1) // 2


def _is_stroke(mask: np.ndarray, hit: tuple[int, int], line_height: float) -> bool:
    """Whether the mark ``walk_to_mark`` reached is a line's stroke or marker, not a bar: a bar fills the walk's
    columns for more than two line heights."""
    x, y = hit
    h, w = mask.shape
    band = mask[:, max(0, x - 2):min(w, x + 3)].all(axis=1)
    if not band[y]:
        return True
    top = bottom = y
    while top - 1 >= 0 and band[top - 1]:
        top -= 1
    while bottom + 1 < h and band[bottom + 1]:
        bottom += 1
    return bottom - top + 1 <= 2 * line_height


def line_points(arr: np.ndarray, lines: list[TextLine], labels: list[Match], color: tuple[int, int, int],
                entry: TextLine | None, line_height: float, bg: tuple[int, int, int],
                raw: np.ndarray) -> list[tuple[Match, tuple[int, int]]]:
    """Where the line of ``color`` passes over each category label in ``labels``: from the label's tick up to the
    first pixels of that colour (off text, off the rules where they share it, :func:`_rules_like`; ``entry``: the
    series' legend entry, whose handle shares the colour). Marks that fill the walk's columns like a bar are not
    points."""
    # OCR reads a marker as a glyph ("●", "口", "0"): a one-character text may be the very point sought.
    text_boxes = [ln.box for ln in lines if len(normalize(ln.text)) >= 2]
    near = np.abs(arr.astype(np.int16) - np.array(color, np.int16)).max(axis=2) <= LINE_COLOR_TOLERANCE
    if entry is not None:  # the legend handle shares the series' colour: never take it for the line
        x0, y0, _, y1 = entry.box
        near[max(0, y0 - 2):y1 + 2, max(0, int(x0 - 5 * line_height)):x0] = False
    # Axes, ticks and gridlines are grey: a grey line's colour matches them, a coloured one's mostly not.
    rules = _rules_like(arr, raw, color)
    mask = _without_rules(_off_boxes(near, text_boxes), rules=rules)
    # A value printed over the line's first or last point may hide all but a speck of it: the second mask drops
    # specks before the texts, so a stroke running under a text keeps its ends.
    covered = _off_boxes(_without_rules(near, rules=rules), text_boxes)
    # Ticks are sought off every text, one-character ones too (a "6" of the y axis beside the first label).
    ink = _off_boxes(raw, [ln.box for ln in lines])
    found = []
    for m in labels:
        box = m.box
        start = (tick_x(ink, raw, box, line_height, slanted(arr, box, bg)), box[1])
        # A line's first and last points end it: a label box a few pixels off may walk past their end.
        wide = max(3, int(line_height / 2))
        for layer in (mask, covered):
            hit = walk_to_mark(layer, start) or walk_to_mark(layer, start, half_width=wide)
            if hit is not None and _is_stroke(layer, hit, line_height):
                found.append((m, hit))
                break
    return found


def text_at_point(point: tuple[int, int], lines: list[TextLine], line_height: float,
                  exclude: list[Box]) -> TextLine | None:
    """The value printed at a line's point: a short text with a digit standing over the point's column (centred
    above it, or under it), its near edge within two line heights of the point; the nearest, above before below.
    Texts boxed in ``exclude`` (the category labels), or over the point itself (OCR reads markers as glyphs), are
    not values."""
    x, y = point
    best: tuple[float, TextLine] | None = None
    for line in lines:
        x0, y0, x1, y1 = line.box
        if line.box in exclude or not any(c.isdigit() for c in line.text) or x1 - x0 > 8 * line_height:
            continue
        if not x0 - 1 <= x <= x1 + 1 or y0 <= y <= y1:  # a text over the point itself is its marker ("★", "5")
            continue
        gap = y - y1 if line.center[1] <= y else y0 - y + 0.5  # above wins a tie
        if -line_height / 2 <= gap <= 2 * line_height and (best is None or gap < best[0]):
            best = (gap, line)
    return _word_at(best[1], x) if best else None


def _word_at(line: TextLine, x: int) -> TextLine:
    """The word of ``line`` standing over column ``x`` (OCR joins the values of neighbouring points into one line,
    "72,722.0 71,129.0"); each word's columns are estimated from its share of the characters."""
    words = line.text.split()
    if len(words) < 2:
        return line
    x0, y0, x1, y1 = line.box
    per_char = (x1 - x0) / max(1, len(line.text))
    start = 0
    best: tuple[float, TextLine] | None = None
    for word in words:
        start = line.text.index(word, start)
        a, b = x0 + start * per_char, x0 + (start + len(word)) * per_char
        start += len(word)
        distance = max(0.0, a - x, x - b)
        if best is None or distance < best[0]:
            best = (distance, TextLine(word, (int(a), y0, int(round(b)), y1), line.confidence))
    return best[1]


# --------------------------------------------------------------------------------------------------------------
# One series' bar over a category (grouped or stacked bars), and the top of a stack


def find_series_bar(arr: np.ndarray, color: tuple[int, int, int], label: TextLine, lines: list[TextLine],
                    tick: int, line_height: float, legend: Box | None,
                    raw: np.ndarray | None = None) -> tuple[Box, bool] | None:
    """The bar of colour ``color`` that belongs to the category label ``label``: of the solid blocks of that colour
    (its legend handle beside ``legend`` excluded), the one nearest the label's tick ``tick`` across the bars
    (above the label: vertical bars) or nearest the label's middle row (starting just right of it: horizontal
    bars), no further than half-way to the next label of the same axis.
    A block on a line (a marker: :func:`_on_a_line`; ``raw``, the image's ink, spares recomputing it) is no bar.
    Returns its box ``(x0, y0, x1, y1)`` (exclusive ends) and whether it stands vertically."""
    h, w = arr.shape[:2]
    colored = np.abs(arr.astype(np.int16) - np.array(color, np.int16)).max(axis=2) <= LINE_COLOR_TOLERANCE
    # Off lines 1-2 px thick (an axis or a frame of a grey near the bars' grey would join them).
    near = cv2.morphologyEx(colored.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(near, connectivity=4)
    handle = None
    if legend is not None:  # the legend handle beside its entry has the bars' colour: a block within its row
        x0, y0, x1, y1 = legend
        reach = 5 * line_height
        handle = (x0 - reach, y0 - line_height / 2, x1 + reach, y1 + line_height / 2)
    lx0, ly0, lx1, ly1 = label.box
    cy = (ly0 + ly1) / 2
    row = [o for o in _row(lines, label) if o is not label]
    column = [o for o in lines if o is not label and abs(o.box[2] - lx1) <= line_height]
    spacing_x = min((abs(o.center[0] - label.center[0]) for o in row), default=float(w))
    spacing_y = min((abs(o.center[1] - label.center[1]) for o in column if o.center[1] != label.center[1]),
                    default=float(h))
    best: tuple[float, int, Box, bool] | None = None
    for i in range(1, count):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        if bw < 2 or bh < 2 or area < 12 or area < 0.7 * bw * bh:  # a solid block: not a glyph, not a line
            continue
        if handle is not None and handle[0] <= x and x + bw <= handle[2] and handle[1] <= y and y + bh <= handle[3]:
            continue
        candidates = []
        if y + bh <= ly1:  # above the label: a vertical bar, nearest the tick across
            candidates.append((max(0, x - tick, tick - (x + bw - 1)), spacing_x, True))
        # right of the label, starting close by (a bar further right stands over another label): a horizontal
        # bar, nearest the label's middle row
        if lx1 - line_height / 2 <= x <= lx1 + 3 * line_height:
            candidates.append((max(0.0, y - cy, cy - (y + bh - 1)), spacing_y, False))
        for distance, spacing, vertical in candidates:
            if distance > max(2.0, 0.45 * spacing):  # the same series' bar of the next category is further
                continue
            key = (distance, -area)
            if best is None or key < (best[0], best[1]):
                best = (distance, -area, (x, y, x + bw, y + bh), vertical)
    if best is None or best[3] and _on_a_line(arr, raw, colored, best[2], color, spacing_x):
        return None
    return best[2], best[3]


def _on_a_line(arr: np.ndarray, raw: np.ndarray | None, colored: np.ndarray, block: Box, color: tuple[int, int, int],
               spacing: float) -> bool:
    """Whether a solid block of ``colored`` (pixels of ``color``) is a line's marker or a thick piece of its stroke,
    not a bar: joined by pixels of its colour (straight rules aside) to a run reaching past the next category
    (``spacing``: the distance between category labels). Bars of one series stand apart. ``raw``: the image's ink
    (:func:`_ink`; None: computed here)."""
    raw = _ink(arr, dominant_color(arr)) if raw is None else raw
    strokes = _without_rules(colored, rules=_rules_like(arr, raw, color))
    _, components = cv2.connectedComponents(strokes.astype(np.uint8), connectivity=8)
    x0, y0, x1, y1 = block
    for i in np.unique(components[y0:y1, x0:x1]):
        if i == 0:
            continue
        columns = np.flatnonzero((components == i).any(axis=0))
        if columns[-1] - columns[0] + 1 > (x1 - x0) + 0.9 * spacing:
            return True
    return False


def text_at_series_bar(bar: Box, vertical: bool, exclude: list[Box], lines: list[TextLine],
                       line_height: float) -> TextLine | None:
    """The text printed at a bar of a grouped or stacked chart: one centred inside it (a stacked segment's value),
    else the nearest beyond one of its ends, within two line heights, centred across the bar (its neighbours'
    values stand over their own bars). A value has a digit (a title set close over a stack has none); texts boxed in
    ``exclude`` (the category label, the legend entry) are not values."""
    x0, y0, x1, y1 = bar
    best: tuple[float, TextLine] | None = None
    for line in lines:
        if line.box in exclude or not any(c.isdigit() for c in line.text):
            continue
        cx, cy = line.center
        if x0 <= cx < x1 and y0 <= cy < y1:
            return line
        across, lo, hi = (cx, x0, x1) if vertical else (cy, y0, y1)
        if not lo - 1 <= across <= hi + 1:
            continue
        t0, t1 = (line.box[1], line.box[3]) if vertical else (line.box[0], line.box[2])
        e0, e1 = (y0, y1) if vertical else (x0, x1)
        gap = min(abs(e0 - t1), abs(t0 - e1))
        if gap <= 2 * line_height and (best is None or gap < best[0]):
            best = (gap, line)
    return best[1] if best else None


def stack_top(arr: np.ndarray, bottom: Box, bg: tuple[int, int, int]) -> int:
    """The top row of the stacked bar whose lowest segment is ``bottom``: up from that segment, row by row while at
    least a third of its columns are off the background (segments of other colours, the text printed on them)."""
    x0, y0, x1, _ = bottom
    cols = slice(x0 + 1, max(x0 + 2, x1 - 1))  # inside the bar: clear of a neighbour's anti-aliased edge
    inked = _ink(arr[:y0, cols], bg).mean(axis=1) >= 1 / 3
    top = y0
    while top - 1 >= 0 and inked[top - 1]:
        top -= 1
    return top


# --------------------------------------------------------------------------------------------------------------
# Point


class PointArgs(ToolArgs):
    description: str = Field(
        description=(
            "The element to locate, by its text or role: a tick label ('2021'), a legend entry, a value label, "
            "'the chart title', 'the y-axis title', 'the bar for X', 'the value label of X' (the value printed "
            "at the bar for X), 'the bar of S for X' or 'the value label of S for X' (series S's bar over category "
            "X on a grouped or stacked bar chart), 'the top of the stack for X', 'the point of S at X' (where "
            "series S's line passes over category X; 'the point at X' on a chart of one line), or several values "
            "at once: 'the value labels of \"A\" and \"B\"', 'the value labels' (every bar's)."
        ),
        max_length=MAX_DESCRIPTION,
    )

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("must describe an element, e.g. 'the bar for Apples' or '2021'")
        return value


class NoBarError(ToolError):
    """No bar stands where a description asked for one (Point then looks for a line's point there)."""


def _series_entry(lines: list[TextLine], series: str, description: str) -> TextLine:
    """The legend entry (or other text) naming the series a description names; a ToolError naming the nearest
    texts when none does."""
    entries = best_matches([series], lines, loose=1)
    if not entries:
        near = ", ".join(json.dumps(t, ensure_ascii=False) for t in nearest_texts(series, lines))
        raise ToolError(f"no legend entry or text matches the series {series!r} of {description!r}; nearest texts: "
                        f"{near}", argument="description")
    return entries[0].line


def _entry_color(arr: np.ndarray, ink: np.ndarray, bg: tuple[int, int, int], entry: TextLine, text_boxes: list[Box],
                 line_height: float, whose: str) -> tuple[int, int, int]:
    """:func:`series_color` of a legend entry; a ToolError saying the entry was found but no mark beside it."""
    color = series_color(arr, ink, bg, entry, text_boxes, line_height)
    if color is None:
        raise ToolError(f"found {json.dumps(entry.text, ensure_ascii=False)} at {list(_center(entry.box))} but no "
                        f"coloured mark beside it to tell {whose} colour", argument="description")
    return color


def _category_labels(lines: list[TextLine], category: str, description: str,
                     entry: TextLine | None = None) -> list[Match]:
    """The texts that match the category a description names (not the legend ``entry`` it also names); a
    ToolError naming the nearest texts when none does."""
    labels = [m for m in best_matches([category], lines, loose=1) if m.line is not entry]
    if not labels:
        near = ", ".join(json.dumps(t, ensure_ascii=False) for t in nearest_texts(category, lines))
        raise ToolError(f"no text matches the category {category!r} of {description!r}; nearest texts: {near}",
                        argument="description")
    return labels


def bar_ends(box: Box, vertical: bool) -> str:
    """A bar's two ends named by side, as Point states them (``top at y=80, bottom at y=400``; ``left at x=20,
    right at x=300``): the value end is a named number to copy into a line tool, not an index into the box."""
    x0, y0, x1, y1 = box
    return f"top at y={y0}, bottom at y={y1}" if vertical else f"left at x={x0}, right at x={x1}"


def _reply(parts: list[str]) -> str:
    """Point's reply: ``Point: (x, y) — ...`` for one match, ``Point: N matches: ...; ...`` for several."""
    head = "Point: " if len(parts) == 1 else f"Point: {len(parts)} matches: "
    return head + "; ".join(parts)


#: A value in Point's several-values list written bare: no quote, bracket, semicolon or "?", no ", " inside (a
#: thousands comma is fine), no space or comma at either end (others are JSON-quoted); "?": no value printed.
_BARE_VALUE = re.compile(r'[^\s",();?](?:(?:[^",();?]|,(?! ))*[^\s",();?])?')
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_VALUE_LIST = re.compile(rf'Point: (\d+) value labels: ((?:{_JSON_STRING}|[^"])*?) '
                         rf'\(for ((?:{_JSON_STRING}(?:, )?)+)\)')
_LIST_ITEM = re.compile(rf'{_JSON_STRING}|\?|{_BARE_VALUE.pattern}')
#: The whole list: items separated by ", ".
_LIST_ITEMS = re.compile(rf'(?:{_LIST_ITEM.pattern})(?:, (?:{_LIST_ITEM.pattern}))*')


def _list_item(text: str | None) -> str:
    if text is None:
        return "?"
    return text if _BARE_VALUE.fullmatch(text) else json.dumps(text, ensure_ascii=False)


def value_list_reply(texts: list[str | None], labels: list[str], notes: list[str]) -> str:
    """Point's several-values reply: the printed values side by side, then the labels they stand for, in order
    (``Point: 3 value labels: 252, ?, 430 (for "A", "B", "C")``), then a note for each label with no value printed
    (``?``), giving its bar's ends or its point."""
    head = (f"Point: {len(texts)} value labels: " + ", ".join(_list_item(t) for t in texts) + " (for "
            + ", ".join(json.dumps(label, ensure_ascii=False) for label in labels) + ")")
    return "; ".join([head, *notes])


def parse_value_list(reply: str) -> tuple[list[str | None], list[str]]:
    """The printed values (None for "?") and the labels of a :func:`value_list_reply`; ValueError if ``reply`` is
    not one."""
    found = _VALUE_LIST.match(reply)
    if found is None:
        raise ValueError(f"not a list of value labels: {reply[:120]!r}")
    count, listed, named = int(found.group(1)), found.group(2), found.group(3)
    if not _LIST_ITEMS.fullmatch(listed):
        raise ValueError(f"{listed!r} is not values (bare or JSON-quoted, '?' for none) separated by ', '")
    texts = [None if item == "?" else json.loads(item) if item.startswith('"') else item
             for item in _LIST_ITEM.findall(listed)]
    labels = [json.loads(label) for label in re.findall(_JSON_STRING, named)]
    if not count == len(texts) == len(labels):
        raise ValueError(f"{count} value labels announced, {len(texts)} values and {len(labels)} labels listed")
    return texts, labels


def _center(box: Box) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


@register_tool
class Point(Tool):
    name = "Point"
    description = (
        "Find the pixel point (x, y) of a described element: a tick label, axis title, legend entry, value label, "
        "the chart title, 'the bar for X' (the centre of that bar and its ends), 'the value label of X' (the text "
        "printed at that bar's end or at a line's point over X, quoted; where none is printed, says so and gives the "
        "bar's ends or the point), 'the bar of S for X' / 'the value label of "
        "S for X' (series S's bar over category X, grouped or stacked, or its line's point), 'the top of the stack "
        "for X' or 'the point of S at X' (where the line of series S passes over category X). 'the value labels of "
        "\"A\" and \"B\"' lists several printed values in one reply, 'the value labels' every bar's, in order. "
        "Several equally good matches are all listed."
    )
    Args = PointArgs

    def run(self, image: Image.Image, args: PointArgs) -> ToolResult:
        lines = self.context.ocr(image)
        if not lines:
            raise ToolError(f"no text found in {args.image}, so nothing matches {args.description!r}",
                            argument="description")
        query = parse_description(args.description)
        if query.values is not None or query.all_values:
            return self._values_result(image, lines, query, args)
        if query.rank:
            return self._ranked_result(image, lines, *query.rank, args.description)
        if query.role:
            found = find_role(query.role, lines, image.width, image.height)
            if not found:
                raise ToolError(f"no {query.role} found in {args.image}", argument="description")
            return self._text_result([Match(ln, 1.0, ln.box) for ln in found])

        if query.stack_at is not None:
            return self._stack_result(image, lines, query, args.description)
        # "the value label of Men at 65" is the bar of series "Men" at 65 unless a text reads "Men at 65".
        if query.bar_at is not None and not any(normalize(ln.text) in (normalize(args.description), query.targets[0])
                                                for ln in lines):
            return self._series_bar_result(image, lines, query, args.description)

        if query.line_at is not None:
            exact = [m for m in best_matches(query.targets, lines, loose=0)
                     if normalize(m.line.text) == normalize(args.description)]
            if exact:  # a text that reads like a line query is still text
                return self._text_result(exact)
            return self._line_point_result(image, lines, query, args.description)

        # An exact match of the whole description is text, even when it reads like a bar query ("Snack bar").
        matches = best_matches(query.targets, lines, loose=query.loose)
        if not matches:
            probe = query.targets[0] if query.targets else ""
            near = ", ".join(json.dumps(t, ensure_ascii=False) for t in nearest_texts(probe, lines))
            raise ToolError(f"no text matches {args.description!r}; nearest texts: {near}", argument="description")
        whole_text = matches[0].score >= 1.0 and normalize(matches[0].line.text) == normalize(args.description)
        if query.bar and not whole_text:
            try:
                return self._bar_result(image, lines, matches, value=query.value)
            except NoBarError as no_bar:
                arr = as_rgb_array(image)
                bg = dominant_color(arr)
                raw = _ink(arr, bg)
                color = main_line_color(arr, raw, [ln.box for ln in lines if len(normalize(ln.text)) >= 2])
                if color is None:
                    raise
                return self._at_line_instead(image, arr, raw, lines, matches, color, None, query.value, no_bar)
        return self._text_result(matches)

    def _values_result(self, image: Image.Image, lines: list[TextLine], query: Query, args: PointArgs) -> ToolResult:
        """Several value labels in one reply, each read as "the value label of X" reads it (at a bar's end or a line's
        point; where none is printed, "?" and a note with the bar's ends or the point): ``Point: 2 value labels: 252,
        430 (for "Spain", "Italy")``. Every bar's, left to right (top to bottom), for "the value labels"."""
        if query.all_values:
            bars = labelled_bars(as_rgb_array(image), lines)
            if len(bars) < 2:
                raise ToolError(f"found {len(bars)} bar(s) with a label in {args.image}; {args.description!r} lists "
                                "the values printed at a bar chart's bars (on other charts ask for 'the value labels "
                                "of A and B')", argument="description")
            bars.sort(key=lambda b: b.region.box[0] if b.vertical else b.region.box[1])
            items = [b.label.text for b in bars]
        else:
            items = query.values or []
        if len(items) > MAX_VALUES:
            raise ToolError(f"{args.description!r} asks for {len(items)} values; at most {MAX_VALUES} in one call",
                            argument="description")
        notes: list[str] = []
        points: list[list[int]] = []
        texts: list[str | None] = []
        labels: list[str] = []
        for item in items:
            one = f"the value label of {json.dumps(item, ensure_ascii=False)}"
            try:
                result = self.run(image, PointArgs(image=args.image, description=one))
            except ToolError as exc:
                raise ToolError(f"{one}: {exc.message}", argument="description") from None
            kind, found = result.data.get("kind"), result.data.get("points", [])
            if len(found) != 1 or kind not in ("value", "line_value", "no_value"):
                raise ToolError(f"{one} is not one printed value ({result.text}); ask for it alone",
                                argument="description")
            label = result.data["labels"][0]
            if kind == "no_value":
                notes.append(result.text.split(" — ", 1)[1])
                texts.append(None)
            else:
                texts.append(result.data["matched"][0])
            points.append(list(found[0]))
            labels.append(label)
        return ToolResult(text=value_list_reply(texts, labels, notes),
                          data={"points": points, "matched": texts, "labels": labels, "kind": "values"})

    @staticmethod
    def _text_result(matches: list[Match]) -> ToolResult:
        points = [list(_center(m.box)) for m in matches]
        parts = [f"({x}, {y}) — {json.dumps(m.line.text, ensure_ascii=False)}" for (x, y), m in zip(points, matches)]
        return ToolResult(
            text=_reply(parts),
            data={
                "points": points,
                "boxes": [list(m.box) for m in matches],
                "matched": [m.line.text for m in matches],
                "kind": "text",
            },
        )

    @staticmethod
    def _bar_result(image: Image.Image, lines: list[TextLine], matches: list[Match], value: bool = False) -> ToolResult:
        arr = as_rgb_array(image)
        text_boxes = [ln.box for ln in lines]
        horizontal = [ln.box[3] - ln.box[1] for ln in lines if ln.box[2] - ln.box[0] >= ln.box[3] - ln.box[1]]
        line_height = float(np.median(horizontal)) if horizontal else 12.0
        found_bars = []
        for m in matches:
            label = m.label
            found = find_bar(arr, label, text_boxes, line_height)
            if found is not None:
                region, (sx, sy) = found
                found_bars.append((m, region, sy < label.box[1]))  # walked up: a vertical bar
        if not found_bars:
            where = ", ".join(f"{json.dumps(m.line.text, ensure_ascii=False)} at {list(_center(m.box))}"
                              for m in matches)
            raise NoBarError(f"found the label {where} but no bar next to it (walked up and right into the plot)",
                             argument="description")
        if value:
            return Point._value_result(lines, found_bars, line_height)
        points = [list(region.center) for _, region, _ in found_bars]
        boxes = [list(region.box) for _, region, _ in found_bars]
        labels = [m.line.text for m, _, _ in found_bars]
        parts = [
            f"({x}, {y}) — bar for {json.dumps(t, ensure_ascii=False)}, {bar_ends(b, v)}, box {b}"
            for (x, y), t, b, (_, _, v) in zip(points, labels, boxes, found_bars)
        ]
        return ToolResult(
            text=_reply(parts),
            data={"points": points, "boxes": boxes, "matched": labels,
                  "label_boxes": [list(m.box) for m, _, _ in found_bars], "kind": "bar"},
        )

    @staticmethod
    def _line_point_result(image: Image.Image, lines: list[TextLine], query: Query, description: str) -> ToolResult:
        """Where the line (of ``query.series``) passes over the category label ``query.line_at``: walk up from the
        label (its tick) to the first pixels of the series' colour, taken from its legend entry or, with no series
        named, the colour of the line drawn with the most ink (:func:`line_points`)."""
        arr = as_rgb_array(image)
        text_boxes = [ln.box for ln in lines if len(normalize(ln.text)) >= 2]
        line_height = _line_height(lines)
        bg = dominant_color(arr)
        raw = _ink(arr, bg)
        entry = None
        if query.series:
            entry = _series_entry(lines, query.series, description)
            color = _entry_color(arr, raw, bg, entry, text_boxes, line_height, "its line's")
        else:
            color = main_line_color(arr, raw, text_boxes)
            if color is None:
                raise ToolError(f"no plotted line found in the image for {description!r}", argument="description")
        labels = _category_labels(lines, query.line_at, description, entry)
        found = line_points(arr, lines, labels, color, entry, line_height, bg, raw)
        hexa = "#%02x%02x%02x" % color
        if not found:
            where = ", ".join(f"{json.dumps(m.line.text, ensure_ascii=False)} at {list(_center(m.box))}"
                              for m in labels)
            raise ToolError(f"found the label {where} but no point of the line ({hexa}) above it",
                            argument="description")
        series = f" for {json.dumps(entry.text, ensure_ascii=False)}" if entry else ""
        parts = [f"({x}, {y}) — the point of the line{series} at {json.dumps(m.line.text, ensure_ascii=False)}, "
                 f"at y={y}" for m, (x, y) in found]
        return ToolResult(
            text=_reply(parts),
            data={"points": [list(p) for _, p in found], "matched": [m.line.text for m, _ in found],
                  "series": entry.text if entry else None, "color": hexa, "kind": "line_point"},
        )

    def _reread(self, image: Image.Image, line: TextLine, bar: Box, vertical: bool, lines: list[TextLine],
                line_height: float) -> str:
        """The value ``line`` printed at ``bar``, read again on its own, cropped and upscaled as Crop does: small
        values read on the whole chart lose digits ("10" for "10.8"). A value set upright over a vertical bar (a
        box taller than wide, or OCR's pieces of it stacked in the bar's column) is read on the column beyond the
        bar's end, turned level. The second reading is taken only where it goes on from the first ("10" ->
        "10.8"; not "2122" where a neighbour's value crept in, nor a lone text that is not a number)."""
        x0, y0, x1, y1 = line.box
        bx0, by0, bx1, by1 = bar
        above = y1 <= by0 + 2
        pieces = [o for o in lines if o is not line and any(c.isdigit() for c in o.text)
                  and bx0 - 2 <= o.center[0] <= bx1 + 2 and 0 <= (y0 - o.box[3] if above else o.box[1] - y1) <= 4]
        inside = bx0 <= line.center[0] < bx1 and by0 <= line.center[1] < by1  # a stacked segment's own value
        upright = vertical and not inside and ((y1 - y0) > 1.1 * (x1 - x0) or bool(pieces))
        if upright:
            reach = int(6 * line_height)
            box = (max(0, min(bx0, x0) - 2), max(0, by0 - reach) if above else by1,
                   min(image.width, max(bx1, x1) + 2), by0 if above else min(image.height, by1 + reach))
        else:
            margin = max(3, (y1 - y0) // 2)
            box = (max(0, x0 - margin), max(0, y0 - margin), min(image.width, x1 + margin),
                   min(image.height, y1 + margin))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            return line.text
        view = image.crop(box)
        if upright:  # set reading upwards: a quarter turn clockwise lays it level, the bar's end at the left
            view = view.rotate(-90, expand=True)
        cfg = self.context.config
        view, _ = upscale_region(view, (0, 0, view.width, view.height), min_short_side=cfg.crop.min_short_side,
                                 max_upscale=cfg.crop.max_upscale, max_pixels=cfg.limits.max_image_pixels)
        found = [ln for ln in self.context.ocr(view) if any(c.isdigit() for c in ln.text)]
        if upright and found:  # the one nearest the bar's end
            found = [min(found, key=lambda ln: ln.box[0] if above else -ln.box[2])]
        if len(found) != 1:
            return line.text
        first, again = line.text.strip().lstrip("-"), found[0].text.strip()
        extends = again.lstrip("-").startswith(first) and _PRINTED_NUMBER.match(again) is not None
        return again if extends else line.text

    def _at_line_instead(self, image: Image.Image, arr: np.ndarray, raw: np.ndarray, lines: list[TextLine],
                         labels: list[Match], color: tuple[int, int, int], entry: TextLine | None, value: bool,
                         no_bar: NoBarError) -> ToolResult:
        """A bar was asked for at ``labels`` and none stands there: where a line of ``color`` passes over them, "the
        value label of [S for] X" is the value printed at its point (read again on its own, :meth:`_reread`), or
        where none is printed the point itself, said so ("no value printed at the point ..., at y=140");
        "the bar [of S] for X" stays an error, which says where the point is and how to ask for it. No point
        there either: ``no_bar``, the bar search's error. ``raw``: the image's ink (:func:`_ink`)."""
        line_height = _line_height(lines)
        found = line_points(arr, lines, labels, color, entry, line_height, dominant_color(arr), raw)
        if not found:
            raise no_bar
        name = f" of {json.dumps(entry.text, ensure_ascii=False)}" if entry else ""
        if not value:
            (m, (x, y)) = found[0]
            ask = f"the point of {entry.text} at {m.line.text}" if entry else f"the point at {m.line.text}"
            raise ToolError(f"{no_bar.message}; a line{name} passes over it at ({x}, {y}): ask for {ask!r}",
                            argument="description")
        exclude = [m.box for m in labels] + [m.line.box for m in labels] + ([entry.box] if entry else [])
        points, texts, cats, marks = [], [], [], []
        for m, (x, y) in found:
            text = text_at_point((x, y), lines, line_height, exclude)
            if text is not None:
                points.append(list(_center(text.box)))
                texts.append(self._reread(image, text, (x - 1, y - 1, x + 1, y + 1), False, lines, line_height))
                cats.append(m.line.text)
                marks.append([x, y])
        if not points:  # no value printed: the points, to read the value off the axis with a line through them
            parts = [f"({x}, {y}) — no value printed at the point of the line{name} at "
                     f"{json.dumps(m.line.text, ensure_ascii=False)}, at y={y}" for m, (x, y) in found]
            return ToolResult(text=_reply(parts),
                              data={"points": [[x, y] for _, (x, y) in found],
                                    "labels": [m.line.text for m, _ in found],
                                    "series": entry.text if entry else None, "color": "#%02x%02x%02x" % color,
                                    "kind": "no_value"})
        parts = [f"({x}, {y}) — {json.dumps(t, ensure_ascii=False)}, the value label of the point{name} at "
                 f"{json.dumps(c, ensure_ascii=False)}" for (x, y), t, c in zip(points, texts, cats)]
        return ToolResult(text=_reply(parts),
                          data={"points": points, "matched": texts, "labels": cats, "line_points": marks,
                                "series": entry.text if entry else None, "color": "#%02x%02x%02x" % color,
                                "kind": "line_value"})

    def _series_bar_result(self, image: Image.Image, lines: list[TextLine], query: Query,
                           description: str) -> ToolResult:
        """The bar of series ``query.series`` over category ``query.bar_at`` (grouped or stacked bars): its colour
        from the series' legend entry, then the block of that colour at the category's tick (:func:`find_series_bar`);
        with ``query.value`` the text printed at it, read again on its own (:meth:`_reread`), or where none is
        printed the bar and its ends, said so ("no value printed at the bar of ..., top at y=80, ...")."""
        entry = _series_entry(lines, query.series, description)
        labels = _category_labels(lines, query.bar_at, description, entry)
        arr = as_rgb_array(image)
        line_height = _line_height(lines)
        bg = dominant_color(arr)
        raw = _ink(arr, bg)
        text_boxes = [ln.box for ln in lines if len(normalize(ln.text)) >= 2]
        color = _entry_color(arr, raw, bg, entry, text_boxes, line_height, "its bars'")
        ink = _off_boxes(raw, [ln.box for ln in lines])
        found = []
        for m in labels:
            label = m.label
            tick = tick_x(ink, raw, label.box, line_height, slanted(arr, label.box, bg))
            hit = find_series_bar(arr, color, label, lines, tick, line_height, entry.box, raw)
            if hit is not None:
                found.append((m, label, *hit))
        hexa = "#%02x%02x%02x" % color
        if not found:
            where = ", ".join(f"{json.dumps(m.line.text, ensure_ascii=False)} at {list(_center(m.box))}"
                              for m in labels)
            no_bar = NoBarError(f"found the label {where} but no bar of the colour of "
                                f"{json.dumps(entry.text, ensure_ascii=False)} ({hexa}) at it", argument="description")
            return self._at_line_instead(image, arr, raw, lines, labels, color, entry, query.value, no_bar)
        name = json.dumps(entry.text, ensure_ascii=False)
        if query.value:
            points, texts, bar_boxes, cats = [], [], [], []
            for m, label, box, vertical in found:
                text = text_at_series_bar(box, vertical, [label.box, m.line.box, entry.box], lines, line_height)
                if text is not None:
                    points.append(list(_center(text.box)))
                    texts.append(self._reread(image, text, box, vertical, lines, line_height))
                    bar_boxes.append(list(box))
                    cats.append(m.line.text)
            if not points:  # no value printed: the bars and their ends, to read the value off the axis
                parts = [f"({x}, {y}) — no value printed at the bar of {name} for "
                         f"{json.dumps(m.line.text, ensure_ascii=False)}, {bar_ends(box, vertical)}, box {list(box)}"
                         for m, _, box, vertical in found for x, y in [_center(box)]]
                return ToolResult(text=_reply(parts),
                                  data={"points": [list(_center(b)) for _, _, b, _ in found],
                                        "boxes": [list(b) for _, _, b, _ in found],
                                        "labels": [m.line.text for m, _, _, _ in found], "series": entry.text,
                                        "color": hexa, "kind": "no_value"})
            parts = [f"({x}, {y}) — {json.dumps(t, ensure_ascii=False)}, the value label of the bar of {name} for "
                     f"{json.dumps(c, ensure_ascii=False)}" for (x, y), t, c in zip(points, texts, cats)]
            data = {"points": points, "matched": texts, "labels": cats, "bar_boxes": bar_boxes, "series": entry.text,
                    "color": hexa, "kind": "series_value"}
        else:
            points = [list(_center(box)) for _, _, box, _ in found]
            parts = [f"({x}, {y}) — bar of {name} for {json.dumps(m.line.text, ensure_ascii=False)}, "
                     f"{bar_ends(box, vertical)}, box {list(box)}"
                     for (x, y), (m, _, box, vertical) in zip(points, found)]
            data = {"points": points, "boxes": [list(box) for _, _, box, _ in found],
                    "matched": [m.line.text for m, _, _, _ in found], "series": entry.text, "color": hexa,
                    "kind": "series_bar"}
        return ToolResult(text=_reply(parts), data=data)

    @staticmethod
    def _stack_result(image: Image.Image, lines: list[TextLine], query: Query, description: str) -> ToolResult:
        """The top of the stacked bar over category ``query.stack_at``: its lowest segment found from the label
        (:func:`find_bar`), then up through the segments above it (:func:`stack_top`)."""
        labels = _category_labels(lines, query.stack_at, description)
        arr = as_rgb_array(image)
        bg = dominant_color(arr)
        line_height = _line_height(lines)
        text_boxes = [ln.box for ln in lines]
        found = []
        for m in labels:
            label = m.label
            hit = find_bar(arr, label, text_boxes, line_height)
            if hit is not None and hit[1][1] < label.box[1]:  # walked up: a vertical stack
                x0, _, x1, y1 = hit[0].box
                found.append((m, (x0, stack_top(arr, hit[0].box, bg), x1, y1)))
        if not found:
            where = ", ".join(f"{json.dumps(m.line.text, ensure_ascii=False)} at {list(_center(m.box))}"
                              for m in labels)
            raise ToolError(f"found the label {where} but no stacked bar standing over it", argument="description")
        points = [[(box[0] + box[2]) // 2, box[1]] for _, box in found]
        parts = [f"({x}, {y}) — the top of the stack for {json.dumps(m.line.text, ensure_ascii=False)}, top at "
                 f"y={y}, box {list(box)}" for (x, y), (m, box) in zip(points, found)]
        return ToolResult(text=_reply(parts),
                          data={"points": points, "boxes": [list(box) for _, box in found],
                                "matched": [m.line.text for m, _ in found], "kind": "stack_top"})

    @staticmethod
    def _ranked_result(image: Image.Image, lines: list[TextLine], k: int, top: bool, description: str) -> ToolResult:
        """The category label of the k-th highest (or lowest) bar: ``(x, y) — "X", the label of the highest bar``."""
        bars = labelled_bars(as_rgb_array(image), lines)
        if len(bars) < max(2, k):
            raise ToolError(f"found {len(bars)} bar(s) with a label in the image, too few to pick {description!r}",
                            argument="description")
        lengths = signed_lengths(bars)
        order = sorted(range(len(bars)), key=lambda i: -lengths[i] if top else lengths[i])
        pick = bars[order[k - 1]]
        tied = [bars[i] for i in order if i != order[k - 1] and abs(lengths[i] - lengths[order[k - 1]]) <= 1]
        x, y = _center(pick.label.box)
        what = normalize(description).removeprefix("the ").removeprefix("a ")
        text = f"Point: ({x}, {y}) — {json.dumps(pick.label.text, ensure_ascii=False)}, the label of the {what}"
        if tied:
            text += " (tied with " + ", ".join(json.dumps(b.label.text, ensure_ascii=False) for b in tied) + ")"
        return ToolResult(
            text=text,
            data={"points": [[x, y]], "boxes": [list(pick.label.box)], "matched": [pick.label.text],
                  "bar_boxes": [list(pick.region.box)], "kind": "ranked",
                  "ranking": [bars[i].label.text for i in order]},
        )

    @staticmethod
    def _value_result(lines: list[TextLine], found_bars: list, line_height: float) -> ToolResult:
        """The text printed at the end of each found bar: ``(x, y) — "12.5", the value label of the bar for "X"``;
        where no bar has one, the bars and their ends: ``(x, y) — no value printed at the bar for "X", top at y=80,
        bottom at y=400, box [...]``."""
        points, boxes, texts, labels, bar_boxes = [], [], [], [], []
        for m, region, vertical in found_bars:
            text = text_at_bar_end(region.box, m.box, lines, line_height, vertical)
            if text is None:
                continue
            points.append(list(_center(text.box)))
            boxes.append(list(text.box))
            texts.append(text.text)
            labels.append(m.line.text)
            bar_boxes.append(list(region.box))
        if not points:  # no value printed: the bars and their ends, to read the value off the axis
            parts = [f"({x}, {y}) — no value printed at the bar for {json.dumps(m.line.text, ensure_ascii=False)}, "
                     f"{bar_ends(r.box, vertical)}, box {list(r.box)}"
                     for m, r, vertical in found_bars for x, y in [r.center]]
            return ToolResult(text=_reply(parts),
                              data={"points": [list(r.center) for _, r, _ in found_bars],
                                    "boxes": [list(r.box) for _, r, _ in found_bars],
                                    "labels": [m.line.text for m, _, _ in found_bars], "kind": "no_value"})
        parts = [
            f"({x}, {y}) — {json.dumps(t, ensure_ascii=False)}, the value label of the bar for "
            f"{json.dumps(lab, ensure_ascii=False)}"
            for (x, y), t, lab in zip(points, texts, labels)
        ]
        return ToolResult(
            text=_reply(parts),
            data={"points": points, "boxes": boxes, "matched": texts, "labels": labels, "bar_boxes": bar_boxes,
                  "kind": "value"},
        )
