"""``python -m edgecompress`` runs the command line."""

from edgecompress.cli import run

run()
