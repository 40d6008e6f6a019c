"""A small, safe filter language over a table's columns, e.g.
`task == "slope" and not correct and nats > 1.5`, `len(prompt) > 40 or contains(completion, "slope")`,
`answer in ["3", "5"]`.

Parsed with Python's `ast` and evaluated column-wise with pandas; only these are allowed: column names, string /
number / bool constants, lists of constants, comparisons (== != < <= > >= in, not in), and / or / not, + - * /,
and the functions `len(column)`, `contains(column, "text")` (case-insensitive), `isnull(column)`.
Anything else (attributes, other calls, subscripts) is a FilterError naming what is not allowed.

Expressions arrive in shared URLs, so the work is bounded before anything is evaluated: at most MAX_CHARS
characters, MAX_DEPTH levels of nesting, texts of at most MAX_TEXT characters, numbers of magnitude at most
MAX_NUMBER, lists of at most MAX_LIST items, and arithmetic on numbers only (no `"a" * 9999999999`)."""
from __future__ import annotations

import ast
import operator

import pandas as pd


class FilterError(ValueError):
    """An expression that cannot be used; the message is written for the page."""


_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_FUNCTIONS = {"len": 1, "contains": 2, "isnull": 1}
MAX_CHARS = 2000
MAX_DEPTH = 40
MAX_TEXT = 500
MAX_NUMBER = 1e15
MAX_LIST = 200


def _check_size(tree: ast.AST) -> None:
    """FilterError when the parsed expression nests deeper than MAX_DEPTH or holds an oversized constant or list
    (walked without recursion, so a hostile tree cannot exhaust the stack)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FilterError(f"the expression nests deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and len(node.value) > MAX_TEXT:
            raise FilterError(f"a text longer than {MAX_TEXT} characters")
        number = isinstance(node, ast.Constant) and isinstance(node.value, (int, float))
        if number and not isinstance(node.value, bool) and not abs(node.value) <= MAX_NUMBER:
            raise FilterError(f"a number larger than {MAX_NUMBER:.0e}")
        if isinstance(node, (ast.List, ast.Tuple)) and len(node.elts) > MAX_LIST:
            raise FilterError(f"a list of more than {MAX_LIST} items")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _arithmetic(node: ast.BinOp, frame: pd.DataFrame):
    """+ - * / on numbers and numeric columns only (text or lists would multiply into unbounded memory)."""
    operands = [_evaluate(node.left, frame), _evaluate(node.right, frame)]
    for value in operands:
        numeric = (pd.api.types.is_numeric_dtype(value) if isinstance(value, pd.Series)
                   else isinstance(value, (int, float)))
        if not numeric:
            raise FilterError(f"`{ast.unparse(node)}`: arithmetic needs numbers")
    return _ARITHMETIC[type(node.op)](*operands)


def _call(node: ast.Call, frame: pd.DataFrame):
    name = node.func.id if isinstance(node.func, ast.Name) else None
    if name not in _FUNCTIONS or node.keywords or len(node.args) != _FUNCTIONS[name]:
        allowed = ", ".join(f"{f}()" for f in _FUNCTIONS)
        raise FilterError(f"only {allowed} may be called (with {', '.join(map(str, _FUNCTIONS.values()))} "
                          "arguments)")
    column = _evaluate(node.args[0], frame)
    if name == "isnull":
        return pd.Series(column).isna()
    text = pd.Series(column).astype(str)
    if name == "len":
        return text.str.len()
    needle = _evaluate(node.args[1], frame)
    if not isinstance(needle, str):
        raise FilterError("contains(column, text) needs a quoted text as its second argument")
    return text.str.contains(needle, case=False, regex=False)


def _compare(node: ast.Compare, frame: pd.DataFrame):
    result, left = None, _evaluate(node.left, frame)
    for op, comparator in zip(node.ops, node.comparators):
        right = _evaluate(comparator, frame)
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, list):
                raise FilterError("`in` needs a list, e.g. task in [\"slope\", \"arithmetic\"]")
            step = pd.Series(left).isin(right) if isinstance(left, pd.Series) else left in right
            step = ~step if isinstance(op, ast.NotIn) else step
        elif type(op) in _COMPARE:
            step = _COMPARE[type(op)](left, right)
        else:
            raise FilterError(f"comparison `{type(op).__name__}` is not allowed")
        result = step if result is None else result & step
        left = right
    return result


def _evaluate(node: ast.AST, frame: pd.DataFrame):
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, frame)
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in frame.columns:
            return frame[node.id]
        raise FilterError(f"no column `{node.id}`; columns: {', '.join(map(str, frame.columns))}")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_evaluate(element, frame) for element in node.elts]
    if isinstance(node, ast.BoolOp):
        values = [_as_bool(_evaluate(value, frame)) for value in node.values]
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        result = values[0]
        for value in values[1:]:
            result = combine(result, value)
        return result
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~_as_bool(_evaluate(node.operand, frame))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand, frame)
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        return _arithmetic(node, frame)
    if isinstance(node, ast.Compare):
        return _compare(node, frame)
    if isinstance(node, ast.Call):
        return _call(node, frame)
    raise FilterError(f"`{ast.unparse(node)}` is not allowed here (see the filter help)")


def _as_bool(value):
    if isinstance(value, pd.Series):
        return value.fillna(False).astype(bool)
    return bool(value)


def filter_rows(frame: pd.DataFrame, expression: str) -> pd.DataFrame:
    """The rows of `frame` for which `expression` is true; an empty expression keeps every row."""
    if not expression.strip():
        return frame
    if len(expression) > MAX_CHARS:
        raise FilterError(f"the expression is longer than {MAX_CHARS:,} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise FilterError(f"not an expression ({err.msg})") from None
    except (RecursionError, MemoryError):
        raise FilterError(f"the expression nests deeper than {MAX_DEPTH} levels") from None
    _check_size(tree)
    try:
        result = _evaluate(tree, frame)
    except TypeError as err:
        raise FilterError(f"cannot compare these values ({err})") from None
    if not isinstance(result, pd.Series) or len(result) != len(frame):
        raise FilterError("the expression must say something about each row, e.g. nats > 1")
    return frame[_as_bool(result).to_numpy()]
