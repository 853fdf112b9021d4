"""Scalars keep values exact and refuse what they cannot represent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from graphql import GraphQLError, IntValueNode, StringValueNode

from quiver.schema import scalars


def test_bigint_beyond_2_pow_53_is_exact() -> None:
    big = 2**53 + 1
    assert scalars.BigInt.parse_value(str(big)) == big
    assert scalars.BigInt.parse_literal(IntValueNode(value=str(big))) == big
    assert scalars.BigInt.serialize(big) == "9007199254740993"


@pytest.mark.parametrize("bad", [2**63, "12.5", "abc", True, None, 1.5])
def test_bigint_rejects_non_integers_and_overflow(bad: object) -> None:
    with pytest.raises(GraphQLError):
        scalars.BigInt.parse_value(bad)


def test_decimal_parses_strings_exactly() -> None:
    assert scalars.Decimal_.parse_value("12345678901234567890.123456789") == Decimal("12345678901234567890.123456789")
    assert scalars.Decimal_.parse_literal(StringValueNode(value="0.1")) == Decimal("0.1")


@pytest.mark.parametrize("bad", ["1,5", "NaN; drop", "", [], {"a": 1}, False])
def test_decimal_rejects_garbage(bad: object) -> None:
    with pytest.raises(GraphQLError):
        scalars.Decimal_.parse_value(bad)


def test_datetime_needs_an_offset() -> None:
    assert scalars.DateTime.parse_value("2024-05-01T10:00:00Z") == "2024-05-01T10:00:00+00:00"
    with pytest.raises(GraphQLError):
        scalars.DateTime.parse_value("2024-05-01T10:00:00")


def test_uuid_is_canonicalised_and_checked() -> None:
    assert scalars.UUID.parse_value("6F1C4C6E8C0F4B4C9F4A2B0E8C5D9A11") == "6f1c4c6e-8c0f-4b4c-9f4a-2b0e8c5d9a11"
    with pytest.raises(GraphQLError):
        scalars.UUID.parse_value("not-a-uuid'; --")


def test_bytes_are_base64() -> None:
    assert scalars.Bytes.parse_value("AQI=") == b"\x01\x02"
    with pytest.raises(GraphQLError):
        scalars.Bytes.parse_value("%%%")


@pytest.mark.parametrize("scalar", [scalars.Date, scalars.DateTime, scalars.LocalDateTime])
def test_infinite_dates_are_valid_input_as_the_json_plane_answers_them(scalar: object) -> None:
    assert scalar.parse_value("infinity") == "infinity"  # type: ignore[attr-defined]
    assert scalar.parse_value("-infinity") == "-infinity"  # type: ignore[attr-defined]
