"""``python -m llmtally`` runs the CLI."""

from llmtally.cli.main import main

main()
