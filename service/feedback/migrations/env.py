"""Alembic environment: migrations run on the connection service.feedback.migrate hands over (it holds
the migration lock on it), compared against the store's own tables (service.feedback.schema)."""

from __future__ import annotations

from alembic import context

from service.feedback.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
