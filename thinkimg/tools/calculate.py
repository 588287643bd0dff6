"""Calculate: exact arithmetic on numbers read off a chart (a difference, a total, an average).

A chart reader who has read two values with OCR or Point still has to subtract them; a small model is bad at
that and good at copying, so the arithmetic is a tool: the model writes the expression from the numbers it read,
the tool evaluates it and states ``expression = result``. The expression is parsed with :mod:`ast` and only
numbers, ``+ - * / // % **``, parentheses and ``abs round min max sqrt sum mean`` are evaluated — never ``eval``.
``sum`` and ``mean`` take the numbers as arguments (``mean(252, 430)``): a list Point replies with copies in as it
stands. The image argument is accepted like every tool's and not looked at.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from PIL import Image
from pydantic import Field

from thinkimg.tools.base import Tool, ToolArgs, ToolError, ToolResult
from thinkimg.tools.registry import register_tool

#: Longest expression accepted (characters).
MAX_EXPRESSION_CHARS = 300
#: Largest magnitude of any operand or intermediate result; beyond it the call is refused, not rounded.
MAX_MAGNITUDE = 1e15
#: Largest exponent magnitude for ``**``.
MAX_EXPONENT = 64
#: Decimals a non-integer result is stated with (trailing zeros dropped).
RESULT_DECIMALS = 4

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[float], float]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def _round(value: float, digits: float = 0) -> float:
    if digits != int(digits) or not 0 <= digits <= 10:
        raise ToolError("round(x, n): n must be a whole number from 0 to 10", argument="expression")
    return round(value, int(digits))


def _sqrt(value: float) -> float:
    if value < 0:
        raise ToolError(f"sqrt of a negative number ({format_result(value)})", argument="expression")
    return math.sqrt(value)


#: Functions by name: (function, fewest arguments, most arguments or None for any number).
FUNCTIONS: dict[str, tuple[Callable[..., float], int, int | None]] = {
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (min, 1, None),
    "max": (max, 1, None),
    "sqrt": (_sqrt, 1, 1),
    "sum": (lambda *xs: math.fsum(xs), 1, None),
    "mean": (lambda *xs: math.fsum(xs) / len(xs), 1, None),
}


class CalculateArgs(ToolArgs):
    expression: str = Field(
        description="An arithmetic expression with plain numbers (no units, no thousands separators), "
                    "e.g. 'abs(257 - 44)' or 'mean(12.5, 3, 8)'. Allowed: + - * / // % ** ( ) and "
                    "abs, round, min, max, sqrt, sum, mean (of their arguments: 'sum(4, 2.5, 7)')."
    )


def format_result(value: float) -> str:
    """A result as stated: integers without a decimal point, others with at most :data:`RESULT_DECIMALS` decimals."""
    if value == int(value):
        return str(int(value))
    text = f"{value:.{RESULT_DECIMALS}f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{value:.{RESULT_DECIMALS}g}"


def normalise(expression: str) -> str:
    """``expression`` with its whitespace runs (newlines too) made single spaces, as it is evaluated and stated."""
    return " ".join(expression.split())


def evaluate(expression: str) -> float:
    """The value of an arithmetic ``expression``; a :class:`ToolError` on ``expression`` says what is wrong and
    where (column, 1-based)."""
    text = normalise(expression)
    if not text:
        raise ToolError("argument 'expression' is empty; write e.g. '257 - 44'", argument="expression")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"argument 'expression' is {len(text)} characters long; at most {MAX_EXPRESSION_CHARS}",
                        argument="expression")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        column = f" at column {exc.offset}" if exc.offset else ""
        raise ToolError(f"argument 'expression' {text!r} is not arithmetic{column}: {exc.msg}",
                        argument="expression") from None
    return _eval(tree.body, text)


def _eval(node: ast.AST, text: str) -> float:
    where = f" at column {node.col_offset + 1}" if hasattr(node, "col_offset") else ""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _checked(float(node.value), text)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, text), _eval(node.right, text)
        if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
            raise ToolError(f"division by zero{where} in {text!r}", argument="expression")
        if isinstance(node.op, ast.Pow):
            if abs(right) > MAX_EXPONENT:
                raise ToolError(f"exponent {format_result(right)}{where} is larger than {MAX_EXPONENT}",
                                argument="expression")
            if left < 0 and right != int(right):
                raise ToolError(f"a negative number to a fractional power{where} in {text!r}",
                                argument="expression")
            if left == 0 and right < 0:
                raise ToolError(f"division by zero{where} in {text!r} (0 to a negative power)",
                                argument="expression")
        try:
            return _checked(_BINARY[type(node.op)](left, right), text)
        except OverflowError:
            raise ToolError(f"the result{where} is too large (more than {MAX_MAGNITUDE:g})",
                            argument="expression") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, text))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        function, fewest, most = FUNCTIONS[node.func.id]
        if node.keywords:
            raise ToolError(f"{node.func.id}(){where} takes no keyword arguments", argument="expression")
        n = len(node.args)
        if n < fewest or (most is not None and n > most):
            wanted = str(fewest) if most == fewest else f"{fewest} to {most}" if most else f"at least {fewest}"
            raise ToolError(f"{node.func.id}(){where} takes {wanted} argument(s), got {n}", argument="expression")
        return _checked(float(function(*(_eval(a, text) for a in node.args))), text)
    if isinstance(node, ast.Tuple):
        raise ToolError(f"a comma{where} outside a function call in {text!r}: write numbers without thousands "
                        "separators (1234, not 1,234)", argument="expression")
    if isinstance(node, ast.Name) or (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        name = node.id if isinstance(node, ast.Name) else node.func.id
        raise ToolError(f"unknown name {name!r}{where} in {text!r}: only numbers and the functions "
                        f"{', '.join(FUNCTIONS)} are allowed", argument="expression")
    snippet = ast.get_source_segment(text, node) or type(node).__name__
    raise ToolError(f"{snippet!r}{where} is not allowed in an expression: only numbers, + - * / // % **, "
                    f"parentheses and {', '.join(FUNCTIONS)}", argument="expression")


def _checked(value: float, text: str) -> float:
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ToolError(f"{text!r} gives a number too large to state (more than {MAX_MAGNITUDE:g})",
                        argument="expression")
    return value


@register_tool
class Calculate(Tool):
    name = "Calculate"
    description = (
        "Evaluate an arithmetic expression over numbers you have read from the chart (a difference, a total, "
        "an average) and state the result. Does not look at the image."
    )
    Args = CalculateArgs

    def run(self, image: Image.Image, args: CalculateArgs) -> ToolResult:
        value = evaluate(args.expression)
        expression = normalise(args.expression)
        result = format_result(value)
        return ToolResult(text=f"{expression} = {result}", data={"expression": expression, "value": value,
                                                                  "result": result})
