"""GraphQL scalars that keep PostgreSQL values exact.

Output values are produced by the SQL compilers, so ``serialize`` only matters for
introspection defaults; ``parse_value``/``parse_literal`` check client input before
any SQL is built. BigInt and Decimal travel as JSON strings so no client parses
them through a float.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from graphql import (
    FloatValueNode,
    GraphQLError,
    GraphQLScalarType,
    IntValueNode,
    StringValueNode,
    ValueNode,
    value_from_ast_untyped,
)

_INT8_MIN, _INT8_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"^-?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _literal_text(node: ValueNode, kinds: tuple[type, ...], name: str) -> str:
    if not isinstance(node, kinds):
        raise GraphQLError(f"{name} cannot represent a non-{name} literal.", node)
    value: str = node.value  # type: ignore[attr-defined]
    return value


def _parse_bigint(value: Any) -> int:
    if isinstance(value, bool):
        raise GraphQLError(f"BigInt cannot represent {value!r}.")
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if not isinstance(value, int):
        raise GraphQLError(f"BigInt cannot represent {value!r}: expected an integer or a string of digits.")
    if not _INT8_MIN <= value <= _INT8_MAX:
        raise GraphQLError(f"BigInt cannot represent {value}: outside the 64-bit range.")
    return value


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise GraphQLError(f"Decimal cannot represent {value!r}.")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str) and _DECIMAL.match(value.strip()):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            pass
    raise GraphQLError(f"Decimal cannot represent {value!r}: expected a decimal number as a string.")


def _parse_uuid(value: Any) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise GraphQLError(f"UUID cannot represent {value!r}.")


# PostgreSQL's infinite dates and timestamps: the JSON plane answers them so, and takes them back.
_INFINITE = ("infinity", "-infinity")


def _parse_datetime(value: Any) -> str:
    if value in _INFINITE:
        return str(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.isoformat()
    raise GraphQLError(f"DateTime cannot represent {value!r}: expected ISO 8601 with an offset.")


def _parse_local_datetime(value: Any) -> str:
    if value in _INFINITE:
        return str(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is None:
            return parsed.isoformat()
    raise GraphQLError(f"LocalDateTime cannot represent {value!r}: expected ISO 8601 without an offset.")


def _parse_date(value: Any) -> str:
    if value in _INFINITE:
        return str(value)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise GraphQLError(f"Date cannot represent {value!r}: expected YYYY-MM-DD.")


def _parse_time(value: Any) -> str:
    if isinstance(value, str):
        try:
            return time.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise GraphQLError(f"Time cannot represent {value!r}.")


def _parse_interval(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise GraphQLError(f"Interval cannot represent {value!r}: expected ISO 8601 like 'P1DT2H'.")


def _parse_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise GraphQLError(f"Bytes cannot represent {value!r}: expected standard base64.")


def _string_scalar(name: str, description: str, parse: Any) -> GraphQLScalarType:
    def parse_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> Any:
        return parse(_literal_text(node, (StringValueNode,), name))

    return GraphQLScalarType(name, description=description, serialize=str, parse_value=parse,
                             parse_literal=parse_literal)


def _number_literal(parse: Any, name: str) -> Any:
    def parse_literal(node: ValueNode, _variables: Any = None) -> Any:
        return parse(_literal_text(node, (IntValueNode, FloatValueNode, StringValueNode), name))

    return parse_literal


BigInt = GraphQLScalarType(
    "BigInt",
    description="64-bit integer (PostgreSQL int8), sent as a string so it stays exact beyond 2^53.",
    serialize=str,
    parse_value=_parse_bigint,
    parse_literal=_number_literal(_parse_bigint, "BigInt"),
)
Decimal_ = GraphQLScalarType(
    "Decimal",
    description="Exact decimal (PostgreSQL numeric), sent as a string. Send exact input as a string too.",
    serialize=str,
    parse_value=_parse_decimal,
    parse_literal=_number_literal(_parse_decimal, "Decimal"),
)
UUID = _string_scalar("UUID", "RFC 4122 UUID in canonical text form.", _parse_uuid)
DateTime = _string_scalar("DateTime", "Timestamp with time zone, ISO 8601 with offset (UTC).", _parse_datetime)
LocalDateTime = _string_scalar("LocalDateTime", "Timestamp without time zone, ISO 8601.", _parse_local_datetime)
Date = _string_scalar("Date", "Calendar date, ISO 8601 (YYYY-MM-DD).", _parse_date)
Time = _string_scalar("Time", "Time of day, ISO 8601.", _parse_time)
Interval = _string_scalar("Interval", "Duration, ISO 8601 (PostgreSQL intervalstyle iso_8601).", _parse_interval)
Bytes = _string_scalar("Bytes", "Binary data (bytea), standard base64.", _parse_bytes)
def _identity(value: Any) -> Any:
    return value


def _json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


JSON = GraphQLScalarType(
    "JSON",
    description="Any JSON value (json/jsonb), passed through as JSON.",
    serialize=_identity,
    parse_value=_identity,
    parse_literal=_json_literal,
)
