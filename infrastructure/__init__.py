"""Adapters: recorders for SQLite and PostgreSQL, the log follower, configuration of stores."""
