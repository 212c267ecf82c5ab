"""Real services for the tests: the pytest-django test database, Redis, daphne, runlisten."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.support import Stack, clone_database, database_url, drop_database


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment: None, django_db_blocker: Any) -> Iterator[None]:
    """Always build the test database: most tests reach it through raw connections and
    real processes, not through a ``django_db`` marker pytest-django would look for."""
    from django.db import connections
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False)
        connections.close_all()
        template = clone_database(database_url(), "tpl")  # before anything else connects
    yield
    drop_database(template)
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0)


@pytest.fixture(scope="session")
def db_url(django_db_setup: None, django_db_blocker: object) -> str:
    """URL of the migrated test database, for processes and raw psycopg connections."""
    return database_url()


@pytest.fixture(scope="session")
def template_url(db_url: str) -> str:
    """A pristine copy of the migrated database, taken before anything connected to it."""
    return _suffixed(db_url, "tpl")


def _suffixed(url: str, suffix: str) -> str:
    base, _, name = url.rpartition("/")
    name, sep, query = name.partition("?")
    return f"{base}/{name}_{suffix}{sep}{query}"


@pytest.fixture
def isolated_db(template_url: str) -> Iterator[str]:
    """A database of its own (cloned from the template) for tests that kill or restart things."""
    url = clone_database(template_url, f"iso{time.monotonic_ns() % 10**9}")
    yield url
    drop_database(url)


@pytest.fixture
def pg(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit psycopg connection to the test database, as any other writer would use."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def stack(db_url: str) -> Iterator[Stack]:
    """daphne + runlisten on the test database and real Redis, shared by the session."""
    with Stack(db_url) as running:
        yield running


@pytest.fixture
def fresh_stack(isolated_db: str) -> Iterator[Stack]:
    """A private daphne + runlisten pair on its own database, for tests that kill parts of it."""
    with Stack(isolated_db) as running:
        yield running


@pytest.fixture
def iso_pg(isolated_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(isolated_db, autocommit=True) as conn:
        yield conn
