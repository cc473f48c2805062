"""Driver connections for the request hot paths: standing lookups and the inquiry log.

Through SQLAlchemy's pool a PostgreSQL statement costs about 0.25 ms of CPU (a pre-ping on
checkout, BEGIN, ROLLBACK on return, the result wrapped); straight through psycopg on an
autocommit connection it costs 0.05 ms. The standing endpoint runs thousands a second, so
its two statements (the lookup, and the inquiry log's commit) take psycopg connections from
a pool of their own (psycopg_pool), one per database and process. Everything else keeps
SQLAlchemy. On SQLite the same code gets the driver connection of an ordinary read.

A database that went away fails the statement (psycopg.OperationalError: the API answers
503); the pool then checks its idle connections and replaces the dead ones, so the service
recovers without a restart. The pool closes with its engine (`Engine.dispose()`).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from sqlalchemy import Engine, event

from credo.store.db import PG_CONNECT_TIMEOUT, PG_POOL_TIMEOUT, is_sqlite

POOL_SIZE = 8  # connections per process: the request threads share them for well under 1 ms


class HotPool:
    """Autocommit psycopg connections to one PostgreSQL database, for one process."""

    def __init__(self, engine: Engine) -> None:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.pool = ConnectionPool(
            url,
            kwargs={"autocommit": True, "connect_timeout": PG_CONNECT_TIMEOUT},
            min_size=1,
            max_size=POOL_SIZE,
            timeout=PG_POOL_TIMEOUT,
            reconnect_timeout=PG_POOL_TIMEOUT,
            name="credo-hot",
            open=True,
        )

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; after a lost connection the idle ones are checked."""
        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.OperationalError:
            self.pool.check()  # drop the other dead connections, not one request at a time
            raise

    def close(self) -> None:
        """Close every connection."""
        self.pool.close(timeout=5)


_pools: weakref.WeakKeyDictionary[Engine, tuple[int, HotPool]] = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def hot_pool(engine: Engine) -> HotPool:
    """The hot pool of this PostgreSQL engine's database in this process."""
    pid = os.getpid()
    with _pools_lock:
        found = _pools.get(engine)
        if found is None or found[0] != pid:  # a forked child opens its own connections
            found = _pools[engine] = (pid, HotPool(engine))
            event.listen(engine, "engine_disposed", _close)
        return found[1]


def _close(engine: Engine) -> None:
    """Engine.dispose(): close its hot pool too (a later use opens a new one)."""
    with _pools_lock:
        found = _pools.pop(engine, None)
    if found is not None and found[0] == os.getpid():
        found[1].close()


@contextmanager
def driver_connection(engine: Engine) -> Iterator[Any]:
    """A driver connection for one statement on a hot path: `conn.execute(sql, params)`.

    PostgreSQL: a pooled autocommit psycopg connection (marks `%s`). SQLite: the sqlite3
    connection of a read transaction (marks `?`).
    """
    if is_sqlite(engine):
        with engine.connect() as conn, conn.begin():
            yield conn.connection.driver_connection
        return
    with hot_pool(engine).connection() as pg:
        yield pg
