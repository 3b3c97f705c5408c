"""Result rows per window, reused while the window's token holds: in this process, and in the store.

A window's rows of a statistic family depend only on the window's own rows (and, for calibration
and performance, on the labels that count as of T) — never on the other windows. So every family
is kept per window with the token of what it was computed from (`tokens.WindowToken`): a later
evaluation — a replay step, a live refresh, the next `triage check` — computes only the windows
whose token changed. `WindowMemo` keeps them in memory for the life of an `Engine`; the store's
`_triage_cache_windows` keeps them across processes (written by a writable connection, such as
`triage ingest` warming it; a read-only one only reads). Drift rows have their own store table
(`drift.DriftCache`) and are only remembered here.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from triage.metrics.codec import decoder, encode
from triage.metrics.profile import WRITE_LOCK, EcdfMemo, writable
from triage.metrics.source import aware, naive_utc
from triage.metrics.tokens import TokenState
from triage.store.tables import table_exists

CACHE_TABLE = "_triage_cache_windows"
CACHE_FORMAT = 8  # 8: operations rows carry latency_p95_ms's interval (7: cost_per_1k's)
_MEMO_KEYS = 8  # evaluation definitions remembered at once (slices, window sizes, references)

Rows = dict[datetime, list[Any]]


def cache_key(*definition: object) -> str:
    """A short key for an evaluation definition (anything with a stable repr)."""
    text = repr((CACHE_FORMAT, *definition))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LabelDebt:
    """How far a definition's calibration and performance trail the labels, as of its last evaluation.

    `computed[w]` is the rows token and labelled-row count window w's rows were computed from;
    `pending[w]` counts the labels that arrived for it since and are not counted yet (windows
    settled within the live label slack, see `engine.LIVE_LABEL_SLACK`).
    """

    as_of: datetime
    computed: dict[datetime, tuple[str, int]]
    pending: dict[datetime, int]


class WindowMemo:
    """Rows per (definition key, family, window) with their token, kept by one process (thread-safe),
    and the reference ECDFs drift needs for the windows it recomputes (`ecdfs`)."""

    def __init__(self) -> None:
        self.ecdfs = EcdfMemo()
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], dict[datetime, tuple[str, list[Any]]]] = {}
        self._debts: dict[str, LabelDebt] = {}
        self._token_states: dict[str, TokenState] = {}
        # Each window's rows in display order, by the identity of the window's list of rows.
        self._ordered: dict[tuple[str, str], dict[int, tuple[list[Any], list[Any]]]] = {}

    def get(self, key: str, family: str, tokens: Mapping[datetime, str]) -> Rows:
        with self._lock:
            held = self._rows.get((key, family), {})
            return {w: rows for w, (token, rows) in held.items() if tokens.get(w) == token}

    def latest(self, key: str, family: str) -> Rows:
        """The rows last kept for each window, whatever their token."""
        with self._lock:
            return {w: rows for w, (_, rows) in self._rows.get((key, family), {}).items()}

    def debt(self, key: str) -> LabelDebt | None:
        with self._lock:
            return self._debts.get(key)

    def token_state(self, key: str) -> TokenState | None:
        with self._lock:
            return self._token_states.get(key)

    def keep_token_state(self, key: str, state: TokenState | None) -> None:
        with self._lock:
            if state is None:
                self._token_states.pop(key, None)
            else:
                self._token_states[key] = state

    def owe(self, key: str, debt: LabelDebt) -> None:
        with self._lock:
            self._debts[key] = debt

    def ordered(
        self, key: str, family: str, rows: Rows, order: Callable[[list[Any]], list[Any]]
    ) -> tuple[Any, ...]:
        """Every window's rows, windows in time order, each window's in `order` — ordered once per
        list of rows: a window whose rows were not recomputed is not ordered again."""
        with self._lock:
            kept = self._ordered.get((key, family), {})
        fresh: dict[int, tuple[list[Any], list[Any]]] = {}
        found: list[Any] = []
        for w in sorted(rows):
            window_rows = rows[w]
            seen = kept.get(id(window_rows))
            in_order = seen[1] if seen is not None and seen[0] is window_rows else order(window_rows)
            fresh[id(window_rows)] = (window_rows, in_order)
            found += in_order
        with self._lock:
            if any(k == key for k, _ in self._rows):  # else evicted meanwhile: `put` would never drop it
                self._ordered[(key, family)] = fresh
        return tuple(found)

    def put(self, key: str, family: str, rows: Rows, tokens: Mapping[datetime, str]) -> None:
        with self._lock:
            held = self._rows.pop((key, family), {})
            held.update((w, (tokens[w], window_rows)) for w, window_rows in rows.items())
            self._rows[(key, family)] = held  # the most recently used last
            while len({k for k, _ in self._rows}) > _MEMO_KEYS:
                oldest = next(iter(self._rows))[0]
                self._rows = {k: v for k, v in self._rows.items() if k[0] != oldest}
                self._ordered = {k: v for k, v in self._ordered.items() if k[0] != oldest}
                self._debts.pop(oldest, None)
                self._token_states.pop(oldest, None)


class WindowRows:
    """The rows of one evaluation definition per family and window: this process's memory first,
    then the store's table (written only when `persist`: not a trailing windowing's, which moves
    with T)."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, memo: WindowMemo, key: str, persist: bool = True
    ) -> None:
        self.con, self.memo, self.key = con, memo, key
        self.writable = persist and writable(con)
        if self.writable:
            with WRITE_LOCK:
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {CACHE_TABLE} (cache_key VARCHAR, family VARCHAR, "
                    "window_start TIMESTAMP, token VARCHAR, rows VARCHAR)"
                )

    def held(
        self,
        family: str,
        kind: type,
        tokens: Mapping[datetime, str],
        loader: Callable[[dict[datetime, str]], Rows] | None = None,
    ) -> Rows:
        """The rows of the windows whose token is unchanged; `kind` is the family's row type, and
        `loader` reads the store instead of this table (a family with a table of its own)."""
        found = self.memo.get(self.key, family, tokens)
        wanted = {w: token for w, token in tokens.items() if w not in found}
        if wanted and loader is not None:
            loaded = loader(wanted)
            self.memo.put(self.key, family, loaded, tokens)
            found.update(loaded)
        elif wanted and (self.writable or table_exists(self.con, CACHE_TABLE)):
            stored = self.con.execute(
                f"""SELECT c.window_start, c.rows FROM {CACHE_TABLE} AS c
                JOIN (SELECT unnest(?::TIMESTAMP[]) AS w, unnest(?::VARCHAR[]) AS token) AS v
                    ON c.window_start = v.w AND c.token = v.token
                WHERE c.cache_key = ? AND c.family = ?""",
                [[naive_utc(w) for w in wanted], list(wanted.values()), self.key, family],
            ).fetchall()
            decode = decoder(tuple[kind, ...])  # type: ignore[valid-type]
            loaded = {aware(start): list(decode(json.loads(text))) for start, text in stored}
            self.memo.put(self.key, family, loaded, tokens)
            found.update(loaded)
        return found

    def keep(self, family: str, rows: Rows, tokens: Mapping[datetime, str], store: bool = True) -> None:
        """Remember freshly computed windows (and `store` them when the connection may write)."""
        self.memo.put(self.key, family, rows, tokens)
        if not store or not self.writable or not rows:
            return
        windows = [naive_utc(w) for w in rows]
        texts = [json.dumps(encode(tuple(window_rows)), allow_nan=False) for window_rows in rows.values()]
        with WRITE_LOCK:
            self.con.execute("BEGIN TRANSACTION")
            try:
                self.con.execute(
                    f"DELETE FROM {CACHE_TABLE} WHERE cache_key = ? AND family = ? "
                    "AND list_contains(?::TIMESTAMP[], window_start)",
                    [self.key, family, windows],
                )
                self.con.execute(
                    f"INSERT INTO {CACHE_TABLE} SELECT ?, ?, unnest(?::TIMESTAMP[]), unnest(?::VARCHAR[]), "
                    "unnest(?::VARCHAR[])",
                    [self.key, family, windows, [tokens[w] for w in rows], texts],
                )
                self.con.execute("COMMIT")
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
