"""Alembic's environment for the store's schema. It runs only on a connection that sculptrag hands it
(`pipeline.schema.upgrade_store`, called by `open_engine` and `sculptrag db upgrade`), inside the transaction
that holds the migration lock; there is no alembic.ini and no offline (--sql) mode."""

from alembic import context

from pipeline.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("sculptrag's migrations run on a connection from pipeline.schema.upgrade_store "
                       "(opening a Store, or `sculptrag db upgrade`), not from the alembic command")
# render_as_batch: a revision that alters a column is written so that it also works on SQLite (copy and move)
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():  # a no-op here: the caller's transaction is the migration's
    context.run_migrations()
