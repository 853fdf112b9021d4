"""What each generated GraphQL field means, attached as ``field.extensions['quiver']``.

The plan builder reads these instead of parsing field names back.
"""

from __future__ import annotations

from dataclasses import dataclass

from quiver.schema.model import Column, Entity, Relation


@dataclass(frozen=True)
class ColumnField:
    column: Column


@dataclass(frozen=True)
class RelationField:
    relation: Relation


@dataclass(frozen=True)
class CursorField:
    """Opaque keyset cursor of a row, relative to its list's ordering."""


@dataclass(frozen=True)
class CountField:
    """``count`` of an aggregate."""


@dataclass(frozen=True)
class RootList:
    entity: Entity


@dataclass(frozen=True)
class RootOne:
    entity: Entity


@dataclass(frozen=True)
class RootAggregate:
    entity: Entity


@dataclass(frozen=True)
class RootSubscription:
    entity: Entity


@dataclass(frozen=True)
class InsertMutation:
    entity: Entity
    many: bool


@dataclass(frozen=True)
class UpdateMutation:
    entity: Entity


@dataclass(frozen=True)
class DeleteMutation:
    entity: Entity


Descriptor = (
    ColumnField | RelationField | CursorField | CountField | RootList | RootOne | RootAggregate | RootSubscription
    | InsertMutation | UpdateMutation | DeleteMutation
)
