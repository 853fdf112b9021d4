"""The search sink (``search``): Elasticsearch 8 / OpenSearch 2 over HTTP.

``ddl``: the index template and strict mapping (monthly indices ``<prefix>-YYYY.MM`` behind the
alias ``<prefix>``); ``encode``: a batch → NDJSON ``_bulk`` bodies with external versions;
``errors``: each bulk item's (or response's) status → stored, Retryable or Permanent;
``sink``: ``SearchSink``.
"""

from quiver.events.sinks.search.ddl import MAPPINGS, index_template
from quiver.events.sinks.search.encode import monthly_index
from quiver.events.sinks.search.errors import PendingEvents, RejectedEvents
from quiver.events.sinks.search.sink import SearchSink

__all__ = ["MAPPINGS", "PendingEvents", "RejectedEvents", "SearchSink", "index_template", "monthly_index"]
