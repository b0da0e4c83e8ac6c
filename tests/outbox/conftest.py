"""Databases for the outbox/inbox tests: SQLite, and PostgreSQL through psycopg and asyncpg.

PostgreSQL comes from ``TIDINGS_POSTGRES_URL`` (scripts/test starts `scripts/postgres` and
sets it); each test gets a database of its own. Without PostgreSQL those tests skip with
the reason, and fail when ``TIDINGS_REQUIRE_POSTGRES=1`` (CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:55432/postgres"


def postgres_url() -> str:
    """The server URL, or skip (fail under TIDINGS_REQUIRE_POSTGRES=1) when none answers."""
    url = os.environ.get("TIDINGS_POSTGRES_URL") or DEFAULT_PG
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return url
    except Exception as exc:
        reason = (
            f"no PostgreSQL at {url} ({type(exc).__name__}); run `scripts/postgres start` "
            "and set TIDINGS_POSTGRES_URL, or `make test`, which does both"
        )
        if os.environ.get("TIDINGS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"TIDINGS_REQUIRE_POSTGRES=1 but {reason}", pytrace=False)
        pytest.skip(reason)


class _RolledBack(Exception):
    pass


@dataclass
class Db:
    """One test database: `url` for SQLAlchemy (sync or async driver), `engine` on it."""

    kind: str
    url: str
    engine: Engine | AsyncEngine

    @property
    def is_async(self) -> bool:
        return isinstance(self.engine, AsyncEngine)

    @property
    def sync_url(self) -> str:
        return self.url.replace("+asyncpg", "+psycopg").replace("+aiosqlite", "")

    def transaction(self, body: Callable[[Any], Any], commit: bool = True) -> Any:
        """Run `body(session)` in a transaction (an AsyncSession on async engines).

        The transaction commits, or with commit=False rolls back by an exception raised
        after `body`, as a failing service would.
        """
        try:
            if isinstance(self.engine, AsyncEngine):
                # An engine per call: asyncpg's connections and locks belong to one loop.
                engine = create_async_engine(self.url, poolclass=NullPool)

                async def go() -> Any:
                    try:
                        async with AsyncSession(engine) as s, s.begin():
                            result = body(s)
                            if asyncio.iscoroutine(result):
                                result = await result
                            if not commit:
                                raise _RolledBack
                            return result
                    finally:
                        await engine.dispose()

                return asyncio.run(go())
            with Session(self.engine) as s, s.begin():
                result = body(s)
                if not commit:
                    raise _RolledBack
                return result
        except _RolledBack:
            return None

    def execute(self, sql: str) -> None:
        engine = create_engine(self.sync_url, poolclass=NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(text(sql))
        finally:
            engine.dispose()

    def scalar_list(self, sql: str) -> list[Any]:
        engine = create_engine(self.sync_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql)).scalars())
        finally:
            engine.dispose()

    def scalar(self, sql: str) -> Any:
        engine = create_engine(self.sync_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return conn.execute(text(sql)).scalar()
        finally:
            engine.dispose()


DATABASES = [
    "sqlite",
    "sqlite+aiosqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("postgresql+asyncpg", marks=pytest.mark.postgres),
]


SYNC_DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
"""For tests whose app runs in other processes (synchronous engines there)."""


@pytest.fixture(params=DATABASES)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh, empty database of each kind (a new PostgreSQL database per test)."""
    with fresh_db(request.param, tmp_path) as database:
        yield database


@pytest.fixture(params=SYNC_DATABASES)
def sync_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh, empty database: SQLite or PostgreSQL through psycopg."""
    with fresh_db(request.param, tmp_path) as database:
        yield database


@contextlib.contextmanager
def fresh_db(kind: str, tmp_path: Path) -> Iterator[Db]:
    """A fresh, empty database of `kind` (a new PostgreSQL database, dropped afterwards)."""
    if kind.startswith("sqlite"):
        url = f"{kind}:///{tmp_path / 'app.db'}"
        engine: Engine | AsyncEngine = (
            create_async_engine(url, poolclass=NullPool)
            if "aiosqlite" in kind
            else create_engine(url)
        )
        yield Db(kind, url, engine)
        if isinstance(engine, AsyncEngine):
            asyncio.run(engine.dispose())
        else:
            engine.dispose()
        return
    server = make_url(postgres_url())
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url_obj = server.set(database=name)
    if kind == "postgresql+asyncpg":
        url_obj = url_obj.set(drivername="postgresql+asyncpg")
        # NullPool: each test transaction runs in its own event loop (asyncio.run).
        engine = create_async_engine(url_obj, poolclass=NullPool)
    else:
        engine = create_engine(url_obj)
    url = url_obj.render_as_string(hide_password=False)
    try:
        yield Db(kind, url, engine)
    finally:
        if isinstance(engine, AsyncEngine):
            asyncio.run(engine.dispose())
        else:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
