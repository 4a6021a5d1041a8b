"""Alembic environment: runs on the connection the caller hands over (see store.db)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from store.models import Base
from store.search import described_by_models

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # plain `alembic` command line: use SITEDESK_ settings
        from store.settings import StoreSettings

        engine = create_engine(StoreSettings().resolved_database_url())
        with engine.begin() as conn:
            _migrate(conn)
        return
    _migrate(connection)


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs table rebuilds for ALTER
        compare_type=True,
        include_name=described_by_models,  # the search index's own tables, columns, indexes
    )
    with context.begin_transaction():
        context.run_migrations()


run()
