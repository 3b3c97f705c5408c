"""Subcommands of the `triage` CLI, one module per area; each exposes `register(subparsers)`."""
