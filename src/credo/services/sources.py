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


def read_rows(
    stream: BinaryIO,
    fmt: str,
    allowed: tuple[str, ...],
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[SourceRow]:
    """Yield rows of a CSV (header line first) or JSON Lines stream.

    A CSV header naming a column outside `allowed` refuses the whole file before any row.
    """
    text = io.TextIOWrapper(
        io.BufferedReader(_Counting(stream, on_bytes), 1 << 20),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )
    if fmt == "csv":
        yield from _csv_rows(text, allowed)
    else:
        yield from _jsonl_rows(text)


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


def _csv_rows(text: io.TextIOWrapper, allowed: tuple[str, ...]) -> Iterator[SourceRow]:
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
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
    dupes = {n for n in names if names.count(n) > 1}
    problems += [Problem(f"line 1, column {n!r}", "appears more than once") for n in dupes]
    if problems:
        raise ValidationError(
            f"the CSV header names columns credo does not accept (allowed: {', '.join(allowed)})",
            problems,
        )
    width = len(names)
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield SourceRow(start, None, Problem("row", f"malformed CSV: {exc}"))
            continue
        if len(values) != width:
            if not values or (len(values) == 1 and not values[0].strip()):
                continue  # a blank line
            yield SourceRow(
                start,
                None,
                Problem("row", f"has {len(values)} fields; the header has {width}"),
                ",".join(values),
            )
            continue
        if _bad_text(values):
            yield SourceRow(start, None, Problem("row", "is not valid UTF-8"), ",".join(values))
            continue
        yield SourceRow(start, dict(zip(names, values, strict=True)), None, ",".join(values))


def _jsonl_rows(text: io.TextIOWrapper) -> Iterator[SourceRow]:
    for number, line in enumerate(text, 1):
        stripped = line.strip()
        if not stripped:
            continue
        if _bad_text([stripped]):
            yield SourceRow(number, None, Problem("row", "is not valid UTF-8"), stripped)
            continue
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            yield SourceRow(number, None, Problem("row", f"is not valid JSON: {exc.msg}"), stripped)
            continue
        if not isinstance(value, dict):
            yield SourceRow(number, None, Problem("row", "must be a JSON object"), stripped)
            continue
        yield SourceRow(number, value, raw=stripped)
