"""One driver per study: a lease with a heartbeat, kept in the study's own database.

A *driver* is the process that trains a study's trials and writes their results (``lrlab
sweep``, ``lrlab.tune.sweep``, ``Study.run``). Two drivers on one study would fail each other's
running trials, so a driver first takes the study's lease: a row of the table
``lrlab_leases`` (study name, holder token, host, pid, since, heartbeat) in the storage's
database, SQLite or PostgreSQL alike. The lease is taken with one ``INSERT`` (the primary key
lets one of several simultaneous drivers win) and renewed by a background thread every
``TTL / 6`` seconds.

Another driver is refused at once with a one-line message naming the holder. A holder that
stopped renewing for ``TTL`` seconds (SIGKILL, a lost machine) is taken over, and the new
driver says so; on the holder's own host a holder whose process is gone is taken over at once.
``TTL`` is 30 s (``LRLAB_LEASE_SECONDS`` overrides it). Hosts compare their own clocks with the
stored heartbeat, so clocks may be off by less than ``TTL``. ``lrlab ask`` and ``lrlab tell``
do not take the lease: each claim is already handed to one caller.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime

import sqlalchemy as sa

LOG = logging.getLogger("lrlab")
TABLE = "lrlab_leases"
#: This process's holder token: every Study object of the process shares its leases.
TOKEN = uuid.uuid4().hex
HOST = socket.gethostname()

_meta = sa.MetaData()
_leases = sa.Table(
    TABLE,
    _meta,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("since", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)
_held: dict[tuple[str, str], Lease] = {}
_lock = threading.Lock()


def ttl() -> float:
    """Seconds without a heartbeat after which a lease may be taken over."""
    return float(os.environ.get("LRLAB_LEASE_SECONDS", "30"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: it holds nothing
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _when(t: float) -> str:
    return datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


class Lease:
    """The lease of study ``name`` in the database of ``engine``; ``acquire`` or ValueError."""

    def __init__(self, engine: sa.engine.Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def _ensure_table(self) -> None:
        for attempt in range(5):
            try:
                _meta.create_all(self.engine, checkfirst=True)
                return
            # another process created it meanwhile: SQLite says so with an OperationalError,
            # PostgreSQL with an IntegrityError or ProgrammingError ("... already exists")
            except sa.exc.DBAPIError as exc:
                if "already exists" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.05)

    def acquire(self) -> None:
        """Take the lease (or renew it if this process holds it); ValueError naming the holder
        if a live driver holds it. Taking over an expired lease is logged."""
        self._ensure_table()
        now = time.time()
        mine = {"token": TOKEN, "host": HOST, "pid": os.getpid(), "since": now, "heartbeat": now}
        # Read first: refusing a live holder then needs no write, so it is immediate even when
        # a hung holder keeps the database locked.
        if self._row() is None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(_leases).values(study=self.name, **mine))
                self._start()
                return
            except sa.exc.IntegrityError:  # another driver inserted first
                pass
        self._contend(now, mine)
        self._start()

    def _row(self):
        with self.engine.connect() as conn:
            return conn.execute(sa.select(_leases).where(_leases.c.study == self.name)).first()

    def _contend(self, now: float, mine: dict) -> None:
        row = self._row()
        if row is None:  # released meanwhile
            return self.acquire()
        if row.token == TOKEN:
            self._beat()
            return None
        silent = now - row.heartbeat
        gone = row.host == HOST and not _pid_alive(row.pid)
        if silent < ttl() and not gone:
            raise ValueError(
                f"study {self.name!r} is being run by pid {row.pid} on {row.host} since "
                f"{_when(row.since)} (heartbeat {silent:.0f} s ago); one driver per study: wait "
                f"for it to finish, or take it over {ttl():.0f} s after it stops"
            )
        with self.engine.begin() as conn:
            res = conn.execute(
                sa.update(_leases)
                .where(
                    _leases.c.study == self.name,
                    _leases.c.token == row.token,
                    _leases.c.heartbeat == row.heartbeat,
                )
                .values(**mine)
            )
        if res.rowcount != 1:
            return self._contend(time.time(), mine)  # someone else took it first: re-read
        why = "its process is gone" if gone else f"no heartbeat for {silent:.0f} s"
        LOG.warning(
            "took over study %r from pid %s on %s (%s)", self.name, row.pid, row.host, why
        )
        return None

    def _beat(self) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(
                sa.update(_leases)
                .where(_leases.c.study == self.name, _leases.c.token == TOKEN)
                .values(heartbeat=time.time())
            )
        return res.rowcount == 1

    def _start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="lrlab-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(ttl() / 6):
            try:
                if not self._beat():
                    self.lost = True
                    LOG.warning("lost the lease of study %r to another driver", self.name)
                    return
            except Exception:  # a busy or unreachable database: try again next beat
                continue

    def release(self) -> None:
        """Stop the heartbeat and delete the lease row (if this process still holds it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.delete(_leases).where(
                        _leases.c.study == self.name, _leases.c.token == TOKEN
                    )
                )
        except Exception:  # the database is gone or read-only: the lease expires by itself
            pass


def hold(engine: sa.engine.Engine, url: str, name: str) -> Lease:
    """The lease of study ``name`` for this process, acquired once and kept until
    ``release_all`` (called at exit) or ``release(url, name)``."""
    key = (url, name)
    with _lock:
        lease = _held.get(key)
        if lease is None:
            lease = Lease(engine, name)
            lease.acquire()
            _held[key] = lease
        return lease


def release(url: str, name: str) -> None:
    with _lock:
        lease = _held.pop((url, name), None)
    if lease is not None:
        lease.release()


def release_all() -> None:
    with _lock:
        leases = list(_held.values())
        _held.clear()
    for lease in leases:
        lease.release()


atexit.register(release_all)
