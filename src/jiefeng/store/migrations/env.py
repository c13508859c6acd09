"""Alembic environment: runs jiefeng's migrations on the connection the store hands over."""

from alembic import context

from jiefeng.store.schema import metadata, with_postgresql_options

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - the store always passes its connection
    raise RuntimeError("run migrations through `jiefeng db upgrade` or SqlStore.upgrade()")

with_postgresql_options()  # the metadata as the migrations made it, on either database
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
