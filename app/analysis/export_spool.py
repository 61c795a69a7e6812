"""The `steps` table on disk: episodes spooled to a temporary JSONL file, written out streaming.

`StepSpool` takes one episode's rows at a time and appends them to an anonymous temporary
file (deleted when the spool closes, error or not), keeping only what the writers need up
front: the columns in first-seen order and each column's merged kind (the same rule as
`app.analysis.export_columns._typed`, merged row by row). `write_steps` then reads the file back:

- csv: row by row, the same bytes `app.analysis.export_columns.write_table` writes for the same rows;
- parquet: a `ParquetWriter` with the whole table's schema, `ROW_GROUP` rows at a time;
- npz: one column at a time (one pass over the file each), `.npy` entries as `np.savez` makes.

Spooled values are JSON-native (None, bool, int, float, str; header-derived lists/dicts),
so the JSON round trip gives back equal values: floats exactly, ints of any size.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from app.analysis.export_columns import (arrow_type, column_kind, convert, merge_kinds, output_file, typed_array,
                                         value_kind, write_csv)

ROW_GROUP = 65_536  # parquet rows per row group, and rows converted at a time


@dataclass(frozen=True)
class SpoolMark:
    """Where a spool stood, to roll a failed recording's episodes back."""
    size: int
    count: int
    columns: tuple[str, ...]
    kinds: tuple[tuple[str, str | None], ...]


class StepSpool:
    """Rows appended an episode at a time to a temporary JSONL file; columns and kinds kept as they come.

    `columns` are the leading columns (always present, in this order); other columns follow
    in first-seen order, except those named in `last`, which go at the end when seen.
    """

    def __init__(self, directory: str | None, columns: Sequence[str], last: Sequence[str] = ()) -> None:
        self.directory = directory
        self._columns: list[str] = list(columns)
        self._last = list(last)
        self._known = set(self._columns)
        self.kinds: dict[str, str | None] = {}
        self.count = 0
        self._file: IO[bytes] | None = None

    def open(self) -> StepSpool:
        """Create the spool file: anonymous where the system allows, deleted on `close` in any case."""
        self._file = tempfile.TemporaryFile("a+b", prefix=".steps-spool-", suffix=".jsonl", dir=self.directory)
        return self

    def __enter__(self) -> StepSpool:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def file(self) -> IO[bytes]:
        if self._file is None:
            raise ValueError("the spool is not open (use it as a context manager)")
        return self._file

    @property
    def columns(self) -> list[str]:
        """Leading columns, then the others in first-seen order, then the `last` ones seen."""
        seen_last = [c for c in self._last if c in self._known]
        return [c for c in self._columns if c not in self._last] + seen_last

    def kind(self, column: str) -> str:
        """The column's kind over every spooled row, as `app.analysis.export_columns._typed` decides it."""
        return column_kind(self.kinds.get(column))

    def _declare(self, column: str) -> None:
        if column not in self._known:
            self._known.add(column)
            self._columns.append(column)

    def add_episode(self, rows: Sequence[dict[str, Any]], columns: Sequence[str] = ()) -> None:
        """Append one episode's rows; `columns` are the episode's columns even when it has no rows."""
        for column in columns:
            self._declare(column)
        kinds, write = self.kinds, self.file.write
        for row in rows:
            for column, value in row.items():
                if column not in self._known:
                    self._declare(column)
                kind, merged = value_kind(value), kinds.get(column)
                if kind != merged:  # merging equal kinds changes nothing
                    kinds[column] = merge_kinds(merged, kind)
            write(json.dumps(row, separators=(",", ":")).encode("utf-8") + b"\n")
        self.count += len(rows)

    def mark(self) -> SpoolMark:
        return SpoolMark(self.file.seek(0, os.SEEK_END), self.count, tuple(self._columns), tuple(self.kinds.items()))

    def rollback(self, mark: SpoolMark) -> None:
        """Forget everything added since `mark`."""
        self.file.truncate(mark.size)
        self.count = mark.count
        self._columns = list(mark.columns)
        self._known = set(self._columns)
        self.kinds = dict(mark.kinds)

    def rows(self) -> Iterator[dict[str, Any]]:
        """The spooled rows, read back one at a time."""
        self.file.flush()
        self.file.seek(0)
        for line in self.file:
            yield json.loads(line)

    def chunks(self, columns: Sequence[str], size: int) -> Iterator[dict[str, list[Any]]]:
        """The rows `size` at a time, each chunk as {column: values} (no row dicts kept)."""
        chunk: dict[str, list[Any]] = {column: [] for column in columns}
        count = 0
        for row in self.rows():
            for column, values in chunk.items():
                values.append(row.get(column))
            count += 1
            if count == size:
                yield chunk
                chunk, count = {column: [] for column in columns}, 0
        if count:
            yield chunk

    def column(self, column: str) -> list[Any]:
        """One column's values, in row order (None where a row lacks it)."""
        return [row.get(column) for row in self.rows()]


def write_steps(spool: StepSpool, stem: str, fmt: str) -> str:
    """Write the spooled table to `stem.<fmt>` as `app.analysis.export_columns.write_table` would; returns the path."""
    path = output_file(stem, fmt)
    columns = spool.columns
    if fmt == "csv":
        write_csv(columns, spool.rows(), path)
    elif fmt == "npz":
        import numpy as np

        # np.savez's layout: an uncompressed zip of `<name>.npy` entries, each forced to zip64.
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for column in columns:
                kind = spool.kind(column)
                array = typed_array(np, kind, convert(kind, spool.column(column)))
                with archive.open(f"{column}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, array, allow_pickle=False)
                del array
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        kinds = {column: spool.kind(column) for column in columns}
        schema = pa.schema([(column, arrow_type(pa, kinds[column])) for column in columns])
        with pq.ParquetWriter(path, schema) as writer:
            for chunk in spool.chunks(columns, ROW_GROUP):
                arrays = [pa.array(convert(kinds[c], chunk.pop(c)), type=schema.field(c).type) for c in columns]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=ROW_GROUP)
    return path
