"""The ClickHouse server sink (``clickhouse``): the analytics sink for a real deployment, old 18.16 up to current.

``ddl``: the ReplacingMergeTree table and the documented read (``... FROM {database}.events FINAL``),
shared with chDB; ``encode``: a batch → ArrowStream (modern servers) or Native (18.16) body;
``errors``: a failed response → Retryable or Permanent; ``sink``: ``ClickHouseSink``.
"""

from quiver.events.sinks.clickhouse.ddl import COLUMNS, ServerInfo, table_ddl
from quiver.events.sinks.clickhouse.encode import arrow_body, native_body
from quiver.events.sinks.clickhouse.errors import classify
from quiver.events.sinks.clickhouse.sink import ClickHouseSink

__all__ = ["COLUMNS", "ClickHouseSink", "ServerInfo", "arrow_body", "classify", "native_body", "table_ddl"]
