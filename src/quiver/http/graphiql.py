"""The GraphiQL page at GET /graphql, its assets served by the server itself (it works offline).

``scripts/fetch-graphiql`` (run by ``make install``) puts pinned npm builds of React,
ReactDOM and GraphiQL, with their licences, under ``http/static/graphiql``; ``assets()``
serves that folder at ``/graphiql``. A bearer token goes in GraphiQL's Headers tab
(``{"Authorization": "Bearer ..."}``): GraphiQL sends it with every request (for
subscriptions, in the WebSocket's ``connection_init``) and keeps it in the browser's local storage.
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "graphiql"

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Quiver GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="/graphiql/graphiql/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL... (if this stays, its assets are not installed: run scripts/fetch-graphiql)</div>
  <script src="/graphiql/react/react.production.min.js"></script>
  <script src="/graphiql/react-dom/react-dom.production.min.js"></script>
  <script src="/graphiql/graphiql/graphiql.min.js"></script>
  <script>
    const ws = (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host;
    const fetcher = GraphiQL.createFetcher({
      url: window.location.pathname, subscriptionUrl: ws + window.location.pathname,
    });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, {
      fetcher, defaultEditorToolsVisibility: true, shouldPersistHeaders: true,
    }));
  </script>
</body>
</html>
"""


def assets() -> Mount:
    """The ``/graphiql`` route of the page's scripts and styles (404s if they were never fetched)."""
    return Mount("/graphiql", app=StaticFiles(directory=ASSETS, check_dir=False), name="graphiql")
