"""Database names become GraphQL names predictably."""

from __future__ import annotations

import pytest

from quiver.schema import naming


@pytest.mark.parametrize(
    ("table", "expected"),
    [("orders", "Order"), ("order_items", "OrderItem"), ("categories", "Category"), ("addresses", "Address"),
     ("boxes", "Box"), ("people", "Person"), ("status", "Status"), ("customer_order_totals", "CustomerOrderTotal"),
     ("analysis", "Analysis")],
)
def test_type_names_are_singular_pascal_case(table: str, expected: str) -> None:
    assert naming.type_name(table) == expected


@pytest.mark.parametrize(
    ("column", "expected"),
    [("created_at", "createdAt"), ("id", "id"), ("is_paid", "isPaid"), ("created_At", "createdAt"),
     ("2fa", "_2fa"), ("__secret", "secret"), ("with space", "withSpace")],
)
def test_field_names_are_valid_camel_case(column: str, expected: str) -> None:
    assert naming.camel(column) == expected


@pytest.mark.parametrize(
    ("label", "expected"),
    [("paid", "paid"), ("in-progress", "in_progress"), ("1st", "_1st"), ("true", "_true"), ("ok ok", "ok_ok")],
)
def test_enum_labels_become_graphql_names(label: str, expected: str) -> None:
    assert naming.enum_value_name(label) == expected
