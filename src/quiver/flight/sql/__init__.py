"""Flight SQL on Quiver's Flight server: ADBC/JDBC clients query PostgreSQL, read-only.

The server delegates to :class:`FlightSql` whenever a descriptor, ticket or action is Flight SQL's
(see :meth:`FlightSql.handles`); everything else stays Quiver's own Flight protocol.
"""

from quiver.flight.sql.service import FlightSql

__all__ = ["FlightSql"]
