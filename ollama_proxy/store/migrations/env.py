"""Run the store's migrations on the connection that ``store.migrate`` hands over."""

from alembic import context

from ollama_proxy.store.schema import metadata

connection = context.config.attributes["connection"]
# SQLite cannot alter most things in place: batch mode rebuilds the table instead.
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
