"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary folder,
a free loopback port, ``pg_ctl start``; ``stop`` removes it all.

PostgreSQL refuses to run as root, so under root the server runs as the unprivileged user
``nobody`` (it owns the temporary folder). ``binaries()`` is None where the server's programs
are not installed (Debian's ``postgresql`` package puts them in /usr/lib/postgresql/N/bin).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

USER = "nobody"  # the unprivileged account the server runs as under root


def binaries() -> str | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``; None if not installed."""
    found = shutil.which("initdb")
    candidates = [os.path.dirname(os.path.realpath(found))] if found else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(p.split("/")[-2]), reverse=True)
    for folder in candidates:
        if all(os.access(os.path.join(folder, b), os.X_OK) for b in ("initdb", "pg_ctl")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running server; ``url(db)`` is a ``postgresql://`` URL of database ``db``."""

    def __init__(self, *, durable: bool = False) -> None:
        """``durable=False`` turns off fsync (fast tests); True keeps PostgreSQL's defaults."""
        self.bin = binaries()
        if self.bin is None:
            raise RuntimeError("the PostgreSQL server (initdb, pg_ctl) is not installed")
        self.durable = durable
        self.root = tempfile.mkdtemp(prefix="lrlab-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = 0
        self._as: dict = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam(USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _run(self, *args: str) -> None:
        proc = subprocess.run(
            [os.path.join(self.bin, args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
            **self._as,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.strip()}")

    def start(self) -> Server:
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        opts = ["-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
                "-c", "max_connections=200"]
        if not self.durable:
            opts += ["-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off"]
        for attempt in range(5):  # the free port may be taken before the server binds it
            self.port = _free_port()
            try:
                self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"),
                          "-w", "-t", "60", "-o", " ".join([f"-p {self.port}", *opts]), "start")
                return self
            except RuntimeError:
                if attempt == 4:
                    raise
                time.sleep(0.2)
        raise AssertionError("unreachable")  # pragma: no cover

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import sqlalchemy as sa

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            if os.path.isdir(self.data):
                self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
