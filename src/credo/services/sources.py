"""Streaming readers for CSV and JSON Lines files: one row at a time, with line numbers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from credo.domain.errors import Problem, ValidationError


class SourceRow(NamedTuple):
    """One row of an input file: its first line number and its fields (or why it is unreadable)."""

    line: int
    fields: dict[str, Any] | None
    problem: Problem | None = None
    raw: str = ""


class _Counting(io.RawIOBase):
    """A binary reader that reports how many bytes were consumed."""

    def __init__(self, inner: BinaryIO, on_bytes: Callable[[int], None] | None) -> None:
        self.inner = inner
        self.on_bytes = on_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self.on_bytes is not None and n:
            self.on_bytes(n)
        return n


def detect_format(path: Path, declared: str | None = None) -> str:
    """'csv' or 'jsonl', from the declared format or the file name."""
    fmt = (declared or path.suffix.lstrip(".")).lower()
    if fmt in ("csv",):
        return "csv"
    if fmt in ("jsonl", "ndjson", "json"):
        return "jsonl"
    raise ValidationError(
        f"cannot tell the format of {path.name}: name it .csv or .jsonl, or pass --format"
    )


class RawBatch(NamedTuple):
    """Rows as read, before parsing: cheap to read sequentially and to ship to a worker.

    CSV items are (line, values) with the header in `names`; JSON Lines items are
    (line, text). An item whose second element is a Problem could not be read at all.
    """

    fmt: str
    names: tuple[str, ...]
    items: list[tuple[int, Any]]


def _text_stream(stream: BinaryIO, on_bytes: Callable[[int], None] | None) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        io.BufferedReader(_Counting(stream, on_bytes), 1 << 20),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )


def read_batches(
    stream: BinaryIO,
    fmt: str,
    allowed: tuple[str, ...],
    size: int,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[RawBatch]:
    """Read a CSV (header line first) or JSON Lines stream in batches of `size` rows.

    A CSV header naming a column outside `allowed` refuses the whole file before any row.
    """
    text = _text_stream(stream, on_bytes)
    items: list[tuple[int, Any]] = []
    if fmt == "csv":
        reader = csv.reader(text, strict=True)
        names = _csv_header(reader, allowed)
        if names is None:
            return
        while True:
            start = reader.line_num + 1
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                items.append((start, Problem("row", f"malformed CSV: {exc}")))
                continue
            if not values or (len(values) == 1 and not values[0].strip() and len(names) > 1):
                continue  # a blank line
            items.append((start, values))
            if len(items) >= size:
                yield RawBatch(fmt, names, items)
                items = []
    else:
        names = ()
        for number, line in enumerate(text, 1):
            if line.strip():
                items.append((number, line))
                if len(items) >= size:
                    yield RawBatch(fmt, names, items)
                    items = []
    if items:
        yield RawBatch(fmt, names, items)


def parse_batch(batch: RawBatch) -> list[SourceRow]:
    """Turn a raw batch into rows with fields, or the reason a row cannot be read."""
    rows: list[SourceRow] = []
    append = rows.append
    if batch.fmt == "csv":
        names = batch.names
        width = len(names)
        for line, values in batch.items:
            if isinstance(values, Problem):
                append(SourceRow(line, None, values))
            elif len(values) != width:
                problem = Problem("row", f"has {len(values)} fields; the header has {width}")
                append(SourceRow(line, None, problem, ",".join(values)))
            elif _bad_text(values):
                append(
                    SourceRow(line, None, Problem("row", "is not valid UTF-8"), ",".join(values))
                )
            else:
                append(SourceRow(line, dict(zip(names, values, strict=True)), None, ""))
        return rows
    for line, text in batch.items:
        stripped = text.strip()
        if _bad_text([stripped]):
            append(SourceRow(line, None, Problem("row", "is not valid UTF-8"), stripped))
            continue
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            append(SourceRow(line, None, Problem("row", f"is not valid JSON: {exc.msg}"), stripped))
            continue
        if not isinstance(value, dict):
            append(SourceRow(line, None, Problem("row", "must be a JSON object"), stripped))
            continue
        append(SourceRow(line, value, None, stripped))
    return rows


def raw_text(row: SourceRow) -> str:
    """The row as it was in the file, for the rejects file."""
    if row.raw or row.fields is None:
        return row.raw
    return ",".join("" if v is None else str(v) for v in row.fields.values())


class RawChunk(NamedTuple):
    """A run of whole rows as bytes, cut at a row boundary, with the line it starts on.

    Cutting needs no parsing: a newline ends a CSV row when the quotes before it pair up,
    and always ends a JSON Lines row. The bytes are parsed wherever the chunk is validated,
    in a worker process for big files.
    """

    fmt: str
    names: tuple[str, ...]
    data: bytes
    first_line: int


def read_chunks(
    stream: BinaryIO,
    fmt: str,
    allowed: tuple[str, ...],
    chunk_bytes: int = 4 << 20,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[RawChunk]:
    """Cut a CSV or JSON Lines stream into chunks of whole rows (the CSV header is checked
    first, and a header naming an unknown column refuses the file before any row)."""
    names: tuple[str, ...] = ()
    line = 1
    pending = b""
    if fmt == "csv":
        head = stream.readline()
        while head.count(b'"') % 2 and (more := stream.readline()):
            head += more
        if on_bytes is not None:
            on_bytes(len(head))
        text = head.decode("utf-8-sig", errors="surrogateescape")
        parsed = _csv_header(csv.reader(io.StringIO(text, newline="")), allowed)
        if parsed is None:
            return
        names = parsed
        line += head.count(b"\n")
    elif (first := stream.read(3)) != b"\xef\xbb\xbf":  # drop a UTF-8 byte order mark
        pending = first
    while True:
        block = stream.read(chunk_bytes)
        if on_bytes is not None and block:
            on_bytes(len(block))
        data = pending + block
        if not block:
            if data.strip():
                yield RawChunk(fmt, names, data, line)
            return
        cut = _row_boundary(data, fmt)
        if cut < 0:
            pending = data
            continue
        whole, pending = data[: cut + 1], data[cut + 1 :]
        yield RawChunk(fmt, names, whole, line)
        line += whole.count(b"\n")


def _row_boundary(data: bytes, fmt: str) -> int:
    """The last newline in `data` that ends a row, or -1."""
    cut = data.rfind(b"\n")
    if fmt != "csv":
        return cut
    quotes = data.count(b'"')
    while cut >= 0:
        if (quotes - data.count(b'"', cut + 1)) % 2 == 0:
            return cut
        cut = data.rfind(b"\n", 0, cut)
    return -1


def parse_chunk(chunk: RawChunk) -> list[SourceRow]:
    """The rows of a chunk, numbered by the file's lines."""
    if chunk.fmt != "csv":
        text = chunk.data.decode("utf-8", errors="surrogateescape")
        items = [
            (chunk.first_line + offset, line)
            for offset, line in enumerate(text.split("\n"))
            if line.strip()
        ]
        return parse_batch(RawBatch(chunk.fmt, chunk.names, items))
    names = chunk.names
    return [
        SourceRow(item[0], dict(zip(names, item[1], strict=True)), None, "")
        if not isinstance(item, SourceRow)
        else item
        for item in csv_rows(chunk)
    ]


def csv_rows(chunk: RawChunk) -> Iterator[tuple[int, list[str]] | SourceRow]:
    """The rows of a CSV chunk: (line, values) for a row with as many fields as the header,
    the row that could not be read as a SourceRow with its problem; blank lines skipped."""
    text = chunk.data.decode("utf-8", errors="surrogateescape")
    clean = text.isascii() or not _bad_text([text])  # check the bytes once, not per row
    width = len(chunk.names)
    base = chunk.first_line
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        start = base + reader.line_num
        try:
            for values in reader:
                if len(values) == width and (clean or not _bad_text(values)):
                    yield start, values
                elif not values or (len(values) == 1 and not values[0].strip() and width > 1):
                    pass  # a blank line
                elif len(values) != width:
                    problem = Problem("row", f"has {len(values)} fields; the header has {width}")
                    yield SourceRow(start, None, problem, ",".join(values))
                else:
                    problem = Problem("row", "is not valid UTF-8")
                    yield SourceRow(start, None, problem, ",".join(values))
                start = base + reader.line_num
            return
        except csv.Error as exc:
            yield SourceRow(start, None, Problem("row", f"malformed CSV: {exc}"))


def read_rows(
    stream: BinaryIO,
    fmt: str,
    allowed: tuple[str, ...],
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[SourceRow]:
    """Yield parsed rows of a CSV or JSON Lines stream, one at a time."""
    for batch in read_batches(stream, fmt, allowed, 5_000, on_bytes):
        yield from parse_batch(batch)


def _bad_text(values: list[str]) -> bool:
    """True when undecodable bytes (kept as lone surrogates) are in the values."""
    joined = "".join(values)
    if joined.isascii():
        return False
    try:
        joined.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _csv_header(reader: Any, allowed: tuple[str, ...]) -> tuple[str, ...] | None:
    try:
        header = next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        raise ValidationError(
            "line 1: the CSV header cannot be read", [Problem("line 1", str(exc))]
        ) from exc
    names = [h.strip() for h in header]
    unknown = [n for n in names if n not in allowed]
    problems = [
        Problem(
            f"line 1, column {n!r}",
            "the authority comes from the credentials, never from the file"
            if n == "authority"
            else "unknown column",
        )
        for n in unknown
    ]
    dupes = sorted({n for n in names if names.count(n) > 1})
    problems += [Problem(f"line 1, column {n!r}", "appears more than once") for n in dupes]
    if problems:
        raise ValidationError(
            f"the CSV header names columns credo does not accept (allowed: {', '.join(allowed)})",
            problems,
        )
    return tuple(names)
