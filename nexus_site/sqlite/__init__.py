"""The embedded database: Django's SQLite backend whose writers queue on a lock."""
