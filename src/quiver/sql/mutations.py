"""Plan -> SQL for inserts, updates and deletes, returning the selection as JSON text.

Each mutation is one statement: a data-modifying CTE whose RETURNING rows feed the
same JSON select list the queries use. Values are bind parameters only.
"""

from __future__ import annotations

from quiver.plan import nodes
from quiver.schema.model import quote_ident
from quiver.sql.expr import Scope, json_row, json_rows, where_sql
from quiver.sql.json import Statement, select_list
from quiver.sql.params import PlaceholderParams


def compile_mutation(root: nodes.Root, params: PlaceholderParams) -> Statement:
    scope = Scope(params)
    entity = root.entity  # type: ignore[union-attr]
    table = entity.qualified
    if isinstance(root, nodes.InsertRoot):
        names = [c for c in entity.columns if any(c in row for row in root.rows)]
        if names:
            rows = []
            for row in root.rows:
                cells = []
                for name in names:
                    column = entity.columns[name]
                    if name not in row:
                        cells.append("DEFAULT")
                    elif column.type.is_array and row[name] is not None:
                        cells.append(params.array(list(row[name]), column.type))
                    else:
                        cells.append(params.value(row[name], column.type, column.type.sql))
                rows.append("(" + ", ".join(cells) + ")")
            target = ", ".join(quote_ident(n) for n in names)
            change = f"INSERT INTO {table} ({target}) VALUES {', '.join(rows)} RETURNING *"
        else:
            change = f"INSERT INTO {table} DEFAULT VALUES RETURNING *"
        selection, shape = root.selection, "rows" if root.many else "one"
    elif isinstance(root, nodes.UpdateRoot):
        alias = scope.alias()
        sets = []
        for name, value in root.values.items():
            column = entity.columns[name]
            if column.type.is_array and value is not None:
                sets.append(f"{quote_ident(name)} = {params.array(list(value), column.type)}")
            else:
                sets.append(f"{quote_ident(name)} = {params.value(value, column.type, column.type.sql)}")
        change = (f"UPDATE {table} AS {alias} SET {', '.join(sets)} WHERE {where_sql(root.where, alias, scope)} "
                  f"RETURNING {alias}.*")
        selection, shape = root.selection, "rows"
    elif isinstance(root, nodes.DeleteRoot):
        alias = scope.alias()
        change = f"DELETE FROM {table} AS {alias} WHERE {where_sql(root.where, alias, scope)} RETURNING {alias}.*"
        selection, shape = root.selection, "rows"
    else:
        raise TypeError(f"not a mutation root: {root!r}")
    alias = scope.alias()
    columns = select_list(selection, entity, alias, scope, ())
    rows_sql = f"SELECT {columns} FROM changed AS {alias}"
    if shape == "rows":
        return Statement(f"WITH changed AS ({change}) {json_rows(rows_sql, as_text=True)}", "value")
    return Statement(f"WITH changed AS ({change}) {json_row(rows_sql, as_text=True)}", "one")
