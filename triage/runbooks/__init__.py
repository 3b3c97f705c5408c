"""Executable Markdown runbooks, their HTTP executor and the audit log."""
