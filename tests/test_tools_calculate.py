"""Calculate: arithmetic from an ast walk (never eval), results stated exactly, bad expressions named and placed."""

from __future__ import annotations

import pytest
from PIL import Image

from thinkimg.config import ToolsConfig
from thinkimg.tools import InProcessToolClient, ToolError
from thinkimg.tools.calculate import MAX_EXPRESSION_CHARS, evaluate, format_result

BLANK = Image.new("RGB", (8, 8), "white")


@pytest.fixture(scope="module")
def client():
    return InProcessToolClient(ToolsConfig(tools=["Calculate"]))


@pytest.mark.parametrize("expression, stated", [
    ("abs(257 - 44)", "213"),
    ("abs(44 - 257)", "213"),
    ("1200 + 30.5 + -4", "1226.5"),
    ("(12.5 + 3 + 8) / 3", "7.8333"),
    ("(1 + 2 + 3) / 3", "2"),
    ("7 // 2 + 7 % 2 + 2 ** 3", "12"),
    ("max(3, 9.5, -1) - min(3, 9.5, -1)", "10.5"),
    ("round(2.71828, 2) * 100", "272"),
    ("sqrt(16) + -(-1)", "5"),
    ("sum(406, 489, 561, 603)", "2059"),
    ("mean(430, 252, 240, 276)", "299.5"),
    ("mean(0.053, 0.223, 0.114)", "0.13"),
    ("sum(0.1, 0.2) * 10", "3"),
    ("0.00001 * 3", "3e-05"),
    ("  1 +\n 2 ", "3"),
])
def test_results_are_stated_after_the_expression(client, expression, stated):
    result = client.call("Calculate", BLANK, {"expression": expression})
    assert result.text == f"{' '.join(expression.split())} = {stated}"
    assert result.data["result"] == stated and result.images == []
    assert abs(result.data["value"] - float(stated)) <= 1e-4 * max(1.0, abs(float(stated)))


def test_format_result_keeps_integers_whole_and_four_decimals_at_most():
    assert format_result(213.0) == "213"
    assert format_result(-4.0) == "-4"
    assert format_result(7.833333) == "7.8333"
    assert format_result(0.1 + 0.2) == "0.3"


@pytest.mark.parametrize("expression, says", [
    ("", "empty"),
    ("1,234 + 5", "thousands separators"),
    ("__import__('os').system('true')", "not allowed"),
    ("__import__('os')", "unknown name '__import__'"),
    ("x + 1", "unknown name 'x' at column 1"),
    ("2 + (3 *", "not arithmetic"),
    ("1 / (2 - 2)", "division by zero at column 1"),
    ("5 % 0", "division by zero"),
    ("2 ** 1000", "exponent 1000"),
    ("9 ** 60", "too large"),
    ("1e16 + 1", "too large"),
    ("(-8) ** 0.5", "fractional power"),
    ("sqrt(-1)", "negative"),
    ("mean()", "at least 1 argument"),
    ("abs(1, 2)", "abs() at column 1 takes 1 argument(s), got 2"),
    ("round(1.5, 2.5)", "whole number"),
    ("max(1, key=2)", "keyword"),
    ("'12' + 1", "not allowed"),
    ("True + 1", "not allowed"),
    ("[1, 2][0]", "not allowed"),
    ("1 if 2 else 3", "not allowed"),
    ("(1).real", "not allowed"),
])
def test_bad_expressions_are_refused_with_what_and_where(client, expression, says):
    with pytest.raises(ToolError) as info:
        client.call("Calculate", BLANK, {"expression": expression})
    assert info.value.argument == "expression"
    assert info.value.message.startswith("Calculate:")
    assert says in info.value.message


def test_length_and_argument_checks(client):
    with pytest.raises(ToolError, match=f"at most {MAX_EXPRESSION_CHARS}"):
        evaluate("1 + " * 100 + "1")
    with pytest.raises(ToolError, match="'expression'.*Field required"):
        client.call("Calculate", BLANK, {})
    with pytest.raises(ToolError, match="allowed arguments: image, expression"):
        client.call("Calculate", BLANK, {"expression": "1", "precision": 3})
