"""Quiver's benchmarks, run from the repo root as modules (``python -m benchmarks.json_plane``,
``python -m benchmarks.query_planes``, ``python -m benchmarks.events``) so that ``benchmarks`` and
``tests.support`` import like any package, with no path set-up."""
