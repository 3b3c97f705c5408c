"""Widgets the screens are built from: the status line, charts and styled table cells."""
