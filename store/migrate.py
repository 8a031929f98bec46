"""Alembic migrations, driven from code so `iop db upgrade` needs no ini file or working dir."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from store.db import prepare_sqlite

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    prepare_sqlite(url)  # a new SQLite file is created private before alembic opens it
    command.upgrade(alembic_config(url), revision)


def current_heads() -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    return tuple(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
