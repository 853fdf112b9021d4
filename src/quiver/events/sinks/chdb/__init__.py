"""The chDB sink (``chdb``): the ClickHouse engine in-process, the zero-configuration analytics sink.

``ddl``: the ClickHouse sink's modern table, in the data path's database ``quiver``; ``encode``: a
batch → the Arrow table chDB inserts; ``errors``: a chDB failure → Retryable or Permanent;
``sink``: ``ChdbSink``.
"""

from quiver.events.sinks.chdb.sink import ChdbSink

__all__ = ["ChdbSink"]
