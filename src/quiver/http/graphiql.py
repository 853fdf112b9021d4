"""The GraphiQL page at GET /graphql, its assets served by the server itself (it works offline).

``scripts/fetch-graphiql`` (run by ``make install``) puts pinned npm builds of React, graphql-ws,
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

PAGE = r"""<!doctype html>
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
  <script src="/graphiql/graphql-ws/graphql-ws.min.js"></script>
  <script>
    const ws = (window.location.protocol === 'https:' ? 'wss://' : 'ws://') + window.location.host;
    let headers = {};  // the Headers tab's, as GraphiQL last passed them: sent in connection_init
    const wsClient = graphqlWs.createClient({
      url: ws + window.location.pathname, connectionParams: () => headers,
    });
    const http = GraphiQL.createFetcher({ url: window.location.pathname });
    // GraphiQL's own test needs the editor's parsed document, which lags the keyboard a little
    const isSubscription = (params, options) => {
      const document = options && options.documentAST;
      if (!document) return /^\s*subscription\b/.test(params.query.replace(/#[^\n]*/g, ''));
      return document.definitions.some((d) => d.kind === 'OperationDefinition' && d.operation === 'subscription'
        && (d.name ? d.name.value : undefined) === (params.operationName || undefined));
    };
    const fetcher = (params, options) => {
      if (!isSubscription(params, options)) return http(params, options);
      headers = (options && options.headers) || {};
      return wsClient.iterate(params);
    };
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
