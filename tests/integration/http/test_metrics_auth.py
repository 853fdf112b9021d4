"""With tokens configured, /metrics needs one too, unless QUIVER_METRICS_PUBLIC says it is public."""

from __future__ import annotations

import pytest

from tests.conftest import start_server, stop_server


@pytest.mark.parametrize("public", [False, True], ids=["protected", "public"])
def test_metrics_follow_the_bearer_token(demo_url: str, public: bool) -> None:
    running = start_server(demo_url, QUIVER_TOKENS='["s3cret"]', QUIVER_METRICS_PUBLIC=str(public).lower())
    try:
        with running.client() as client:
            anonymous = client.get("/metrics")
            wrong = client.get("/metrics", headers={"authorization": "Bearer nope"})
            good = client.get("/metrics", headers={"authorization": "Bearer s3cret"})
            assert client.get("/health").status_code == 200  # health stays open for probes
    finally:
        stop_server(running)
    assert good.status_code == 200 and "quiver_http_requests" in good.text
    if public:
        assert anonymous.status_code == wrong.status_code == 200
    else:
        for refused in (anonymous, wrong):
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            assert "quiver_http" not in refused.text
