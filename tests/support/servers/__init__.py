"""Real servers the tests start on loopback (ClickHouse 18.16, OpenSearch 2.x, Redis 7)."""
