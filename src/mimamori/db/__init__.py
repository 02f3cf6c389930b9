"""Control plane: SQLAlchemy models, sessions and migrations."""
