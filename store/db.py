"""Engine and sessions for the records database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Table, event, inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine


def private_file(path: Path) -> None:
    """Create `path` readable and writable by its owner only (it holds PHI), and tighten it and its
    SQLite companions if they already exist. Done before SQLite opens it: SQLite gives the -wal,
    -shm and -journal files the database file's permissions."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    tighten(path)


def tighten(path: Path) -> None:
    """Owner-only permissions on a SQLite file and its -wal, -shm and -journal files, where they exist."""
    for companion in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        if companion.exists():
            companion.chmod(0o600)


def prepare_sqlite(url: str) -> None:
    """For a SQLite file URL: its directory exists and the file is private (see private_file)."""
    if not url.startswith("sqlite") or "///" not in url:
        return
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        private_file(Path(path))


def make_engine(url: str, **kwargs) -> Engine:
    # Statement parameters hold PHI: never let them into exception texts and logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        prepare_sqlite(url)
        kwargs.setdefault("pool_size", 20)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling is off (see _sqlite_pragmas); SQLAlchemy begins.
        # Units of work that write ask for BEGIN IMMEDIATE (see writing()): a read transaction
        # that later writes would otherwise fail at once, not wait, when another writer went first.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 20)
    return create_engine(url, pool_pre_ping=True, max_overflow=20, **kwargs)


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writing") else "BEGIN")


def writing(engine: Engine) -> Engine:
    """The same engine, for a transaction that will write (takes SQLite's write lock up front)."""
    return engine.execution_options(writing=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # transactions are begun explicitly (see above)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL with synchronous=NORMAL: a crash of the process loses nothing committed; a power cut may
    # lose the last commits but never corrupts the file. Production runs on PostgreSQL.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work that writes: commit on success, roll back on any error."""
    with Session(writing(engine), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def table_of(model: type[SQLModel]) -> Table:
    """A table model's Core table (SQLModel sets `__table__` on it; its type stubs do not declare it)."""
    table = inspect(model).local_table
    assert isinstance(table, Table), f"{model.__name__} is not a table model"
    return table
