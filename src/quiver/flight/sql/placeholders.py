"""PostgreSQL's ``$n`` placeholders in client SQL, found as PostgreSQL's lexer finds them.

ADBC binds an Arrow string as a ``text`` parameter, not an untyped one, so ``total > $1`` with a
string fails ("numeric > text") where psycopg's untyped string works. Quiver tells clients such
parameters are strings, so it casts them: ``$1`` becomes ``($1::text::numeric)``, using the type
PostgreSQL inferred. Only real placeholders are rewritten: not inside string constants (standard,
``E''`` with backslash escapes, dollar-quoted), quoted identifiers, comments, or identifiers that
contain ``$`` (``a$1``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_IDENT = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_PARAM = re.compile(r"\$([0-9]+)")


def _is_ident(ch: str) -> bool:
    return bool(_IDENT.match(ch))


def _skip_quoted(sql: str, start: int, quote: str, backslash: bool) -> int:
    """The index after the constant or identifier opened at ``start`` (doubled quotes escape)."""
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if backslash and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)


def _skip_block_comment(sql: str, start: int) -> int:
    """The index after the (nested) ``/* ... */`` comment opened at ``start``."""
    depth, i = 0, start
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(sql)


def placeholders(sql: str) -> Iterator[tuple[int, int, int]]:
    """``(start, end, n)`` of every ``$n`` placeholder PostgreSQL would see in ``sql``."""
    i = 0
    while i < len(sql):
        ch = sql[i]
        previous = sql[i - 1] if i else ""
        if ch == "'":
            escaped = previous in "eE" and (i < 2 or not _is_ident(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", escaped)
        elif ch == '"':
            i = _skip_quoted(sql, i, '"', False)
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = len(sql) if end < 0 else end + 1
        elif sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "$" and (param := _PARAM.match(sql, i)):
            yield i, param.end(), int(param.group(1))
            i = param.end()
        elif ch == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
            end = sql.find(tag.group(0), tag.end())
            i = len(sql) if end < 0 else end + len(tag.group(0))
        elif _is_ident(ch):  # a word, with any $ in it (a$1 is an identifier)
            while i < len(sql) and _is_ident(sql[i]):
                i += 1
        else:
            i += 1


def cast_placeholders(sql: str, casts: dict[int, str]) -> str:
    """``sql`` with each ``$n`` in ``casts`` written ``($n::text::<type>)``; the rest unchanged."""
    if not casts:
        return sql
    out, last = [], 0
    for start, end, n in placeholders(sql):
        if n in casts:
            out += [sql[last:start], f"(${n}::text::{casts[n]})"]
            last = end
    return "".join(out) + sql[last:]
