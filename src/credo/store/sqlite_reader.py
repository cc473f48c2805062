"""Reading a SQLite register as Arrow, through ADBC, in a process of its own.

ADBC's SQLite driver carries its own copy of the SQLite library. SQLite's locks are POSIX
record locks, which belong to a process, not to a file descriptor: when one library closes
its descriptor of the database or of its `-shm` index, every lock the process holds on that
file is gone, including those of the other library's connections (Python's `sqlite3`, which
the register's engine uses). Another process could then take the shared index for unused,
reset it under those connections and wait for their write lock forever ("locking
protocol"). So the driver never runs in a process that holds the register's own
connections: each `connect()` starts this module as a child process, which holds only the
driver's read-only connection.

The child takes one request a line on its standard input (JSON: a statement to run, or a
rollback) and answers each statement on its standard output: `O` and the result as an Arrow
IPC stream, or `E`, a 4-byte length and the error's text. The parent's side offers the few
DB-API calls the snapshot's readers use (`cursor`, `execute`, `fetchone`,
`fetch_arrow_table`, `fetch_record_batch`, `rollback`), so it stands in for the driver's own
connection.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from typing import IO, Any
from urllib.parse import quote


class ReaderError(RuntimeError):
    """The statement failed in the reading process (its message is the driver's)."""


class Connection:
    """A read-only ADBC connection to a SQLite file, held by a child process."""

    def __init__(self, path: str) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "credo.store.sqlite_reader", path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        self._to: IO[bytes] = self._child.stdin
        self._from: IO[bytes] = self._child.stdout

    def _send(self, request: dict[str, str]) -> None:
        self._to.write(json.dumps(request).encode() + b"\n")
        self._to.flush()

    def cursor(self) -> Cursor:
        return Cursor(self)

    def rollback(self) -> None:
        """End the read transaction; the next statement starts another."""
        self._send({"op": "rollback"})

    def close(self) -> None:
        """End the child: its input closed, and its output too (a result left unread would
        keep it writing)."""
        for pipe in (self._to, self._from):
            with contextlib.suppress(OSError):  # the child is gone already
                pipe.close()
        self._child.wait()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Cursor:
    """Statements on the child's connection; each result is read before the next."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def execute(self, sql: str) -> None:
        self._connection._send({"op": "execute", "sql": sql})

    def fetch_record_batch(self) -> Any:
        """The result as a pyarrow RecordBatchReader, streamed from the child."""
        import pyarrow as pa

        answer = self._connection._from
        status = answer.read(1)
        if status == b"E":
            size = int.from_bytes(answer.read(4), "big")
            raise ReaderError(answer.read(size).decode())
        if status != b"O":
            raise ReaderError("the SQLite reading process ended")
        return pa.ipc.open_stream(answer)

    def fetch_arrow_table(self) -> Any:
        return self.fetch_record_batch().read_all()

    def fetchone(self) -> tuple[Any, ...] | None:
        table = self.fetch_arrow_table()
        if table.num_rows == 0:
            return None
        return tuple(column[0].as_py() for column in table.columns)

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def connect(path: str) -> Connection:
    """A read-only connection to the SQLite file at `path`, in a child process."""
    return Connection(path)


def _serve(path: str) -> None:
    """The child: run each request on one read-only driver connection."""
    import adbc_driver_sqlite.dbapi
    import pyarrow as pa

    out = sys.stdout.buffer
    with adbc_driver_sqlite.dbapi.connect(f"file:{quote(path, safe='/')}?mode=ro") as conn:
        for line in sys.stdin.buffer:
            request = json.loads(line)
            if request["op"] == "rollback":
                conn.rollback()
                continue
            with conn.cursor() as cur:
                try:
                    cur.execute(request["sql"])
                    reader = cur.fetch_record_batch()
                except Exception as exc:
                    message = f"{type(exc).__name__}: {exc}".encode()
                    out.write(b"E" + len(message).to_bytes(4, "big") + message)
                    out.flush()
                    continue
                out.write(b"O")
                with pa.ipc.new_stream(out, reader.schema) as stream:
                    for batch in reader:
                        stream.write_batch(batch)
                out.flush()


if __name__ == "__main__":
    try:
        _serve(sys.argv[1])
    except BrokenPipeError:  # the parent closed its end before reading everything
        sys.exit(0)
