"""CQL2 property filters: text or JSON -> CQL2 JSON (parsed and validated by the ``cql2`` package) -> a
pyarrow compute expression evaluated on the stac-geoparquet index columns.

Supported (the CQL2 "basic" subset plus a little): ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, ``and``, ``or``,
``not``, ``in``, ``between``, ``like``, ``isNull``; literals are numbers, strings, booleans, ``TIMESTAMP(...)``
and ``DATE(...)``. Properties are item properties (``eo:cloud_cover``, ``platform``; a ``properties.`` prefix
is accepted) or ``id``, ``collection``, ``datetime``. A property that some items lack is null for them, so
comparisons with it are false (as in SQL); a property that no item of a local catalog has is an error (a typo,
most likely; see :func:`check_properties`). Spatial and temporal operators are not supported: use ``bbox``/``intersects`` and
``datetime`` of :func:`orbitcube.catalog.query.search`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from orbitcube.catalog.errors import CatalogError

_CMP = {
    "=": "equal",
    "<>": "not_equal",
    "<": "less",
    "<=": "less_equal",
    ">": "greater",
    ">=": "greater_equal",
}
_ALIASES = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "lte": "<=", "gt": ">", "ge": ">=", "gte": ">="}


#: longest filter accepted (characters of CQL2 text or JSON): the parser is recursive native code without limits
MAX_FILTER_LENGTH = 20_000
#: deepest nesting accepted: parentheses plus prefix operators (NOT, unary minus) in text, containers in JSON
MAX_FILTER_DEPTH = 50
_TEXT_TOKENS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\(|\)|\bnot\b|[-+]|[^\s()'\"+-]+", re.IGNORECASE
)


def _text_depth(text: str) -> int:
    """Nesting depth of CQL2 text: open parentheses plus runs of prefix operators (``NOT``, ``-``, ``+``), outside
    string literals. Linear in the text, never recursive."""
    levels, run, deepest = [0], 0, 0
    for tok in _TEXT_TOKENS.findall(text):
        if tok == "(":
            levels.append(levels[-1] + run + 1)
            run = 0
        elif tok == ")":
            if len(levels) > 1:
                levels.pop()
            run = 0
        elif tok in "-+" or tok.lower() == "not":
            run += 1
        else:
            run = 0
        deepest = max(deepest, levels[-1] + run)
    return deepest


def _json_depth(value: Any) -> int:
    """Container nesting depth of a JSON document (dict/list) or of JSON text (brackets outside strings)."""
    if isinstance(value, str):
        depth = deepest = 0
        for tok in re.findall(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', value):
            if tok in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif tok in "]}":
                depth -= 1
        return deepest
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth > 4 * MAX_FILTER_DEPTH:
                break
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def check_filter_size(value: str | dict) -> None:
    """CatalogError when a filter is longer than :data:`MAX_FILTER_LENGTH` characters or nests deeper than
    :data:`MAX_FILTER_DEPTH` levels (CQL2 text) or ``4 * MAX_FILTER_DEPTH`` containers (CQL2 JSON), checked
    before any parser sees it: the cql2 parser overflows its native stack (a segfault) on deep nesting."""
    text = (
        json.dumps(value, default=str)
        if isinstance(value, dict) and _json_depth(value) <= 4 * MAX_FILTER_DEPTH
        else value
    )
    if isinstance(text, str) and len(text) > MAX_FILTER_LENGTH:
        raise CatalogError(
            f"filter is {len(text)} characters long; the limit is {MAX_FILTER_LENGTH}: split the search, or "
            "use collections/ids/bbox/datetime arguments instead of long OR lists"
        )
    is_json = isinstance(value, dict) or value.lstrip().startswith("{")
    depth, limit = (
        (_json_depth(value), 4 * MAX_FILTER_DEPTH) if is_json else (_text_depth(value), MAX_FILTER_DEPTH)
    )
    if depth > limit:
        what = "nested JSON objects/lists" if is_json else "nested parentheses/NOT/minus signs"
        raise CatalogError(
            f"filter nests {depth} levels deep ({what}); the limit is {limit}: remove redundant parentheses "
            "and double negations"
        )


def parse_filter(value: str | dict | None) -> dict | None:
    """CQL2 text or JSON (dict or JSON string) -> validated CQL2 JSON dict; CatalogError naming the problem
    (also for filters over the length and depth limits of :func:`check_filter_size`)."""
    if value is None:
        return None
    import cql2

    if not isinstance(value, str | dict):
        raise CatalogError(
            f"filter must be CQL2 text or a CQL2 JSON object, got {type(value).__name__}; "
            'e.g. "eo:cloud_cover < 20"'
        )
    check_filter_size(value)
    try:
        if isinstance(value, dict):
            expr = cql2.parse_json(json.dumps(value, default=str))  # dates etc. as their ISO text
        elif value.lstrip().startswith("{"):
            expr = cql2.parse_json(value)
        else:
            expr = cql2.parse_text(value)
        expr.validate()
        return expr.to_json()
    except (cql2.ParseError, cql2.ValidationError, ValueError) as exc:
        raise CatalogError(
            f"filter {value!r} is not valid CQL2 ({' '.join(str(exc).split())}); e.g. \"eo:cloud_cover < 20 AND platform = 'sentinel-2a'\""
        ) from exc


def filter_text(value: str | dict) -> str:
    """CQL2 text of a filter (for messages and for servers that only accept text)."""
    import cql2

    return cql2.parse_json(json.dumps(parse_filter(value))).to_text()


def filter_properties(cql2_json: Any, *, null_checks: bool = True) -> list[str]:
    """Names of the properties a CQL2 JSON filter reads (``properties.`` prefix removed), in first-use order;
    without those only tested by ``isNull`` when ``null_checks`` is False."""
    out: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if not null_checks and str(node.get("op", "")).lower() == "isnull":
                return
            if isinstance(node.get("property"), str):
                out[node["property"].removeprefix("properties.")] = None
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(cql2_json)
    return list(out)


def check_properties(cql2_json: dict, schema: pa.Schema) -> None:
    """CatalogError when the filter compares a property that no item of the index has (most likely a typo);
    ``isNull`` tests of absent properties are allowed."""
    unknown = [n for n in filter_properties(cql2_json, null_checks=False) if n not in schema.names]
    if unknown:
        known = sorted(n for n in schema.names if n not in ("assets", "links", "geometry", "bbox", "type"))
        raise CatalogError(
            f"filter property {unknown[0]!r} is not a property of any item here; check the spelling "
            f"(properties: {', '.join(known)}), or test its absence with '{unknown[0]} IS NULL'"
        )


def _column(name: str, schema: pa.Schema) -> Any:
    if name.startswith("properties."):
        name = name[len("properties.") :]
    if name in schema.names:
        return pc.field(name)
    return None


def _literal(value: Any) -> Any:
    if isinstance(value, dict):
        if "timestamp" in value:
            t = dt.datetime.fromisoformat(value["timestamp"].replace("Z", "+00:00"))
            return pa.scalar(t if t.tzinfo else t.replace(tzinfo=dt.UTC), pa.timestamp("us", tz="UTC"))
        if "date" in value:
            t = dt.datetime.combine(dt.date.fromisoformat(value["date"]), dt.time(), dt.UTC)
            return pa.scalar(t, pa.timestamp("us", tz="UTC"))
        raise CatalogError(
            f"filter literal {value!r} is not supported; use numbers, strings, TIMESTAMP or DATE"
        )
    return value


def to_expression(node: Any, schema: pa.Schema) -> pc.Expression:
    """A CQL2 JSON node as a pyarrow compute expression over an index table with ``schema``; always boolean
    with nulls meaning "no match"."""
    expr = _expr(node, schema)
    if not isinstance(expr, pc.Expression):
        return pc.scalar(bool(expr))
    return expr


def _arg(node: Any, schema: pa.Schema) -> Any:
    if isinstance(node, dict) and "property" in node:
        col = _column(node["property"], schema)
        return col if col is not None else pc.scalar(None)
    if isinstance(node, dict) and "op" in node:
        return _expr(node, schema)
    return pc.scalar(_literal(node))


def _expr(node: Any, schema: pa.Schema) -> pc.Expression:
    if isinstance(node, bool):
        return pc.scalar(node)
    if not isinstance(node, dict) or "op" not in node:
        raise CatalogError(
            f"filter part {node!r} is not a CQL2 operation; write e.g. {{'op': '<', 'args': [...]}}"
        )
    op = _ALIASES.get(node["op"].lower(), node["op"].lower())
    args = node.get("args", [])
    if op in ("and", "or"):
        parts = [_expr(a, schema) for a in args]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if op == "and" else (out | p)
        return out
    if op == "not":
        return ~_expr(args[0], schema)
    if op in _CMP:
        a, b = _coerce(args[0], args[1], schema)
        return pc.Expression._call(_CMP[op], [_arg(a, schema), _arg(b, schema)])
    if op == "between":
        x = _arg(args[0], schema)
        lo, hi = (args[1], args[2]) if len(args) == 3 else tuple(args[1])
        return (x >= _arg(lo, schema)) & (x <= _arg(hi, schema))
    if op == "in":
        x = _arg(args[0], schema)
        values = [_literal(v) for v in args[1]]
        if not isinstance(x, pc.Expression) or _is_null(x):
            return pc.scalar(False)
        return x.isin(values)
    if op == "like":
        x = _arg(args[0], schema)
        if _is_null(x):
            return pc.scalar(False)
        return pc.Expression._call("match_like", [x], pc.MatchSubstringOptions(str(args[1])))
    if op == "isnull":
        x = _arg(args[0], schema)
        return pc.scalar(True) if _is_null(x) else x.is_null()
    raise CatalogError(
        f"filter operator {node['op']!r} is not supported; use comparisons, and/or/not, in, between, like, "
        "isNull (and bbox/intersects/datetime arguments for space and time)"
    )


def _coerce(a: Any, b: Any, schema: pa.Schema) -> tuple[Any, Any]:
    """A string compared with a timestamp column is read as an ISO 8601 timestamp."""

    def is_time(x: Any) -> bool:
        if not (isinstance(x, dict) and "property" in x):
            return False
        name = x["property"].removeprefix("properties.")
        return name in schema.names and pa.types.is_timestamp(schema.field(name).type)

    if is_time(a) and isinstance(b, str):
        return a, {"timestamp": b}
    if is_time(b) and isinstance(a, str):
        return {"timestamp": a}, b
    return a, b


def _is_null(x: Any) -> bool:
    return isinstance(x, pc.Expression) and x.equals(pc.scalar(None))


def apply_filter(table: pa.Table, cql2_json: dict) -> np.ndarray:
    """Boolean numpy mask (nulls -> False) of the rows of an index ``table`` matching a CQL2 JSON filter."""
    import pyarrow.dataset as ds

    expr = to_expression(cql2_json, table.schema)
    rows = table.select([n for n in table.schema.names if n not in ("assets", "links", "geometry")])
    rows = rows.append_column("__row", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    try:
        kept = ds.dataset(rows).to_table(columns=["__row"], filter=expr).column("__row")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise CatalogError(
            f"filter {json.dumps(cql2_json)} cannot be applied to the index ({exc}); compare each property with "
            "a value of its type (numbers with numbers, TIMESTAMP('...') for datetime)"
        ) from exc
    mask = np.zeros(rows.num_rows, bool)
    mask[kept.to_numpy()] = True
    return mask


__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_LENGTH",
    "apply_filter",
    "check_filter_size",
    "check_properties",
    "filter_properties",
    "filter_text",
    "parse_filter",
    "to_expression",
]
