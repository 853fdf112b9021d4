"""Prometheus metrics of the HTTP plane, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "quiver_http_requests", "GraphQL requests by operation kind and outcome.",
            ["operation", "outcome"], registry=self.registry,
        )
        self.errors = Counter(
            "quiver_graphql_errors", "GraphQL errors returned, by code.", ["code"], registry=self.registry
        )
        self.duration = Histogram(
            "quiver_http_request_seconds", "Time from request to the last byte of the response.",
            ["operation"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.bytes_sent = Counter(
            "quiver_http_response_bytes", "Response body bytes sent.", ["operation"], registry=self.registry
        )
