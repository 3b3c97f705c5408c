"""A config checked against the logs it names: sources match readable files, configured columns exist,
class names are among their values; and, once they are ingested, against the store: the versions and
routes it names were seen, and a log's rows were not all quarantined."""

from __future__ import annotations

import shlex
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from triage.config import (
    OPTIONAL_ROLES,
    REQUIRED_ROLES,
    SCORE_FEATURE,
    Config,
    ConfigError,
    ModelConfig,
    label_id_hint,
)
from triage.printable import printable
from triage.store import readers
from triage.store.classes import ClassTally, class_tallies
from triage.store.db import MEMORY, Store
from triage.store.errors import StoreError
from triage.store.info import quarantine_shares, time_range
from triage.store.schema import (
    KIND_LABELS,
    KIND_PREDICTIONS,
    KIND_REFERENCE,
    MODELS_TABLE,
    predictions_table,
    quote,
)
from triage.store.sources import SourceError, SourceFile, expand, read_error
from triage.store.tables import check_settings, table_exists

CHECK_FILES = 3  # the oldest two files and the newest are sampled
Sniffed = list[tuple[SourceFile, dict[str, str]]]  # sampled files, each with its columns and their types


@dataclass(frozen=True)
class SourceCheck:
    """Mistakes found in the logs (each one line, naming the config key) and informational notes."""

    problems: tuple[ConfigError, ...]
    notes: tuple[str, ...]


def _listing(columns: Collection[str]) -> str:
    """Names from the logs or the store (columns, versions, routes): as text, the first twelve."""
    names = [printable(name) for name in columns]
    text = ", ".join(names[:12])
    return text + (f", … ({len(names)} in all)" if len(names) > 12 else "")


# The config key of each kind of log, and what its rows are called.
_LOG_KEYS = {KIND_PREDICTIONS: "predictions", KIND_LABELS: "labels", KIND_REFERENCE: "reference.files"}
_ROW_NAMES = {KIND_PREDICTIONS: "prediction", KIND_LABELS: "label", KIND_REFERENCE: "reference"}


class _Checker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.con = duckdb.connect()
        self.problems: list[ConfigError] = []
        self.notes: list[str] = []

    def error(self, key: str, expected: str) -> None:
        self.problems.append(ConfigError(self.config.path, key, expected))

    def files(self, key: str, pattern: str, required: bool) -> list[SourceFile]:
        try:
            found = expand(self.config.resolve(pattern))
        except SourceError as exc:
            self.error(key, str(exc))
            return []
        if not found:
            if required:
                self.error(key, f"expected readable log files matching {pattern!r}; none found")
            else:
                self.notes.append(f"{key}: no files match {pattern!r} yet; their columns were not checked")
        return found

    def columns(
        self,
        key: str,
        sources: list[SourceFile],
        wanted: list[tuple[str, str]],
        required: set[str],
        hints: dict[str, str] | None = None,
    ) -> Sniffed:
        """The oldest files of the source and its newest, sampled: a `required` (config key) column
        must be in each (ingest refuses a file without it); an optional one in at least one (a
        column added or dropped along the way is stored as NULL where it is absent: a note), else
        its name is likely misspelt (`hints`: what to do then, by config key). The sampled files,
        with their columns (none when one cannot be read)."""
        sniffed: Sniffed = []
        for source in list(dict.fromkeys([*sources[: CHECK_FILES - 1], *sources[-1:]])):
            try:
                sniffed.append((source, readers.file_columns(self.con, source)))
            except SourceError as exc:
                self.error(key, f"expected a readable {source.format} file: {exc}")
                return []
        for config_key, name in wanted:
            # JSON Lines may omit a key on some lines: one sampled JSON file having it is enough.
            in_some_jsonl = any(name in c for s, c in sniffed if s.format == "jsonl")
            lacking = [
                (source, columns)
                for source, columns in sniffed
                if not (name in columns or (source.format == "jsonl" and in_some_jsonl))
            ]
            if not lacking:
                continue
            source, columns = lacking[0]
            shown = self.config.within(source.path)
            if config_key in required or len(lacking) == len(sniffed):
                where = "in " if source.format == "parquet" else "in the first MiB of "
                others = ", ".join(self.config.within(s.path) for s, _ in lacking[1:])
                hint = (hints or {}).get(config_key)
                self.error(
                    config_key,
                    f"expected a column {name!r} {where}{shown} (it has: {_listing(columns)})"
                    + (f"; not in {others} either" if others else "")
                    + (f"; {hint}" if hint else ""),
                )
            else:
                self.notes.append(
                    f"{config_key}: {name!r} is not in {shown}"
                    + (f" and {len(lacking) - 1} more sampled file(s)" if len(lacking) > 1 else "")
                    + "; ingest stores it as NULL where it is absent"
                )
        return sniffed

    def classes(self, key: str, log_key: str, tally: ClassTally | None, sniffed: Sniffed) -> None:
        """`[model.positive]`'s class names against the values of their column in the sampled files
        (`log_key`'s): a name no value matches is a note (a rare class may be missing from a sample),
        none matching any is a mistake (every label, or every logged decision, would read negative)."""
        if tally is None:
            return
        for source, columns in sniffed:
            if tally.column not in columns:
                continue  # named as a missing column
            try:
                sql, params = readers.sample_sql(source, [tally.column], columns)
                duckdb_type = readers.value_type(source, columns, tally.column)
                tally.add(self.con, sql, params, readers.alias(0), duckdb_type)
            except (SourceError, duckdb.Error) as exc:
                self.error(log_key, f"expected a readable {source.format} file: {read_error(exc)}")
                return
        mistake = tally.mistake(self.config.path, key, "in the sampled files")
        if mistake is not None and tally.none_matched:
            self.problems.append(mistake)
        elif mistake is not None:
            self.notes.append(f"{mistake.key}: {mistake.expected}")

    def model(self, model: ModelConfig, index: int) -> None:
        key = f"model[{index}]"
        columns = model.columns
        predictions = self.files(f"{key}.predictions", model.predictions, required=True)
        roles = columns.mapped(REQUIRED_ROLES + OPTIONAL_ROLES)
        wanted = [(f"{key}.columns.{role}", name) for role, name in roles.items()]
        features = self._features(key, model)
        required = {f"{key}.columns.{role}" for role in REQUIRED_ROLES}
        sniffed = self.columns(f"{key}.predictions", predictions, wanted + features, required)
        tallies = class_tallies(model)
        self.classes(key, f"{key}.predictions", tallies.get(KIND_PREDICTIONS), sniffed)
        if model.labels:
            labels = self.files(f"{key}.labels", model.labels, required=False)
            id_key = f"{key}.columns.{'label_id' if columns.label_id else 'id'}"
            label_wanted = [(id_key, columns.label_id or columns.id)]
            label_roles = columns.mapped(("label", "labeled_at"))
            label_wanted += [(f"{key}.columns.{role}", name) for role, name in label_roles.items()]
            sniffed = self.columns(
                f"{key}.labels",
                labels,
                label_wanted,
                {id_key, f"{key}.columns.label"},
                hints={} if columns.label_id else {id_key: label_id_hint(key)},
            )
            self.classes(key, f"{key}.labels", tallies.get(KIND_LABELS), sniffed)
        if model.reference.kind == "files" and model.reference.files:
            reference = self.files(f"{key}.reference.files", model.reference.files, required=True)
            self.columns(f"{key}.reference.files", reference, features, set())

    def stored(self) -> None:
        """Each model against what the store holds of it, once ingested as this config says: its
        predictions (`predictions`) and its quarantined rows (`quarantine`)."""
        path = self.config.store_path
        if str(path) == MEMORY or not path.exists():
            return  # nothing ingested yet: nothing to compare with
        try:
            with Store.open(path, read_only=True) as store:
                con = store.connection
                for index, model in enumerate(self.config.models):
                    key = f"model[{index}]"
                    try:
                        if not table_exists(con, MODELS_TABLE) or not check_settings(con, model):
                            continue  # not ingested yet
                    except StoreError as exc:  # built from another config: its rows follow that one
                        self.notes.append(f"{key}: not checked against the store: {exc}")
                        continue
                    if table_exists(con, predictions_table(model.name)):
                        self.predictions(key, model, con)
                    self.quarantine(key, model, con)
        except StoreError as exc:
            self.notes.append(
                f"the versions, routes, reference and quarantine were not checked against the store: {exc}"
            )

    def quarantine(self, key: str, model: ModelConfig, con: duckdb.DuckDBPyConnection) -> None:
        """A log with quarantined rows is a note: how many of how many, the top reason, where to
        see them. One whose every row is quarantined (a wrong mapping, text labels without
        `[model.positive]`) is a mistake: `check` would judge the model on nothing from it."""
        listing = f"`triage quarantine --model {shlex.quote(model.name)}` lists them"
        for share in quarantine_shares(con, model.name):
            log_key = f"{key}.{_LOG_KEYS[share.kind]}"
            detail = f" (e.g. {printable(share.detail, None)})" if share.detail else ""
            why = f"{share.reason_rows:,} as {share.reason!r}{detail}; {listing}"
            rows = f"{_ROW_NAMES[share.kind]} rows ingested"
            if share.quarantined == share.rows:
                self.error(
                    log_key,
                    f"expected rows the store keeps, got all {share.rows:,} {rows} quarantined: {why}",
                )
            else:
                self.notes.append(
                    f"{log_key}: {share.quarantined:,} of the {share.rows:,} {rows} are quarantined: {why}"
                )

    def predictions(self, key: str, model: ModelConfig, con: duckdb.DuckDBPyConnection) -> None:
        """What only the data can tell: a rule or a reference naming a version (a rule, a route) no
        prediction has, or a reference range starting after the latest prediction — each would
        judge or compare nothing, and `check` would say OK."""
        table = predictions_table(model.name)
        seen = {
            role: sorted(
                str(value)
                for (value,) in con.execute(
                    f"SELECT DISTINCT {column} FROM {quote(table)} WHERE {column} IS NOT NULL"
                ).fetchall()
            )
            for role, column in (("version", "_version"), ("route", "_route"))
        }
        # (config key, role, the name, as written)
        named = [(f"{key}.reference.version", "version", model.reference.version, model.reference.version)]
        named += [
            (f"{key}.alert[{a}].where.{role}", role, rule.named(role), rule.where.get(role))
            for a, rule in enumerate(model.alerts)
            for role in seen
        ]
        for config_key, role, name, written in named:
            if name is not None and name not in seen[role]:
                listed = _listing(seen[role]) if seen[role] else "none"
                self.error(
                    config_key, f"expected a {role} the store's predictions have ({listed}), got {written!r}"
                )
        # The latest up to now: a row stamped decades ahead (a producer's clock) says nothing of it.
        span = time_range(con, model, datetime.now(UTC))
        start, latest = model.reference.start, span[1] if span is not None else None
        if start is not None and latest is not None and start > latest:
            self.error(
                f"{key}.reference.start",
                f"expected a time no later than the store's latest prediction ({latest.isoformat()}): "
                f"a reference that has not begun holds no rows, got {start.isoformat()}",
            )

    @staticmethod
    def _features(key: str, model: ModelConfig) -> list[tuple[str, str]]:
        wanted = [(f"{key}.segments.columns", name) for name in model.segments]
        wanted += [(f"{key}.features.numeric", name) for name in model.numeric]
        wanted += [(f"{key}.features.categorical", name) for name in model.categorical]
        if model.features_inferred:  # else the config alone says which features a rule may name
            named = ((a, rule.named("feature")) for a, rule in enumerate(model.alerts))
            wanted += [
                (f"{key}.alert[{a}].where.feature", name)
                for a, name in named
                if name is not None and name != SCORE_FEATURE
            ]
        return wanted


def check_sources(config: Config) -> SourceCheck:
    """Check every model's sources: predictions (and a file-set reference) must match readable files,
    and every configured column must exist in them; label logs are checked when present."""
    checker = _Checker(config)
    try:
        for index, model in enumerate(config.models):
            checker.model(model, index)
        checker.stored()
    finally:
        checker.con.close()
    return SourceCheck(tuple(checker.problems), tuple(checker.notes))
