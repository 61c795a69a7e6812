"""Typed columns and table files for `coplay export`: CSV, NPZ and Parquet from rows of plain values.

A column's kind is the merge of its values' kinds (`value_kind`, `merge_kinds`,
`column_kind`); `convert` and `typed_array` shape the values for the writers. The
in-memory `write_table` (small tables) and the steps spool (app/analysis/export_spool.py) share
these, so a column is typed the same way whichever path writes it.
"""
from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.data.modes import create_file, opener
from game.errors import CoplayError


class ExportError(CoplayError):
    """The export cannot run as asked (no data there, missing dependency); the message says why."""

    code = "export_failed"


@dataclass
class Table:
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)


def plain_value(value: Any) -> Any:
    """numpy scalars and arrays as Python values."""
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    plain = plain_value(value)
    if plain is value:
        return repr(value)
    return plain


def output_file(stem: str, fmt: str) -> str:
    """`stem.<fmt>`, created empty with the data file mode (app/data/modes.py) for a writer to fill."""
    if fmt not in ("csv", "npz", "parquet"):
        raise ExportError(f"unknown format {fmt!r}")
    path = f"{stem}.{fmt}"
    create_file(path)
    return path


def write_table(table: Table, stem: str, fmt: str) -> str:
    """Write `table` to `stem.<fmt>`; returns the file's path."""
    path = output_file(stem, fmt)
    if fmt == "csv":
        write_csv(table.columns, table.rows, path)
    elif fmt == "npz":
        import numpy as np

        arrays = {column: _array(np, [row.get(column) for row in table.rows]) for column in table.columns}
        with open(path, "wb") as file:
            np.savez(file, **arrays)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {column: _typed([row.get(column) for row in table.rows]) for column in table.columns}
        pq.write_table(pa.table({c: pa.array(v, type=arrow_type(pa, k)) for c, (k, v) in columns.items()}), path)
    return path


def write_csv(columns: list[str], rows: Iterable[Mapping[str, Any]], path: str) -> None:
    """A header of `columns`, then one line per row ('' for a missing value; text cells escaped by `csv_cell`)."""
    with open(path, "w", newline="", encoding="utf-8", opener=opener) as file:
        writer = csv.writer(file)
        writer.writerow([csv_cell(c) for c in columns])
        for row in rows:
            writer.writerow(["" if row.get(c) is None else csv_cell(row.get(c)) for c in columns])


# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """`value` for a CSV cell: text a spreadsheet would run as a formula gets a leading `'`; numbers
    (also numeric text such as "-1.5") and everything else are unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


# A column's kind is the merge of its values' kinds: a join over None < bool < str and
# None < int < bigint < float < str ("bigint": an int outside int64). `column_kind` turns
# the merge into what the writers use. The steps spool merges row by row with the same rule.

_NUMERIC = ("int", "bigint", "float")


def value_kind(value: Any) -> str | None:
    """The narrowest kind holding `value`: None (missing), bool, int, bigint, float or str."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(1 << 63) <= value < (1 << 63) else "bigint"
    return "float" if isinstance(value, float) else "str"


def merge_kinds(a: str | None, b: str | None) -> str | None:
    """The kind of a column holding values of kinds `a` and `b`."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    if a in _NUMERIC and b in _NUMERIC:
        return "float" if "float" in (a, b) else "bigint"
    return "str"


def column_kind(merged: str | None) -> str:
    """'bool' | 'int' | 'float' | 'str' for a merged kind: no values, or ints beyond int64, are text."""
    return merged if merged in ("bool", "int", "float") else "str"


def convert(kind: str, values: list[Any]) -> list[Any]:
    """`values` as a column of `kind`: floats for float, JSON text for non-text in str; None kept."""
    if kind == "float":
        return [None if v is None else float(v) for v in values]
    if kind == "str":
        return [None if v is None else v if isinstance(v, str) else json_text(v) for v in values]
    return values


def _typed(values: list[Any]) -> tuple[str, list[Any]]:
    """('bool' | 'int' | 'float' | 'str', values) with None kept for missing values and mixed types as text."""
    merged: str | None = None
    for value in values:
        merged = merge_kinds(merged, value_kind(value))
    kind = column_kind(merged)
    return kind, convert(kind, values)


def arrow_type(pa: Any, kind: str) -> Any:
    return {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string()}[kind]


def _array(np: Any, values: list[Any]) -> Any:
    """A numpy array of one column: bool/int64 when complete, float64 (NaN for missing), or unicode text ('' missing)."""
    return typed_array(np, *_typed(values))


def typed_array(np: Any, kind: str, typed: list[Any]) -> Any:
    """`_array` of a column already typed (`kind`, `convert(kind, values)`)."""
    missing = any(v is None for v in typed)
    if kind == "bool" and not missing:
        return np.array(typed, dtype=bool)
    if kind == "int" and not missing:
        return np.array(typed, dtype=np.int64)
    if kind in ("bool", "int", "float"):
        return np.array([math.nan if v is None else float(v) for v in typed], dtype=np.float64)
    return np.array(["" if v is None else v for v in typed], dtype=str)
