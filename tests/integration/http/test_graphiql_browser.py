"""GraphiQL in a real browser with no network: headless Chromium loads the page from the server.

Every request the page makes is recorded; any that is not to the server's own loopback
address is refused (and fails the test). The editor must render, a query typed into it with
the keyboard must run, and the result pane must show the data; on a server with tokens, the
token typed into GraphiQL's Headers tab is what lets it run. With
``QUIVER_GRAPHIQL_SCREENSHOT=docs/graphiql.png`` the screenshot is saved there (the docs' one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route, sync_playwright

from tests.conftest import ROOT, Server, start_server, stop_server

QUERY = "{ orders(orderBy: [{id: ASC}], limit: 2) { id status } }"
TOKEN = "graphiql-secret"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed (scripts/install-system-deps installs it)")
    return found


def run_in_graphiql(server: Server, screenshot: Path, headers: str | None = None) -> tuple[str, list[str]]:
    """The result pane's text after typing QUERY (and ``headers``) into GraphiQL; the off-server requests."""
    own = urlsplit(server.url).netloc
    outside: list[str] = []

    def only_the_server(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.route("**/*", only_the_server)
            page.goto(server.url + "/graphql", wait_until="load")
            editor = page.locator(".graphiql-query-editor .CodeMirror")
            editor.wait_for(timeout=30_000)
            if headers is not None:
                page.get_by_role("button", name="Headers").click()
                header_editor = page.locator(".graphiql-editor-tool .CodeMirror").last
                header_editor.wait_for(timeout=30_000)
                header_editor.click()
                page.keyboard.type(headers)
            editor.click()
            page.keyboard.press("Control+A")
            page.keyboard.press("Delete")
            page.keyboard.type(QUERY)
            page.locator(".graphiql-execute-button").click()
            result = page.locator(".result-window")
            result.get_by_text('"status"').first.wait_for(timeout=30_000)
            text = result.inner_text()
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return text, outside


def test_graphiql_renders_and_runs_a_query_offline(server: Server, tmp_path: Path) -> None:
    text, outside = run_in_graphiql(server, tmp_path / "graphiql.png")
    assert outside == [], f"the page asked for something beyond the server: {outside}"
    assert '"orders"' in text and '"id": "1"' in text and '"status"' in text, text
    if os.environ.get("QUIVER_GRAPHIQL_SCREENSHOT"):
        shutil.copyfile(tmp_path / "graphiql.png", ROOT / os.environ["QUIVER_GRAPHIQL_SCREENSHOT"])


@pytest.fixture(scope="module")
def secured(demo_url: str) -> Iterator[Server]:
    running = start_server(demo_url, QUIVER_TOKENS=f'["{TOKEN}"]')
    yield running
    stop_server(running)


def test_the_token_goes_in_the_headers_tab(secured: Server, tmp_path: Path) -> None:
    text, outside = run_in_graphiql(secured, tmp_path / "token.png", headers=f'{{"Authorization": "Bearer {TOKEN}"}}')
    assert outside == [] and '"orders"' in text and '"id": "1"' in text, (outside, text)
