"""``python -m quiver.cli``: the same as the ``quiver`` command."""

from quiver.cli import main

main()
