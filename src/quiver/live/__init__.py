"""Live datasets: entities kept in memory (DuckDB) by the event stream, answered without PostgreSQL."""
