"""SCDB, the system of record: SQLAlchemy models, migrations, repositories, unit of work."""
