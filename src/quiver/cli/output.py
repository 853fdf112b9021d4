"""What ``quiver query`` writes: a terminal table of the first rows, or a file written batch by batch.

Files go to ``<output>.part``, renamed when complete, so a cut stream never leaves a file that looks whole.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

PREVIEW_ROWS = 20
MB = 1 << 20


# -- the terminal table ---------------------------------------------------------------------------
def print_table(reader: pa.RecordBatchReader, console: Console) -> None:
    """The first rows as a table and the total row count; later batches are only counted."""
    head: list[pa.RecordBatch] = []
    kept = total = 0
    for batch in reader:
        total += batch.num_rows
        if kept < PREVIEW_ROWS and batch.num_rows:
            part = batch.slice(0, PREVIEW_ROWS - kept)
            head.append(part)
            kept += part.num_rows
    schema = reader.schema
    table = Table(show_lines=False, header_style="bold")
    for field in schema:
        table.add_column(f"{escape(field.name)}\n[dim]{escape(str(_short_type(field.type)))}[/]", overflow="fold")
    for row in pa.Table.from_batches(head, schema=schema).to_pylist() if head else []:
        table.add_row(*(_cell(row[name]) for name in schema.names))
    console.print(table)
    shown = f" (first {kept} shown)" if total > kept else ""
    console.print(f"{total:,} row{'' if total == 1 else 's'}{shown}")


def _short_type(type_: pa.DataType) -> str:
    if pa.types.is_dictionary(type_):
        return "enum"
    return str(type_)


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]null[/]"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, default=_json_default, ensure_ascii=False))
    if isinstance(value, bytes):
        return escape(base64.b64encode(value).decode())
    if isinstance(value, pa.MonthDayNano):
        return escape(_iso_interval(value))
    return escape(str(value))


# -- files ------------------------------------------------------------------------------------------
def write_file(reader: pa.RecordBatchReader, output: Path, fmt: str, err: Console) -> tuple[int, int]:
    """Stream ``reader`` into ``output``; returns (rows, bytes of Arrow data received)."""
    partial = output.with_name(output.name + ".part")
    source_schema = reader.schema
    convert = _converter(source_schema, fmt)
    schema = convert(pa.RecordBatch.from_pylist([], schema=source_schema)).schema if convert else source_schema
    rows = size = 0
    progress = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"),
                        TextColumn("{task.fields[rows]:,} rows"), TextColumn("{task.fields[mb]:.1f} MB received"),
                        TextColumn("{task.fields[rate]:,.0f} rows/s"), TimeElapsedColumn(), console=err,
                        transient=False, disable=not err.is_terminal)  # quiet when piped or redirected
    started = time.monotonic()
    try:
        with progress, _Writer(partial, fmt, schema) as write:
            task = progress.add_task(f"{fmt} → {output.name}", total=None, rows=0, mb=0.0, rate=0.0)
            for batch in reader:
                rows += batch.num_rows
                size += batch.nbytes
                write(convert(batch) if convert else batch)
                progress.update(task, rows=rows, mb=size / MB, rate=rows / max(time.monotonic() - started, 1e-3))
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return rows, size


class _Writer:
    """A per-batch write function for one file format; closes (finishes) the file on exit."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema) -> None:
        self.path, self.fmt, self.schema = path, fmt, schema
        self.writer: Any = None

    def __enter__(self) -> Callable[[pa.RecordBatch], None]:
        if self.fmt == "csv":
            import pyarrow.csv as csv

            self.writer = csv.CSVWriter(str(self.path), self.schema)
        elif self.fmt == "parquet":
            import pyarrow.parquet as pq

            self.writer = pq.ParquetWriter(str(self.path), self.schema)
        else:
            self.writer = pa.ipc.new_file(str(self.path), self.schema)
        writer = self.writer

        def write(batch: pa.RecordBatch) -> None:
            if batch.num_rows:
                writer.write_batch(batch)

        return write

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()


# -- making batches fit a format -------------------------------------------------------------------
def _converter(schema: pa.Schema, fmt: str) -> Callable[[pa.RecordBatch], pa.RecordBatch] | None:
    """A batch conversion for what ``fmt`` cannot hold, or None when every column fits as is.

    CSV: nested values (lists, structs) become JSON text, binary becomes base64, enums their
    labels, intervals ISO 8601. Parquet: intervals ISO 8601. Arrow files hold everything.
    """
    changes: dict[int, Callable[[pa.Array], pa.Array]] = {}
    for index, field in enumerate(schema):
        change = _column_change(field.type, fmt)
        if change is not None:
            changes[index] = change
    if not changes:
        return None

    def convert(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays, fields = [], []
        for index, (field, array) in enumerate(zip(batch.schema, batch.columns, strict=True)):
            if index in changes:
                array = changes[index](array)
                field = pa.field(field.name, array.type, nullable=field.nullable, metadata=field.metadata)
            arrays.append(array)
            fields.append(field)
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields, metadata=batch.schema.metadata))

    return convert


def _column_change(type_: pa.DataType, fmt: str) -> Callable[[pa.Array], pa.Array] | None:
    if fmt == "arrow":
        return None
    if type_ == pa.month_day_nano_interval():
        return _text_column(_iso_interval)
    if fmt != "csv":
        return None
    if pa.types.is_dictionary(type_):
        value_type = type_.value_type

        def labels(array: pa.Array) -> pa.Array:
            return array.cast(value_type)

        return labels
    if pa.types.is_nested(type_):
        return _text_column(lambda value: json.dumps(value, default=_json_default, ensure_ascii=False))
    if pa.types.is_binary(type_) or pa.types.is_large_binary(type_) or pa.types.is_fixed_size_binary(type_):
        return _text_column(lambda value: base64.b64encode(value).decode())
    return None


def _text_column(render: Callable[[Any], str]) -> Callable[[pa.Array], pa.Array]:
    def convert(array: pa.Array) -> pa.Array:
        return pa.array(_rendered(array.to_pylist(), render), type=pa.string())

    return convert


def _rendered(values: list[Any], render: Callable[[Any], str]) -> Iterator[str | None]:
    for value in values:
        yield None if value is None else render(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.timedelta):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _truncated(value: int, unit: int) -> tuple[int, int]:
    """``divmod`` rounding toward zero, so each part keeps the value's sign (as PostgreSQL prints)."""
    whole = abs(value) // unit
    if value < 0:
        whole = -whole
    return whole, value - whole * unit


def _iso_interval(value: Any) -> str:
    """A month-day-nanosecond interval as ISO 8601, like PostgreSQL's ``intervalstyle iso_8601``."""
    months, days, nanos = int(value.months), int(value.days), int(value.nanoseconds)
    years, months = _truncated(months, 12)
    hours, nanos = _truncated(nanos, 3_600_000_000_000)
    minutes, nanos = _truncated(nanos, 60_000_000_000)
    seconds = decimal.Decimal(nanos) / decimal.Decimal(1_000_000_000)
    date = "".join(f"{n}{unit}" for n, unit in ((years, "Y"), (months, "M"), (days, "D")) if n)
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    if seconds:
        clock += f"{format(seconds.normalize(), 'f')}S"
    if not date and not clock:
        return "PT0S"
    return f"P{date}" + (f"T{clock}" if clock else "")
