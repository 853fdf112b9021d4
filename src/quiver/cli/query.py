"""``quiver query``: run one GraphQL query over Arrow Flight and print or save the result.

Formats: ``table`` (a terminal table of the first rows, the default without an output
file), ``csv``, ``parquet`` and ``arrow`` (an Arrow IPC file), chosen by ``--format``
or the output file's extension. Files are written batch by batch as the server
streams them (never the whole result in memory), into ``<output>.part`` renamed
when complete.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from quiver.cli.output import MB, print_table, write_file
from quiver.client import Client, QuiverError

FORMATS = ("table", "csv", "parquet", "arrow")
EXTENSIONS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
}


def query_command(graphql: str | None, file: Path | None, url: str, token: str | None, output: Path | None,
                  fmt: str | None, variables: str | None, compression: str | None) -> None:
    """Run ``graphql`` (or the query in ``file``) against the Flight server at ``url`` and write the result."""
    text = _query_text(graphql, file)
    values = _variables(variables)
    chosen = _format(fmt, output)
    err = Console(stderr=True)
    if output is not None and not output.parent.is_dir():  # before the query runs, not after it streamed
        err.print(f"[red]error[/]: cannot write {escape(str(output))}: the folder {escape(str(output.parent))} "
                  "does not exist", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1)
    try:
        client = Client(url, token)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--url") from None
    try:
        with client:
            reader = client.stream(text, values, compression=compression)
            if chosen == "table":
                print_table(reader, Console())
            else:
                assert output is not None
                rows, size = write_file(reader, output, chosen, err)
                err.print(f"wrote {rows:,} rows to {escape(str(output))} ({size / MB:.1f} MB received)")
    except QuiverError as error:
        err.print(f"[red]error[/] ({error.status}): {escape(error.message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    except OSError as error:  # the output file: unwritable, disk full
        err.print(f"[red]error[/]: cannot write {escape(str(output))}: {escape(error.strerror or str(error))}",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None


# -- arguments ------------------------------------------------------------------------------------
def _query_text(graphql: str | None, file: Path | None) -> str:
    if (graphql is None) == (file is None):
        raise typer.BadParameter("give the query as an argument or with --file (one of them)")
    if file is not None:
        try:
            text = file.read_text()
        except OSError as error:
            raise typer.BadParameter(f"cannot read {file}: {error.strerror}", param_hint="--file") from None
    else:
        assert graphql is not None
        text = sys.stdin.read() if graphql == "-" else graphql
    if not text.strip():
        raise typer.BadParameter("the query is empty")
    return text


def _variables(variables: str | None) -> dict[str, Any] | None:
    """``--variables``: a JSON object, or ``@path`` to a file holding one."""
    if variables is None:
        return None
    source = variables
    if variables.startswith("@"):
        try:
            source = Path(variables[1:]).read_text()
        except OSError as error:
            raise typer.BadParameter(f"cannot read {variables[1:]}: {error.strerror}",
                                     param_hint="--variables") from None
    try:
        parsed = json.loads(source)
    except json.JSONDecodeError as error:
        raise typer.BadParameter(f"not valid JSON: {error}", param_hint="--variables") from None
    if not isinstance(parsed, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--variables")
    return parsed


def _format(fmt: str | None, output: Path | None) -> str:
    if fmt is not None:
        chosen = fmt.lower()
        if chosen not in FORMATS:
            raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    elif output is None:
        chosen = "table"
    else:
        found = EXTENSIONS.get(output.suffix.lower())
        if found is None:
            raise typer.BadParameter(f"cannot tell the format from {output.name!r}; pass --format csv, parquet "
                                     "or arrow", param_hint="--output")
        chosen = found
    if chosen == "table" and output is not None:
        raise typer.BadParameter("--format table prints to the terminal; write files as csv, parquet or arrow",
                                 param_hint="--format")
    if chosen != "table" and output is None:
        raise typer.BadParameter(f"--format {chosen} needs an --output file", param_hint="--output")
    return chosen


def query(
    graphql: Annotated[str | None, typer.Argument(help="The GraphQL query; '-' reads it from stdin")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the query from this file")] = None,
    url: Annotated[str, typer.Option(envvar="QUIVER_FLIGHT_URL",
                                     help="Flight URL: grpc://host:port or grpc+tls://host:port")]
    = "grpc://127.0.0.1:8815",
    token: Annotated[str | None, typer.Option(envvar="QUIVER_TOKEN", help="Bearer token")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the result to this file")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="table, csv, parquet or arrow "
                                            "(default: from the output file's extension, else table)")] = None,
    variables: Annotated[str | None, typer.Option("--variables", "-V",
                                                  help="Variables: a JSON object, or @file.json")] = None,
    compression: Annotated[str | None, typer.Option(help="Compress batches on the wire: lz4 or zstd")] = None,
) -> None:
    """Run a GraphQL query over Arrow Flight: print a table, or write csv, parquet or an Arrow file."""
    query_command(graphql, file, url, token, output, fmt, variables, compression)
