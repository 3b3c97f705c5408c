"""Finding and reading log files: files, globs, folders, hive partitions, formats, fingerprints.

A source in the config is a file, a glob (`**` recurses) or a folder (walked recursively; only
files with a known extension are taken, hidden and `_`-prefixed names are skipped). Formats come
from the extension (`.parquet`/`.pq`, `.csv`/`.tsv`, `.jsonl`/`.ndjson`/`.json`, each optionally
`.gz`), else from the first bytes. Folder names `key=value` between the source's root and the file
are hive partitions: they become columns when the file itself has no column of that name.

Fingerprints are cheap on purpose: sha256 over the length, the first and the last 64 KiB of the
region. A rewrite is detected when it changes the length, the head or the tail of the consumed
region (a Parquet footer and the newest log lines live there); an in-place edit of the middle of
a file that keeps its length, head and tail is not. Cost: two reads per changed file, whatever its size.
"""

from __future__ import annotations

import csv
import glob
import gzip
import hashlib
import io
import json
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from triage.store.errors import StoreError

BLOCK_BYTES = 64 * 1024
CHUNK_BYTES = 32 * 1024 * 1024
# An unterminated last line that does not parse yet is left for the next poll while the file was
# written to within this many seconds (its writer is probably mid-line).
TAIL_SETTLE_S = 10.0

_SUFFIX_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
_GLOB_CHARS = set("*?[")
_DELIMITERS = (",", "\t", ";", "|")


class SourceError(StoreError):
    """A log source that cannot be found, read or understood."""


@dataclass(frozen=True)
class SourceFile:
    """One log file: its absolute path, format, gzip flag and hive partition values."""

    path: str
    format: str  # "parquet" | "csv" | "jsonl"
    compressed: bool = False
    partitions: tuple[tuple[str, str], ...] = ()

    @property
    def appendable(self) -> bool:
        """Whether new lines can be read from where the last ingest stopped."""
        return self.format in ("csv", "jsonl") and not self.compressed


def _suffix_format(name: str) -> tuple[str | None, bool]:
    lower = name.lower()
    compressed = lower.endswith(".gz")
    if compressed:
        lower = lower[:-3]
    return _SUFFIX_FORMATS.get(os.path.splitext(lower)[1]), compressed


def _sniff_format(path: str) -> tuple[str, bool]:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            compressed = head[:2] == b"\x1f\x8b"
            if compressed:
                handle.seek(0)
                with gzip.open(handle) as inner:
                    head = inner.read(4096)
            else:
                head += handle.read(4092)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from None
    if head[:4] == b"PAR1":
        if compressed:
            raise SourceError(f"{path}: gzip'd Parquet is not supported; Parquet compresses itself")
        return "parquet", False
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return ("jsonl" if first == b"{" else "csv"), compressed


def _partitions(path: str, root: str) -> tuple[tuple[str, str], ...]:
    try:
        relative = Path(path).parent.relative_to(root)
    except ValueError:
        return ()
    pairs = []
    for part in relative.parts:
        if "=" in part:
            key, _, value = part.partition("=")
            if key:
                pairs.append((unquote(key), unquote(value)))
    return tuple(pairs)


def _walk(folder: str) -> Iterator[str]:
    for current, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for name in sorted(files):
            if name.startswith((".", "_")) or name.endswith(".crc"):
                continue
            if _suffix_format(name)[0] is not None:
                yield os.path.join(current, name)


def _glob_root(pattern: str) -> str:
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if any(char in part for char in _GLOB_CHARS):
            break
        fixed.append(part)
    return str(Path(*fixed)) if fixed else "."


def expand(pattern: str) -> list[SourceFile]:
    """The files a source names (a file, a glob or a folder), sorted by path; [] when none match."""
    if "://" in pattern:
        raise SourceError(f"{pattern}: object storage is not supported yet; use a local path")
    if os.path.isdir(pattern):
        root, paths, walked = pattern, list(_walk(pattern)), True
    elif any(char in pattern for char in _GLOB_CHARS):
        root, paths, walked = _glob_root(pattern), [], False
        for match in sorted(glob.glob(pattern, recursive=True)):
            if os.path.isdir(match):
                paths.extend(_walk(match))
            else:
                paths.append(match)
    elif os.path.exists(pattern):
        root, paths, walked = os.path.dirname(pattern) or ".", [pattern], False
    else:
        return []
    files: dict[str, SourceFile] = {}
    for path in paths:
        absolute = os.path.abspath(path)
        fmt, compressed = _suffix_format(absolute)
        if fmt is None:
            if walked:
                continue
            fmt, compressed = _sniff_format(absolute)
        files[absolute] = SourceFile(absolute, fmt, compressed, _partitions(absolute, os.path.abspath(root)))
    return [files[path] for path in sorted(files)]


def fingerprint(path: str, length: int) -> str:
    """sha256 of (length, first 64 KiB, last 64 KiB) of the first `length` bytes of a file."""
    digest = hashlib.sha256(str(length).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(min(BLOCK_BYTES, length)))
        if length > BLOCK_BYTES:
            start = max(BLOCK_BYTES, length - BLOCK_BYTES)
            handle.seek(start)
            digest.update(handle.read(length - start))
    return digest.hexdigest()


def digest(path: str, length: int) -> str:
    """sha256 of the first `length` bytes of a file: every byte, where `fingerprint` reads the ends."""
    found = hashlib.sha256()
    with open(path, "rb") as handle:
        left = length
        while left > 0:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                break
            found.update(chunk)
            left -= len(chunk)
    return found.hexdigest()


def _open_binary(source: SourceFile) -> io.BufferedIOBase:
    if source.compressed:
        return gzip.open(source.path, "rb")
    return open(source.path, "rb")


def _decode(data: bytes, at_start: bool) -> tuple[str, tuple[int, ...]]:
    """The text of `data` and the 0-based indexes of its lines (split at \\n) that are not UTF-8:
    in those, each byte that is not shows as `\\xNN`, so that nothing is lost and ingest can
    quarantine the line with its bytes."""
    bad: tuple[int, ...] = ()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        lines, found = [], []
        for index, line in enumerate(data.split(b"\n")):
            try:
                lines.append(line.decode("utf-8"))
            except UnicodeDecodeError:
                lines.append(line.decode("utf-8", errors="backslashreplace"))
                found.append(index)
        text, bad = "\n".join(lines), tuple(found)
    if at_start and text.startswith("\ufeff"):
        text = text[1:]
    return text, bad


def read_error(exc: BaseException) -> str:
    """Why a log could not be read, in a few words: a gzip'd log cut short (a copy still being
    written, a full disk) says so; any other error as it is."""
    if isinstance(exc, EOFError):
        return "truncated gzip: it ends before its end-of-stream marker (cut short, or corrupt)"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def first_line(source: SourceFile) -> str | None:
    """The first line of a text log (a CSV header), without its line ending; None for an empty file."""
    try:
        with _open_binary(source) as handle:
            line = handle.readline(16 * 1024 * 1024)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{source.path}: cannot read ({read_error(exc)})") from None
    return _decode(line, True)[0].rstrip("\r\n") if line else None


@dataclass(frozen=True)
class CsvHeader:
    """A CSV file's delimiter and column names."""

    delimiter: str
    names: tuple[str, ...]


def csv_header(source: SourceFile) -> CsvHeader | None:
    """Read and parse the header line of a CSV log (delimiter sniffed among , TAB ; |); None for an
    empty file (no header yet: no rows)."""
    line = first_line(source)
    if line is None:
        return None
    if source.path.lower().removesuffix(".gz").endswith(".tsv"):
        delimiter = "\t"
    else:
        delimiter = max(_DELIMITERS, key=line.count) if line else ","
        if line.count(delimiter) == 0:
            delimiter = ","
    try:
        names = [name.strip() for name in next(csv.reader([line], delimiter=delimiter), [])]
    except csv.Error as exc:
        raise SourceError(f"{source.path}: expected a CSV header line ({exc})") from None
    if not line or not all(names):
        raise SourceError(f"{source.path}: expected a header line with column names, got {line[:80]!r}")
    return CsvHeader(delimiter, tuple(names))


@dataclass(frozen=True)
class TextChunk:
    """Complete lines of a text log: `text` holds `lines` lines joined by \\n, starting at `first_line`;
    `not_utf8`: the numbers of those lines that are not UTF-8 (`_decode`)."""

    text: str
    first_line: int
    lines: int
    not_utf8: tuple[int, ...] = ()


class TextReader:
    """Reads the lines of a text log from a byte offset, in chunks, up to a known size.

    After iterating `chunks()`, `end_byte`, `end_line` and `ends_with_newline` say how far the
    log was consumed: the next incremental read starts there.
    """

    def __init__(
        self,
        source: SourceFile,
        start_byte: int,
        start_line: int,
        size: int | None,
        tail_complete: TailCheck,
        mtime: float,
    ) -> None:
        self.source = source
        self.end_byte = start_byte
        self.end_line = start_line
        self.ends_with_newline = True
        self._limit = None if source.compressed else size
        self._tail_complete = tail_complete
        self._settled = source.compressed or time.time() - mtime >= TAIL_SETTLE_S

    def chunks(self) -> Iterator[TextChunk]:
        """Yield the lines not consumed yet; hold back a fresh, incomplete last line."""
        with _open_binary(self.source) as handle:
            if self.end_byte:
                handle.seek(self.end_byte)
            carry = b""
            position = self.end_byte
            while True:
                want = CHUNK_BYTES
                if self._limit is not None:
                    want = min(want, self._limit - position)
                block = handle.read(want) if want > 0 else b""
                position += len(block)
                if not block:
                    break
                data = carry + block
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    continue
                carry = data[cut + 1 :]
                yield self._emit(data[:cut], terminated=True)
            if carry:
                tail, _ = _decode(carry, self.end_byte == 0)
                if self._settled or self._tail_complete(tail.rstrip("\r")):
                    yield self._emit(carry, terminated=False)

    def _emit(self, data: bytes, terminated: bool) -> TextChunk:
        text, bad = _decode(data, self.end_byte == 0)
        lines = text.count("\n") + 1
        if "\r" in text:  # CRLF line ends: the CR is not part of the line
            text = text.replace("\r\n", "\n").removesuffix("\r")
        chunk = TextChunk(text, self.end_line + 1, lines, tuple(self.end_line + 1 + i for i in bad))
        self.end_byte += len(data) + (1 if terminated else 0)
        self.end_line += lines
        self.ends_with_newline = terminated
        return chunk


class TailCheck:
    """Whether an unterminated last line looks complete (valid JSON object / full CSV record)."""

    def __init__(self, fmt: str, header: CsvHeader | None = None) -> None:
        self.fmt = fmt
        self.header = header

    def __call__(self, line: str) -> bool:
        if not line.strip():
            return False
        if self.fmt == "jsonl":
            try:
                return isinstance(json.loads(line), dict)
            except ValueError:
                return False
        if self.header is None:
            return True
        try:
            fields = next(csv.reader([line], delimiter=self.header.delimiter), [])
        except csv.Error:
            return False
        return len(fields) == len(self.header.names)


def head_text(source: SourceFile, max_bytes: int = 1024 * 1024) -> TextChunk:
    """The complete lines within the first `max_bytes` of a text log (for sniffing columns)."""
    try:
        with _open_binary(source) as handle:
            data = handle.read(max_bytes)
            more = handle.read(1)
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(f"{source.path}: cannot read ({read_error(exc)})") from None
    if more:
        cut = data.rfind(b"\n")
        data = data[:cut] if cut >= 0 else data
    text, bad = _decode(data, True)
    text = text.rstrip("\n").replace("\r\n", "\n").removesuffix("\r")
    lines = text.count("\n") + 1
    return TextChunk(text, 1, lines, tuple(1 + i for i in bad if i < lines))
