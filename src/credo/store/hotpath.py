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

import asyncio
import os
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Generic, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from sqlalchemy import Engine, event

from credo.store.db import PG_CONNECT_TIMEOUT, PG_POOL_TIMEOUT, is_sqlite

T = TypeVar("T")
In = TypeVar("In")
Out = TypeVar("Out")
POOL_SIZE = 8  # connections per process: the request threads share them for well under 1 ms
# Each hot connection's session, set once it is opened (the pool's `configure`):
# - generic plans: the hot statements are prepared (psycopg prepares a statement on its
#   fifth run) and their best plan does not depend on the values bound, the same index
#   probes for any subject. PostgreSQL would still plan the batched lookup afresh on every
#   run, finding the generic plan's estimate no better than a custom one's: about 0.25 ms
#   of the server's CPU a batch, a third of what the lookup costs it (docs/performance.md);
# - READ COMMITTED, whatever the database's or role's default: `credo_log_inquiries` reads
#   the audit chain's head after taking its lock, which needs a snapshot per statement.
# Set by a statement, not by the connection's `options`, so that the URL's options (a
# search_path, say) and PGOPTIONS apply as they do to every other connection.
SESSION_SQL = (
    "SELECT set_config('plan_cache_mode', 'force_generic_plan', false), "
    "set_config('default_transaction_isolation', 'read committed', false)"
)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute(SESSION_SQL)


async def _configure_async(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute(SESSION_SQL)


def _settings(engine: Engine) -> dict[str, Any]:
    """The pool settings for an engine's database."""
    return {
        "conninfo": engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
        "kwargs": {"autocommit": True, "connect_timeout": PG_CONNECT_TIMEOUT},
        "min_size": 1,
        "max_size": POOL_SIZE,
        "timeout": PG_POOL_TIMEOUT,
        "reconnect_timeout": PG_POOL_TIMEOUT,
        "name": "credo-hot",
    }


class HotPool:
    """Autocommit psycopg connections to one PostgreSQL database, for one process."""

    def __init__(self, engine: Engine) -> None:
        self.pool = ConnectionPool(**_settings(engine), configure=_configure, open=True)

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


# ----------------------------------------------------------------------------- async

# The async pools, per event loop (a pool belongs to the loop it was opened on) and engine.
# `close_async` closes one: the app's shutdown does (FastAPI's lifespan). A loop that ends
# without it leaves its pool's connections open until the process ends.
_async_pools: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop,
    weakref.WeakKeyDictionary[Engine, asyncio.Task[AsyncConnectionPool[Any]]],
] = weakref.WeakKeyDictionary()


async def _async_pool(engine: Engine) -> AsyncConnectionPool[Any]:
    """The engine's pool on this loop; the first caller opens it, the others await that."""
    loop = asyncio.get_running_loop()
    pools = _async_pools.get(loop)
    if pools is None:  # not setdefault: its default would be built on every call
        pools = _async_pools[loop] = weakref.WeakKeyDictionary()
    opening = pools.get(engine)
    if opening is None:
        opening = pools[engine] = asyncio.create_task(_open(engine))
    return await opening


async def _open(engine: Engine) -> AsyncConnectionPool[Any]:
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        **_settings(engine), configure=_configure_async, open=False
    )
    await pool.open()  # starts the pool's tasks; connections are made in the background
    return pool


@asynccontextmanager
async def async_connection(engine: Engine) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An autocommit async psycopg connection to a PostgreSQL engine's database, pooled on
    the running event loop; after a lost connection the idle ones are checked."""
    pool = await _async_pool(engine)
    try:
        async with pool.connection() as conn:
            yield conn
    except psycopg.OperationalError:
        await pool.check()
        raise


class LoopBatcher(Generic[In, Out]):
    """Requests on one event loop handled in batches: the group commit's shape, shared.

    Each caller queues its item and awaits its result; one task hands whatever queued
    meanwhile to `handle`, then the next batch, and ends when the queue is empty. `handle`
    returns one result per item, or an exception for an item that failed alone; when it
    raises, every item of the batch fails with that error. A caller that goes away does not
    stop its item: it is handled with the rest, the result dropped.
    """

    MAX_BATCH = 500

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: In) -> Out:
        """Queue one item and return its result once its batch is handled (or raise)."""
        done: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        # A caller cancelled here cancels `done` too; its item stays queued and is handled
        # with its batch all the same (`_run` skips a result nobody waits for).
        return await done

    async def handle(self, items: list[In]) -> list[Out | Exception]:
        """One result (or one item's own error) per item, in order."""
        raise NotImplementedError

    async def _run(self) -> None:
        while self._queue:
            batch = self._queue[: self.MAX_BATCH]
            del self._queue[: self.MAX_BATCH]
            try:
                results = await self.handle([item for item, _ in batch])
            except Exception as exc:  # handed to every waiting caller, which re-raises it
                results = [exc] * len(batch)
            for (_, done), result in zip(batch, results, strict=True):
                if done.done():
                    continue
                if isinstance(result, Exception):
                    done.set_exception(result)
                else:
                    done.set_result(result)


class PerLoop(Generic[T]):
    """One object per event loop and database, made on first use by `make(engine)`: for
    what lives on a loop (a batching task and its queue) and serves one database.

    >>> async_inquiry_log = PerLoop(AsyncInquiryLog)
    >>> async_inquiry_log(engine).log(inquiry)  # on a running loop
    """

    def __init__(self, make: Callable[[Engine], T]) -> None:
        self._make = make
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, weakref.WeakKeyDictionary[Engine, T]
        ] = weakref.WeakKeyDictionary()

    def __call__(self, engine: Engine) -> T:
        """The object of this database on the running loop."""
        loop = asyncio.get_running_loop()
        found = self._by_loop.get(loop)
        if found is None:  # not setdefault: its default would be built on every call
            found = self._by_loop[loop] = weakref.WeakKeyDictionary()
        made = found.get(engine)
        if made is None:
            made = found[engine] = self._make(engine)
        return made


async def close_async(engine: Engine) -> None:
    """Close the engine's async pool on the running event loop, if it has one."""
    pools = _async_pools.get(asyncio.get_running_loop())
    opening = pools.pop(engine, None) if pools is not None else None
    if opening is not None:
        await (await opening).close(timeout=5)
