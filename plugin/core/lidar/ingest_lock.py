"""One ingest at a time per database, on local disk and on S3.

Two ingests into one database at once each wrote every granule (and each one's start-up
cleanup could delete the other's unrecorded fragments). S3 offers neither ``flock`` nor an
atomic rename, and conditional puts (``If-None-Match``) are not reachable through TileDB's
VFS nor offered by every S3 server, so the lock is built from what every store has:
read-after-write consistent writes, listings and deletes.

A contender writes a claim object of its own under ``<database>/ingest_lock/`` and then lists
the folder: it holds the lock if no other live claim is listed, otherwise it deletes its claim
and tries again later. Two contenders cannot both succeed: each lists after its own write, so
whichever lists second sees the other's claim. (Both may back off; random pauses break ties.)

Claims are leases: the file name carries the expiry, owner token, process id and host, and
the holder renews it every quarter lease from a background thread. A claim is stale, and is
removed by whoever finds it, when its lease has passed (an ingest killed on another machine
blocks others for at most one lease), when its process no longer runs on this machine, or when
this very process left it (a run that failed before it could delete its claim). A holder that
finds its claim gone or cannot renew it for a whole lease stops before its next write.
"""

import hashlib
import json
import os
import secrets
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..errors import StorageError
from .config import DatabaseConfig
from .storage import retrying

LOCK_NAME = "ingest_lock"
DEFAULT_LEASE_S = 60.0
DEFAULT_WAIT_S = 3600.0
_POLL_S = (0.3, 1.2)  # pause between attempts while another ingest holds the lock
# Tokens of the claims this process has written and not yet removed: contending or holding. A claim of this
# process whose token is not here was left by an earlier, failed run. (Holding only was not enough: a thread
# that had written its claim but not yet listed the folder had its claim taken for a leftover by another.)
_LIVE_TOKENS = set()


def _machine() -> str:
    """This machine's name, plus a digest of its boot and process namespace where Linux has them:
    two containers with the same host name are different machines for process-id checks."""
    name = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname() or "localhost")[:60]
    marks = []
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            marks.append(Path(source).read_text().strip() if source.endswith("boot_id") else os.readlink(source))
        except OSError:
            pass
    if marks:
        name += "~" + hashlib.blake2b("|".join(marks).encode(), digest_size=4).hexdigest()
    return name


MACHINE = _machine()


@dataclass(frozen=True)
class Claim:
    name: str
    expires_ms: int
    token: str
    pid: int
    machine: str

    @classmethod
    def parse(cls, name: str) -> Optional["Claim"]:
        parts = name.split(".", 4)
        if len(parts) != 5 or parts[0] != "claim" or not parts[1].isdigit() or not parts[3].isdigit():
            return None
        return cls(name, int(parts[1]), parts[2], int(parts[3]), parts[4])

    @classmethod
    def new(cls, token: str, lease_s: float) -> "Claim":
        expires_ms = int((time.time() + lease_s) * 1000)
        name = f"claim.{expires_ms}.{token}.{os.getpid()}.{MACHINE}"
        return cls(name, expires_ms, token, os.getpid(), MACHINE)

    def owner(self) -> str:
        host = self.machine.split("~", 1)[0]
        return f"process {self.pid} on {host}"

    def stale(self, now_ms: int) -> Optional[str]:
        """Why this claim no longer holds the lock, or None while it does."""
        if self.expires_ms < now_ms:
            return f"its lease ended {(now_ms - self.expires_ms) / 1000:.0f} s ago"
        if self.machine != MACHINE:
            return None
        if self.pid == os.getpid():
            return None if self.token in _LIVE_TOKENS else "an earlier ingest in this process did not release it"
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return "its process no longer runs"
        except PermissionError:
            pass  # runs, under another user
        return None


def _pause() -> float:
    """A random pause within ``_POLL_S``: contenders that backed off together retry apart."""
    low, high = _POLL_S
    return low + (high - low) * secrets.randbelow(1001) / 1000


class _Folder:
    """The lock folder: a directory on local disk, a key prefix on S3."""

    def __init__(self, config: DatabaseConfig, ctx):
        self.uri = f"{config.base_uri.rstrip('/')}/{LOCK_NAME}"
        self.local = config.storage_type == "local"
        self.ctx = ctx

    def write(self, name: str, text: str) -> None:
        if self.local:
            folder = Path(self.uri)
            for attempt in range(3):
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_text(text, encoding="utf-8")
                    return
                except OSError as error:
                    # FileNotFoundError: another ingest removed the empty folder meanwhile
                    if isinstance(error, FileNotFoundError) and attempt < 2:
                        continue
                    raise StorageError(f"cannot write the ingest lock in {folder}: {error.strerror or error}") from None
        import tiledb

        def put():
            with tiledb.VFS(ctx=self.ctx).open(f"{self.uri}/{name}", "wb") as handle:
                handle.write(text.encode("utf-8"))

        retrying(put, f"writing the ingest lock {self.uri}/{name}")

    def names(self) -> list:
        if self.local:
            try:
                return [p.name for p in Path(self.uri).iterdir()]
            except FileNotFoundError:
                return []
            except OSError as error:
                raise StorageError(f"cannot read the ingest lock folder {self.uri}: {error.strerror or error}") from None
        import tiledb

        listing = retrying(lambda: tiledb.VFS(ctx=self.ctx).ls(self.uri), f"listing the ingest lock {self.uri}")
        return [uri.rstrip("/").rsplit("/", 1)[-1] for uri in listing]

    def remove(self, name: str) -> None:
        if self.local:
            try:
                (Path(self.uri) / name).unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                raise StorageError(f"cannot remove the ingest lock {self.uri}/{name}: {error.strerror or error}") from None
            return
        import tiledb

        vfs = tiledb.VFS(ctx=self.ctx)

        def delete():
            if vfs.is_file(f"{self.uri}/{name}"):
                vfs.remove_file(f"{self.uri}/{name}")

        retrying(delete, f"removing the ingest lock {self.uri}/{name}")

    def tidy(self) -> None:
        """Remove the local folder once empty, so a database folder holds only the database."""
        if self.local:
            try:
                Path(self.uri).rmdir()
            except OSError:
                pass


def held_by(config: DatabaseConfig, ctx, token: str) -> bool:
    """Whether the ingest whose lock token this is still holds the lock: asked by the workers of a
    distributed ingest before each write, so a worker whose run has ended (cancelled, or cut off
    from a scheduler that was lost) writes nothing more."""
    now_ms = int(time.time() * 1000)
    claims = (Claim.parse(name) for name in _Folder(config, ctx).names())
    return any(claim is not None and claim.token == token and claim.expires_ms >= now_ms for claim in claims)


class IngestLock:
    """``with IngestLock(config, ctx):`` around everything an ingest reads and writes.

    ``wait_s``: how long to wait for another ingest before giving up with a StorageError.
    ``waiting``: called between attempts (a progress callback that raises Cancelled stops the wait).
    """

    def __init__(self, config: DatabaseConfig, ctx, wait_s: float = DEFAULT_WAIT_S, lease_s: float = DEFAULT_LEASE_S,
                 log: Callable[[str], None] = lambda message: None, waiting: Callable[[], None] = lambda: None):
        self.database = config.base_uri
        self.folder = _Folder(config, ctx)
        self.wait_s = wait_s
        self.lease_s = lease_s
        self.log = log
        self.waiting = waiting
        self.token = uuid.uuid4().hex[:16]
        self.stale_removed = []  # (owner, reason) of the stale claims this lock removed
        self._claim: Optional[Claim] = None
        self._lost: Optional[str] = None
        self._stop = threading.Event()
        self._heart: Optional[threading.Thread] = None
        self._guard = threading.Lock()

    # ------------------------------------------------------------------ claims

    def _announce(self) -> Claim:
        claim = Claim.new(self.token, self.lease_s)
        body = {"pid": claim.pid, "host": socket.gethostname(), "machine": claim.machine,
                "expires": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(claim.expires_ms / 1000))}
        self.folder.write(claim.name, json.dumps(body))
        return claim

    def _rivals(self):
        """Live claims of other owners; stale ones are removed on the way."""
        now_ms = int(time.time() * 1000)
        rivals = []
        for name in self.folder.names():
            claim = Claim.parse(name)
            if claim is None or claim.token == self.token:
                continue
            reason = claim.stale(now_ms)
            if reason:
                self.folder.remove(name)
                self.stale_removed.append((claim.owner(), reason))
                self.log(f"removed a stale ingest lock of {claim.owner()}: {reason}")
                continue
            rivals.append(claim)
        return rivals

    def acquire(self) -> None:
        started = time.monotonic()
        told = False
        while True:
            _LIVE_TOKENS.add(self.token)
            try:
                claim = self._announce()
            except BaseException:
                _LIVE_TOKENS.discard(self.token)
                raise
            try:
                rivals = self._rivals()
            except BaseException:
                self._withdraw(claim)
                raise
            if not rivals:
                with self._guard:
                    self._claim = claim
                self._heart = threading.Thread(target=self._beat, name="ingest-lock-lease", daemon=True)
                self._heart.start()
                return
            self._withdraw(claim)
            holder = min(rivals, key=lambda c: c.expires_ms)
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                self.folder.tidy()
                raise StorageError(
                    f"{self.database} is being written by another ingest ({holder.owner()}; waited {waited:.0f} s): "
                    f"try again when it has finished. If no ingest is running, its lock "
                    f"{self.folder.uri}/{holder.name} expires by itself within {self.lease_s:.0f} s of its last renewal"
                )
            if not told:
                self.log(f"waiting for another ingest into {self.database} to finish ({holder.owner()})")
                told = True
            self.waiting()
            time.sleep(min(_pause(), max(0.05, self.wait_s - waited)))

    def _withdraw(self, claim: Claim) -> None:
        try:
            self.folder.remove(claim.name)
        finally:
            _LIVE_TOKENS.discard(self.token)

    def _beat(self) -> None:
        """Renew the lease every quarter lease; note when the claim was lost."""
        renewed = time.monotonic()
        while not self._stop.wait(self.lease_s / 4):
            try:
                with self._guard:
                    current = self._claim
                if current is None:
                    return
                if current.name not in self.folder.names():
                    self._lost = "its claim was removed by another process (was this one paused for longer than the lease?)"
                    return
                fresh = self._announce()
                with self._guard:
                    self._claim = fresh
                self.folder.remove(current.name)
                renewed = time.monotonic()
            except Exception as error:  # a passing store failure: the next beat tries again
                if time.monotonic() - renewed > self.lease_s:
                    self._lost = f"it could not be renewed for {self.lease_s:.0f} s ({error})"
                    return

    def check(self) -> None:
        """Raise before a write when the lock is no longer held."""
        if self._lost:
            raise StorageError(
                f"the ingest lock on {self.database} was lost: {self._lost}. Nothing more was written; "
                "run the ingest again to complete it"
            )

    def release(self) -> None:
        self._stop.set()
        if self._heart is not None:
            self._heart.join()
        with self._guard:
            claim, self._claim = self._claim, None
        if claim is not None:
            try:
                self.folder.remove(claim.name)
            except StorageError as error:  # it expires by itself; never hide the ingest's own outcome
                self.log(f"could not remove the ingest lock {claim.name}: {error}")
        _LIVE_TOKENS.discard(self.token)
        self.folder.tidy()

    def __enter__(self) -> "IngestLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
