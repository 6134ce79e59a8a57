"""Store: verdicts and IP lists in Postgres (production) or SQLite (embedded), schema by Alembic."""
