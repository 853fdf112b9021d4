"""Event sinks: ``base`` (the ``Sink`` protocol, its documented read and its errors), ``registry`` (by name).

One package per sink, each with the same modules (``ddl``, ``encode``, ``errors``, ``sink``):
``chdb``, ``clickhouse``, ``search``.
"""
