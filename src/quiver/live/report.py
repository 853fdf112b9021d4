"""A server's live datasets as ``quiver events status`` shows them, read from its ``/metrics``.

The datasets live inside ``quiver serve``; its Prometheus page is their one public report
(``live/datasets.LiveCollector``), so the CLI reads that rather than a second endpoint.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def live_lines(server_url: str, timeout: float = 10.0) -> list[tuple[str, str, str]]:
    """(entity, measure, value) rows; one ``unreachable`` row when the server cannot be read."""
    try:
        response = httpx.get(server_url.rstrip("/") + "/metrics", timeout=timeout)
        response.raise_for_status()
    except httpx.HTTPError as error:
        return [("datasets", "unreachable", f"{server_url}: {error}")]
    states: dict[str, str] = {}
    rows: dict[str, float] = {}
    watermarks: dict[str, float] = {}
    memory = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            entity = sample.labels.get("entity", "")
            if sample.name == "quiver_live_state" and sample.value:
                reason = sample.labels.get("reason", "")
                states[entity] = sample.labels.get("state", "") + (f": {reason}" if reason else "")
            elif sample.name == "quiver_live_rows":
                rows[entity] = sample.value
            elif sample.name == "quiver_live_watermark_seq":
                watermarks[entity] = sample.value
            elif sample.name == "quiver_live_memory_bytes":
                memory = sample.value
    if not states:
        return [("datasets", "none", "the server keeps no live datasets (QUIVER_LIVE_ENTITIES)")]
    lines = []
    for entity in sorted(states):
        lines.append((entity, "state", states[entity]))
        lines.append((entity, "rows", f"{int(rows.get(entity, 0)):,}"))
        lines.append((entity, "watermark (outbox seq applied)", f"{int(watermarks.get(entity, 0)):,}"))
    lines.append(("datasets", "memory (DuckDB)", f"{memory / 2**20:,.1f} MB"))
    return lines
