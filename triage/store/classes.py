"""`[model.positive]` against the values its columns hold in the logs.

A class name that no logged label (or decision) has reads every one of them as negative: `check`
then shows precision 0 and a decision rate of 0 and says OK. `ingest` warns of it over the rows it
reads, `config check` reports it over the files it samples; both count here, matching as ingest does
(`coerce.class_sql`: trimmed, in any case).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from triage.config import ConfigError, ModelConfig
from triage.printable import printable
from triage.store.coerce import class_absent_sql, class_name_sql, text_sql
from triage.store.schema import KIND_LABELS, KIND_PREDICTIONS

SHOWN_VALUES = 5  # the most frequent values a mismatch lists
# The values of one read kept besides the matching ones: a class column has a handful, a column
# mapped to it by mistake (an id) may have millions.
KEPT_VALUES = 20
# The kind of log each role of `[model.positive]` is read from, and what a name matching nothing does.
_ROLES = {
    "label": (KIND_LABELS, "every label reads as 0"),
    "prediction": (KIND_PREDICTIONS, "every logged decision reads as negative"),
}


@dataclass
class ClassTally:
    """The values of a class column (`columns.label` or `columns.prediction` under `[model.positive]`)
    in the rows read: how many rows had one, how many each configured name matched, and the most
    frequent values as logged."""

    role: str
    column: str
    names: tuple[str, ...]
    rows: int = 0
    matched: Counter[str] = field(default_factory=Counter)
    values: Counter[str] = field(default_factory=Counter)

    def add(
        self,
        con: duckdb.DuckDBPyConnection,
        rows_sql: str,
        params: dict[str, object] | None,
        expr: str,
        duckdb_type: str,
    ) -> None:
        """Count the values of `expr` (of `duckdb_type`) in the rows of a reader query (`readers`)
        that parsed; a null, a blank or a null word is no class (ingest leaves its decision to the
        threshold, or quarantines its label)."""
        matches = ", ".join(class_name_sql("_value", "VARCHAR", (name,)) for name in self.names)
        found = con.execute(
            f"""
            SELECT _value, _n, _total, _matches FROM (
                SELECT _value, _n, sum(_n) OVER () AS _total, [{matches}] AS _matches,
                    row_number() OVER (ORDER BY _n DESC, _value) AS _rank
                FROM (
                    SELECT {text_sql(expr, duckdb_type)} AS _value, count(*) AS _n FROM ({rows_sql})
                    WHERE _perr IS NULL AND NOT {class_absent_sql(expr, duckdb_type)} GROUP BY 1
                )
            )
            WHERE _rank <= {KEPT_VALUES} OR list_bool_or(_matches)
            """,
            params,
        ).fetchall()
        for value, count, _, matched in found:
            self.values[str(value)] += int(count)
            for name, hit in zip(self.names, matched, strict=True):
                if hit:
                    self.matched[name] += int(count)
        self.rows += int(found[0][2]) if found else 0

    def merge(self, other: ClassTally) -> None:
        """Add the counts of another read of the same column."""
        self.rows += other.rows
        self.matched.update(other.matched)
        self.values.update(other.values)

    def fresh(self) -> ClassTally:
        """An empty tally of the same column and names."""
        return ClassTally(self.role, self.column, self.names)

    @property
    def unmatched(self) -> tuple[str, ...]:
        """The configured names no value matched, once some value was read."""
        return tuple(name for name in self.names if not self.matched[name]) if self.rows else ()

    @property
    def none_matched(self) -> bool:
        """Whether values were read and no configured name matched any: every one reads negative."""
        return len(self.unmatched) == len(self.names)

    def mistake(self, config_path: str | Path, model_key: str, where: str) -> ConfigError | None:
        """The configured names no value matched, as a mistake of `{model_key}.positive.{role}`
        naming the column and its most frequent values (`where` the values were read); None when
        each name matched some value, or no value was read."""
        unmatched = self.unmatched
        if not unmatched:
            return None
        names = ", ".join(repr(name) for name in unmatched)
        common = sorted(self.values.items(), key=lambda item: (-item[1], item[0]))[:SHOWN_VALUES]
        seen = ", ".join(f"'{printable(value)}' {count:,}" for value, count in common)
        verb = "matches" if len(unmatched) == 1 else "match"
        consequence = f"; {_ROLES[self.role][1]}" if self.none_matched else ""
        return ConfigError(
            config_path,
            f"{model_key}.positive.{self.role}",
            f"expected class names that column {self.column!r} holds (trimmed, in any case): {names} "
            f"{verb} none of its {self.rows:,} values {where} (most frequent: {seen}){consequence}",
        )


def class_tallies(model: ModelConfig) -> dict[str, ClassTally]:
    """An empty tally per kind of log (predictions, labels) whose column `[model.positive]` names
    classes of."""
    tallies = {}
    for role, (kind, _) in _ROLES.items():
        names, column = getattr(model.positive, role), getattr(model.columns, role)
        if names and column is not None:
            tallies[kind] = ClassTally(role, column, names)
    return tallies
