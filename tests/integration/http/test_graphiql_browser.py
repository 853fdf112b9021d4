"""GraphiQL in a real browser with no network: headless Chromium loads the page from the server.

Every request the page makes is recorded; any that is not to the server's own loopback
address is refused (and fails the test). The editor must render, a query typed into it with
the keyboard must run, and the result pane must show the data; on a server with tokens, the
token typed into GraphiQL's Headers tab is what lets it run. With
``QUIVER_GRAPHIQL_SCREENSHOT=docs/graphiql.png`` the screenshot is saved there (the docs' one).
A subscription typed into the editor must show, in the result pane, a note committed to order 1
afterwards (over the WebSocket, with the event pipeline's relay running); on a server with tokens,
the Headers tab's token goes in ``connection_init``. With
``QUIVER_GRAPHIQL_SCREENSHOT_SUBSCRIPTION=docs/graphiql-subscription.png`` that screenshot is saved.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from playwright.sync_api import Page, Route, WebSocket, expect, sync_playwright

from tests.conftest import ROOT, Server, start_server, stop_server
from tests.support.pipeline import Pipeline, nats_url

QUERY = "{ orders(orderBy: [{id: ASC}], limit: 2) { id status } }"
TOKEN = "graphiql-secret"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed (scripts/install-system-deps installs it)")
    return found


def only_the_server(server: Server, outside: list[str]) -> Callable[[Route], None]:
    """A route handler passing the server's own requests and refusing (and noting in ``outside``) the rest."""
    own = urlsplit(server.url).netloc

    def route(route: Route) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()
    return route


def run_typed(page: Page, server: Server, operation: str, headers: str | None) -> None:
    """Open GraphiQL, type ``headers`` into its Headers tab and ``operation`` into its editor, and run it."""
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
    page.keyboard.type(operation)
    page.locator(".graphiql-execute-button").click()


def run_in_graphiql(server: Server, screenshot: Path, headers: str | None = None) -> tuple[str, list[str]]:
    """The result pane's text after typing QUERY (and ``headers``) into GraphiQL; the off-server requests."""
    outside: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.route("**/*", only_the_server(server, outside))
            run_typed(page, server, QUERY, headers)
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


SUBSCRIPTION = "subscription { orders(where: {id: {eq: 1}}) { id note } }"


@pytest.fixture()
def pipeline_env(scratch_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A scratch database with the event pipeline installed and its relay running; the server's settings."""
    namespace = f"gq{time.monotonic_ns() % 10**9}"
    pipeline = Pipeline(scratch_url, tmp_path, namespace, sinks=())
    pipeline.cli("install")
    pipeline.start("relay")
    try:
        yield scratch_url, {"QUIVER_NATS_URL": nats_url(), "QUIVER_EVENTS_NAMESPACE": namespace}
    finally:
        pipeline.cleanup()


def subscribe_in_graphiql(server: Server, db_url: str, screenshot: Path,
                          headers: str | None = None) -> tuple[str, str, list[str], list[str]]:
    """Run SUBSCRIPTION in GraphiQL, then commit new notes for order 1 until the result pane shows one.

    Returns the last note committed, the result pane's text, the off-server requests and the
    WebSocket frames the page sent and received (for the failure message). The subscriber is
    registered some time after GraphiQL sends ``subscribe``, so an update committed before that
    is never delivered: each round commits a fresh note and waits a while for it to show.
    """
    own = urlsplit(server.url).netloc
    outside: list[str] = []
    frames: list[str] = []

    def watch(socket: WebSocket) -> None:
        if urlsplit(socket.url).netloc != own:
            outside.append(socket.url)
        socket.on("framesent", lambda payload: frames.append(f"> {payload!s}"[:300]))
        socket.on("framereceived", lambda payload: frames.append(f"< {payload!s}"[:300]))
        socket.on("close", lambda _: frames.append("closed"))

    base = f"graphiql-{time.monotonic_ns()}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.route("**/*", only_the_server(server, outside))
            page.on("websocket", watch)
            run_typed(page, server, SUBSCRIPTION, headers)
            result = page.locator(".result-window")
            deadline = time.monotonic() + 90
            note = ""
            with psycopg.connect(db_url, autocommit=True) as conn:
                for round_ in itertools.count():
                    note = f"{base}-{round_}"
                    conn.execute("UPDATE orders SET note = %s WHERE id = 1", (note,))
                    try:
                        expect(result).to_contain_text(f'"{note}"', timeout=5_000)
                        break
                    except AssertionError:
                        if time.monotonic() > deadline:
                            raise AssertionError(f"the result pane never showed a committed note: "
                                                 f"{result.inner_text()!r}; frames: {frames}") from None
            text = result.inner_text()
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return note, text, outside, frames


def test_a_subscription_runs_in_graphiql(pipeline_env: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    db_url, env = pipeline_env
    running = start_server(db_url, **env)
    try:
        note, text, outside, frames = subscribe_in_graphiql(running, db_url, tmp_path / "subscription.png")
    finally:
        stop_server(running)
    assert outside == [], f"the page asked for something beyond the server: {outside}"
    assert '"orders"' in text and '"id": "1"' in text and f'"note": "{note}"' in text, (text, frames)
    if os.environ.get("QUIVER_GRAPHIQL_SCREENSHOT_SUBSCRIPTION"):
        shutil.copyfile(tmp_path / "subscription.png", ROOT / os.environ["QUIVER_GRAPHIQL_SCREENSHOT_SUBSCRIPTION"])


def test_a_subscription_takes_the_token_from_the_headers_tab(pipeline_env: tuple[str, dict[str, str]],
                                                             tmp_path: Path) -> None:
    db_url, env = pipeline_env
    running = start_server(db_url, QUIVER_TOKENS=f'["{TOKEN}"]', **env)
    try:
        note, text, outside, frames = subscribe_in_graphiql(
            running, db_url, tmp_path / "subscription-token.png", headers=f'{{"Authorization": "Bearer {TOKEN}"}}')
    finally:
        stop_server(running)
    assert outside == [], f"the page asked for something beyond the server: {outside}"
    assert f'"note": "{note}"' in text, (text, frames)
