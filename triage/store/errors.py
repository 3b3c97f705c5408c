"""The store's user-facing error: a problem with the logs or the store file, said in one line."""

from __future__ import annotations


class StoreError(Exception):
    """A problem with a log source or the store file that the user can fix; the message is one line."""
