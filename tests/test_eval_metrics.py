"""ChartQA relaxed accuracy, exact match, number parsing, the metric registry and run aggregation."""

from __future__ import annotations

import pytest

from thinkimg.eval.metrics import (
    METRICS,
    aggregate,
    answer_seen,
    exact_match,
    get_metric,
    normalize_answer,
    parse_number,
    relaxed_match,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer> Blue. </answer>", "blue"),
        ('"Yes"', "yes"),
        ("  New   York  ", "new york"),
        ("“Red.”", "red"),
        ("thinking... <answer>a</answer> then <answer>B</answer>", "b"),
        ("<answer>7", "7"),
        (None, ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,234.5", 1234.5),
        ("1,234,567", 1234567.0),
        ("-3", -3.0),
        ("\u22123", -3.0),
        ("45%", 45.0),
        ("45.0 %", 45.0),
        ("$12", 12.0),
        ("-$12", -12.0),
        ("€ 3.50", 3.5),
        ("12.5 million", 12_500_000.0),
        ("1.2k", 1200.0),
        ("3M", 3_000_000.0),
        ("2 bn", 2e9),
        (".5", 0.5),
        ("5.", 5.0),
        ("<answer>42</answer>", 42.0),
    ],
)
def test_parse_number_accepts_chart_numbers(text, expected):
    assert parse_number(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text", ["five", "1,2", "1, 2", "3 to 5", "3m", "2 kg", "nan", "inf", "--3", "", "   ", None, "abc123"]
)
def test_parse_number_rejects_non_numbers(text):
    assert parse_number(text) is None


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("45%", "45"),
        ("45.0 %", "45"),
        ("45", "45%"),
        ("45%", "0.45"),  # one side with %: the /100 reading is also tried (see module docstring)
        ("45%", "45.0%"),
        ("4.96", "5"),
        ("5.25", "5"),  # exactly at the 5 % bound
        ("4.75", "5"),
        ("0", "0"),
        ("0.0", "0"),
        ("-3", "-3.1"),
        ("−3", "-3"),
        ("1,234", "1234"),
        ("1,234.5", "1234.5"),
        ("$12", "12"),
        ("12.5 million", "12500000"),
        ("3 million", "3"),  # gold drops the axis unit
        ("1.2k", "1200"),
        ("<answer>4.9</answer>", "5"),
        ("5.", "5"),
    ],
)
def test_relaxed_match_numeric_true(pred, gold):
    assert relaxed_match(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("4.7", "5"),
        ("5.3", "5"),
        ("0.0001", "0"),
        ("-0.0001", "0"),
        ("3", "-3"),
        ("-5", "5"),
        ("45%", "4.5"),
        ("3 million", "3 billion"),
        ("1,234", "12340"),
        ("five", "5"),  # number words are not parsed: exact match, which fails
        ("5", "five"),
    ],
)
def test_relaxed_match_numeric_false(pred, gold):
    assert not relaxed_match(pred, gold)


def test_percent_on_both_sides_compares_written_values():
    assert relaxed_match("45%", "46%")  # 45 vs 46: within 5 %
    assert not relaxed_match("45%", "46%", tolerance=0.01)
    assert not relaxed_match("0.45%", "45%")  # no /100 reading when both sides carry %


def test_relaxed_match_tolerance_is_relative_to_gold():
    assert relaxed_match("110", "100", tolerance=0.1)
    assert not relaxed_match("110", "100", tolerance=0.05)
    # relative to gold, not prediction: |100 - 95| = 5 <= 0.05 * 100 but 5 > 0.05 * 95
    assert relaxed_match("95", "100")
    assert not relaxed_match("100", "95")


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("Yes", "yes", True),
        ("Blue", "blue ", True),
        ("<answer>Blue.</answer>", "blue", True),
        ('"No"', "no", True),
        ("red", "reddish", False),
        ("reddish", "red", False),
        ("A, B", "a, b", True),
        ("A, B", "B, A", False),
        ("1, 2", "1, 2", True),
        ("1, 2", "1, 3", False),
        ("five", "Five", True),
    ],
)
def test_relaxed_match_non_numeric_is_exact(pred, gold, expected):
    assert relaxed_match(pred, gold) is expected


@pytest.mark.parametrize("pred", [None, "", "   ", "<answer></answer>", '""', "."])
@pytest.mark.parametrize("metric", [relaxed_match, exact_match])
def test_empty_predictions_never_match(metric, pred):
    assert not metric(pred, "5")
    assert not metric(pred, "")
    assert not metric(pred, None)


def test_exact_match_does_not_tolerate_numbers():
    assert exact_match("Yes.", "yes")
    assert exact_match("5", "5")
    assert not exact_match("4.96", "5")
    assert not exact_match("45%", "45")


def test_metric_registry():
    assert get_metric("relaxed_accuracy") is relaxed_match
    assert get_metric("exact_match") is exact_match
    assert set(METRICS) == {"relaxed_accuracy", "exact_match"}
    with pytest.raises(KeyError, match="relaxed_accuracy") as info:
        get_metric("f1")
    assert "f1" in str(info.value)


def test_aggregate_hand_made_records():
    def record(correct, kind, valid, calls, failures, answered):
        fields = {"correct": correct, "valid_format": valid, "tool_calls": calls, "tool_failures": failures}
        fields["answered"] = answered
        return fields | ({"question_type": kind} if kind is not None else {})

    records = [
        record(True, "human", True, 2, 0, True),
        record(False, "human", True, 3, 1, True),
        record(True, "augmented", False, 0, 0, True),
        record(False, None, False, 3, 2, False),
    ]
    result = aggregate(records)
    assert result["n"] == 4
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["by_type"] == {
        "augmented": {"n": 1, "accuracy": 1.0},
        "human": {"n": 2, "accuracy": 0.5},
    }
    assert result["valid_format_rate"] == pytest.approx(0.5)
    assert result["calls_per_episode"] == pytest.approx(2.0)
    assert result["tool_failure_rate"] == pytest.approx(3 / 8)
    assert result["answer_rate"] == pytest.approx(0.75)


@pytest.mark.parametrize("gold, replies, seen", [
    ("Nepal", ['Point: (377, 398) \u2014 "Nepal", the label of the lowest bar'], True),
    ("sep 1855", ['Point: (48, 495) \u2014 "Sep 1855", the label'], True),   # compared as answers are (case)
    ("1999-2004", ['"CO2 emissions, 1999\u20132004"'], True),                 # dashes unified
    ("27", ['"127" [10, 20, 40, 30]', '"27.5" [1, 2, 3, 4]'], False),         # not inside a longer number
    ("27", ['"127" [10, 20, 40, 30]', 'The y axis reads 27 at y=80.'], True),
    ("Nep", ['"Nepal"'], False),                                             # not inside a longer word
    ("", ['anything'], False),
    ("Nepal", [], False),
])
def test_answer_seen_finds_the_gold_whole_in_a_tool_reply(gold, replies, seen):
    assert answer_seen(gold, replies) is seen


def test_missed_seen_rate_counts_wrong_answers_whose_gold_a_tool_showed():
    records = [{"correct": True, "answer_seen": True}, {"correct": False, "answer_seen": True},
               {"correct": False, "answer_seen": False}, {"correct": False}]
    assert aggregate(records)["missed_seen_rate"] == pytest.approx(0.25)
    assert aggregate([])["missed_seen_rate"] is None


def test_aggregate_no_tool_calls_gives_zero_failure_rate():
    result = aggregate([{"correct": True, "valid_format": True, "tool_calls": 0, "tool_failures": 0, "answered": True}])
    assert result["tool_failure_rate"] == 0.0
    assert result["calls_per_episode"] == 0.0
    assert result["accuracy"] == 1.0
    assert result["by_type"] == {}


def test_aggregate_empty():
    result = aggregate([])
    assert result["n"] == 0
    assert result["by_type"] == {}
    for key in ("accuracy", "valid_format_rate", "calls_per_episode", "tool_failure_rate", "answer_rate"):
        assert result[key] is None


def test_dashes_and_line_breaks_do_not_change_a_text_answer():
    assert relaxed_match("Exports, 1974-1980", "Exports,\n1974\u20131980")
    assert exact_match("a \u2014 b", "A - b")
    assert not relaxed_match("1974-1980", "1974-1981")
