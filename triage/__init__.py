"""triage — a terminal UI for on-call model triage."""

__version__ = "0.1.0"
