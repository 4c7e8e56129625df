"""Band math with a whitelisted AST evaluator: never ``eval``/``exec``, no attribute access, no subscripts, no
strings, no lambdas or comprehensions, calls only to a fixed set of math functions, bounded exponents and size.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from orbitcube.pipeline.errors import ExpressionError

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_EXPONENT = 16.0
MAX_CONSTANT = 1e12

FUNCTIONS = {
    "sqrt": np.sqrt,
    "abs": np.abs,
    "log": np.log,
    "log10": np.log10,
    "exp": np.exp,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arctan": np.arctan,
    "minimum": np.minimum,
    "maximum": np.maximum,
    "clip": lambda x, lo, hi: np.clip(x, lo, hi),
    "where": lambda c, a, b: xr.where(c, a, b) if isinstance(c, xr.DataArray) else np.where(c, a, b),
}
#: how many arguments each function takes: an extra argument would become numpy's ``out=`` and overwrite a band
ARITY = {
    "sqrt": 1,
    "abs": 1,
    "log": 1,
    "log10": 1,
    "exp": 1,
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "arctan": 1,
    "minimum": 2,
    "maximum": 2,
    "clip": 3,
    "where": 3,
}
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_CMPOPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
ALLOWED = (
    "numbers, band and constant names, + - * / **, comparisons < <= > >=, and the functions "
    + ", ".join(sorted(FUNCTIONS))
)


def parse_expression(expression: str) -> ast.Expression:
    """Parse and check ``expression``; raise ExpressionError naming what is refused and what is allowed."""
    if not isinstance(expression, str):
        raise ExpressionError(f"expression must be a string, got {type(expression).__name__}")
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(f"expression is {len(expression)} characters long; the limit is {MAX_LENGTH}")
    try:
        tree = ast.parse(expression.replace("^", "**"), mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise ExpressionError(
            f"cannot parse expression {expression!r}: {exc.msg if hasattr(exc, 'msg') else exc}"
        ) from None
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        raise ExpressionError(f"expression has {len(nodes)} syntax nodes; the limit is {MAX_NODES}")
    _check(tree.body, 0)
    return tree


def _check(node: ast.AST, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"expression nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError(f"constant {node.value!r} is not a number; allowed: {ALLOWED}")
        if abs(node.value) > MAX_CONSTANT:
            raise ExpressionError(f"constant {node.value!r} exceeds {MAX_CONSTANT:g}")
        return
    if isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise ExpressionError(f"name {node.id!r} is refused (names starting with '_' are never allowed)")
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise ExpressionError(f"operator {type(node.op).__name__} is refused; allowed: {ALLOWED}")
        if isinstance(node.op, ast.Pow):
            exp = node.right
            if isinstance(exp, ast.UnaryOp) and isinstance(exp.op, ast.USub | ast.UAdd):
                exp = exp.operand
            if (
                not isinstance(exp, ast.Constant)
                or not isinstance(exp.value, int | float)
                or abs(exp.value) > MAX_EXPONENT
            ):
                raise ExpressionError(
                    f"exponents must be numbers within +-{MAX_EXPONENT:g}; got {ast.unparse(node.right)!r}"
                )
        _check(node.left, depth + 1)
        _check(node.right, depth + 1)
        return
    if isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNARY:
            raise ExpressionError(f"operator {type(node.op).__name__} is refused; allowed: {ALLOWED}")
        _check(node.operand, depth + 1)
        return
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _CMPOPS:
            raise ExpressionError(f"comparison {ast.unparse(node)!r} is refused; allowed: single < <= > >=")
        _check(node.left, depth + 1)
        _check(node.comparators[0], depth + 1)
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(
                f"call to {name!r} is refused; allowed functions: {', '.join(sorted(FUNCTIONS))}"
            )
        if node.keywords:
            raise ExpressionError(f"keyword arguments in {ast.unparse(node)!r} are refused")
        want = ARITY[node.func.id]
        if len(node.args) != want:
            raise ExpressionError(
                f"{node.func.id}() takes {want} argument{'s' if want > 1 else ''}, got {len(node.args)} in "
                f"{ast.unparse(node)!r}"
            )
        for a in node.args:
            _check(a, depth + 1)
        return
    raise ExpressionError(f"{type(node).__name__} {ast.unparse(node)!r} is refused; allowed: {ALLOWED}")


def evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate a checked expression with ``variables`` (arrays or numbers) by walking its syntax tree."""
    tree = parse_expression(expression)

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            # numbers enter as Python floats: never arbitrary-precision integers, so (9**16)**16... overflows
            # at once instead of building million-digit ints; a (weak) Python float keeps float32 bands float32
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in variables:
                raise ExpressionError(
                    f"unknown name {node.id!r} in {expression!r}; available: {sorted(variables)}"
                )
            value = variables[node.id]
            if not isinstance(value, xr.DataArray | np.ndarray | int | float | np.number):
                raise ExpressionError(
                    f"name {node.id!r} is bound to a {type(value).__name__}, not a band or number"
                )
            return value
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Compare):
            return _CMPOPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        if isinstance(node, ast.Call):
            return FUNCTIONS[node.func.id](*(ev(a) for a in node.args))  # type: ignore[union-attr]
        raise ExpressionError(f"unexpected node {type(node).__name__}")  # unreachable after parse_expression

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        try:
            return ev(tree.body)
        except OverflowError:
            raise ExpressionError(
                f"expression {expression!r} overflows when its constants are combined; use smaller numbers"
            ) from None
        except ZeroDivisionError:
            raise ExpressionError(f"expression {expression!r} divides a constant by zero") from None


def band_math(ds: xr.Dataset, expression: str, name: str = "band_math", **constants: float) -> xr.DataArray:
    """Evaluate ``expression`` (e.g. ``"(nir - red) / (nir + red)"``) over the variables of ``ds``.

    Names refer to data variables of ``ds`` or to ``constants``; the result keeps the dims (time, y, x), coords and
    CRS of the inputs, is float32, and is named ``name``. Lazy on dask-backed data.
    """
    variables: dict[str, Any] = {**{str(k): ds[k] for k in ds.data_vars}, **constants}
    out = evaluate(expression, variables)
    if not isinstance(out, xr.DataArray):
        raise ExpressionError(
            f"expression {expression!r} uses no band of the cube; bands: {sorted(map(str, ds.data_vars))}"
        )
    out = out.astype("float32").rename(name)
    out.attrs = {"long_name": name, "expression": expression, "units": "1", "grid_mapping": "spatial_ref"}
    return out


__all__ = [
    "ALLOWED",
    "ARITY",
    "FUNCTIONS",
    "MAX_CONSTANT",
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_LENGTH",
    "MAX_NODES",
    "band_math",
    "evaluate",
    "parse_expression",
]
