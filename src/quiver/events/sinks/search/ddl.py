"""The search sink's index template and mapping (common to Elasticsearch 8 and OpenSearch 2).

Layout. ``setup()`` installs the index template ``<prefix>`` (``PUT _index_template/<prefix>``)
for the indices ``<prefix>-*``: one index per month of ``occurred_at`` (``<prefix>-YYYY.MM``,
UTC), each joined to the alias ``<prefix>`` by the template, so readers query the alias. The
sink creates each monthly index itself before its first write to it (``PUT <index>``, where the
template applies), so it also works where ``action.auto_create_index`` is off. Prefixes must be
lower case and must not overlap (``a`` and ``a-b`` both match ``a-*``: the server refuses the
second template).

Documents: ``_id`` = ``event_id``; the mapping is ``dynamic: strict``:

- ``event_id``, ``entity``, ``entity_id``, ``op``, ``changed``, ``actor``, ``tenant_id``: keyword
  (``ignore_above: 8191``: a longer value is kept in ``_source`` but not indexed, instead of
  failing the document on Lucene's 32 KB term limit);
- ``seq``, ``occurred_at_us``: long (the exact values, µs since the epoch);
- ``occurred_at``: ``date_nanos`` from an ISO-8601 string with the 6 digits of microseconds,
  so range queries, sorting and dashboards see full precision. ``date_nanos`` covers
  1970-2262: an event outside is refused by the server (a per-event PermanentError), as the
  ClickHouse sink's ``DateTime`` cannot hold it either;
- ``data`` (the row as JSON text): ``text``, full-text searchable, returned byte for byte from
  ``_source``. Not an object: rows of different tables (and changing schemas) would collide in
  one dynamic mapping (a column that is a number in one table and text in another fails every
  later document), and the conflict-free field types differ (ES ``flattened``, OpenSearch
  ``flat_object``).

The template sets ``index.translog.durability: request``: an acknowledged bulk is fsynced; and
``index.refresh_interval: 1s`` explicitly, so events are searchable within about a second even
on an index nobody searched lately.
"""

from __future__ import annotations

import re
from typing import Any

KEYWORD = {"type": "keyword", "ignore_above": 8191}
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "event_id": {"type": "keyword"},
        "seq": {"type": "long"},
        "entity": KEYWORD,
        "entity_id": KEYWORD,
        "op": KEYWORD,
        "occurred_at": {"type": "date_nanos", "format": "strict_date_optional_time_nanos||epoch_millis"},
        "occurred_at_us": {"type": "long"},
        "data": {"type": "text", "norms": False},
        "changed": KEYWORD,
        "actor": KEYWORD,
        "tenant_id": KEYWORD,
    },
}
TEMPLATE_VERSION = 2
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can name indices and an alias (lower case, ≤ 200 characters), else ValueError."""
    if not _PREFIX.fullmatch(prefix) or len(prefix) > 200:
        raise ValueError(f"index prefix must be lower case letters, digits, '_', '.', '-', not {prefix!r}")
    return prefix


def index_template(prefix: str) -> dict[str, Any]:
    """The composable index template ``setup()`` installs (common to Elasticsearch 8 and OpenSearch 2)."""
    return {
        "index_patterns": [f"{prefix}-*"],
        "priority": 200,  # above the built-in templates of Elasticsearch (100)
        "version": TEMPLATE_VERSION,
        "_meta": {"owner": "quiver", "schema": "event/1"},
        "template": {
            "settings": {
                "index.number_of_shards": 1,
                "index.auto_expand_replicas": "0-1",  # green on one node, one replica on more
                "index.translog.durability": "request",  # fsync before a write is acknowledged
                # Explicit, so an index nobody searched for 30 s keeps refreshing (the default goes
                # "search idle" and the next reader waits for a refresh): events stay visible within ~1 s.
                "index.refresh_interval": "1s",
            },
            "mappings": MAPPINGS,
            "aliases": {prefix: {}},
        },
    }
