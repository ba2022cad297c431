"""Database plumbing: declarative base, async engine, migrations (SQLAlchemy 2 + asyncpg)."""
