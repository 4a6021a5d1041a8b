"""Migrations build the whole schema from empty, match the models, and gate start-up."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store.db import Database
from store.errors import NotMigratedError
from store.models import Base
from store.search import described_by_models

BACKENDS = pytest.mark.parametrize("fresh_db_url", ["sqlite", "postgresql"], indirect=True)


@BACKENDS
def test_upgrade_from_empty_creates_every_table(fresh_db_url: str) -> None:
    db = Database(fresh_db_url)
    assert db.current_revision() is None
    db.upgrade()
    assert db.current_revision() == db.head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    db.dispose()


@BACKENDS
def test_migrations_match_the_models(fresh_db_url: str) -> None:
    """No model change may land without its migration."""
    db = Database(fresh_db_url)
    db.upgrade()
    with db.engine.connect() as conn:
        opts = {"compare_type": True, "include_name": described_by_models}
        ctx = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []
    db.dispose()


@BACKENDS
def test_downgrade_to_empty_and_up_again(fresh_db_url: str) -> None:
    db = Database(fresh_db_url)
    db.upgrade()
    db.downgrade("base")
    assert "tickets" not in inspect(db.engine).get_table_names()
    db.upgrade()
    assert "tickets" in inspect(db.engine).get_table_names()
    db.dispose()


@BACKENDS
def test_unmigrated_database_is_refused_with_the_fix(fresh_db_url: str) -> None:
    db = Database(fresh_db_url)
    with pytest.raises(NotMigratedError) as info:
        db.check_migrated()
    assert "sitedesk db upgrade" in str(info.value)
    assert "password" not in str(info.value)
    db.dispose()
