"""The SQL of each migration, frozen in ``sql/<migration>.sql`` as it was when the migration was written.

Migrations run the text of their own version, never the code's current one, so
``sqlmigrate pgevents 0001`` prints what 0001 really did and a database migrated long ago
and one migrated today go through the same steps. A new version of a database function is a
new migration with a new file; the files of applied migrations never change. (Modules whose
name starts with ``_`` are not migrations to Django's loader.)
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent / "sql"


def read(name: str) -> str:
    """The frozen text of ``sql/<name>.sql``."""
    return (HERE / f"{name}.sql").read_text(encoding="utf-8")
