"""A throw-away PostgreSQL + PostGIS 3 server on a loopback port, in a temporary folder: for the tests
(``tests/postgis_fixtures.py``) and ``make demo``, which compute district statistics in a real PostGIS.

    with running_postgis() as server:
        district_stats(DistrictStatsRequest.create(districts, rasters, connection=server.conninfo))

The server is the distribution's PostgreSQL (``postgresql-15`` on Debian 12, ``postgresql-17`` on
Debian 13, installed by ``scripts/setup.sh``; found under ``/usr/lib/postgresql/*/bin``): ``initdb``
into a fresh folder under the system temporary directory, started with ``pg_ctl`` on a
free port of 127.0.0.1 and a private socket folder, and removed when the block ends.
PostgreSQL refuses to run as root, so when run as root the server
runs as an unprivileged system user (``postgres`` if the package created it, else
``nobody``) that owns the folder.

Connections over TCP need a password (scram-sha-256), so a wrong password is refused
as it would be by a real server; the socket (trust) is only used to create the
role, the database and the PostGIS extensions. Durability against a machine crash is
switched off (``fsync``, ``full_page_writes``): the cluster is thrown away. Commits stay
synchronous: the fault tests stop the server at once (``pg_ctl -m immediate``), and with
``synchronous_commit=off`` the transactions of the last few hundred milliseconds would be
lost with it, as if a committed run had never happened.

Not shipped in the plugin (scripts/package_plugin.py leaves it out): sample infrastructure only.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PostgisServer", "PostgisUnavailable", "running_postgis", "server_binaries"]

ADMIN = "canopy_admin"
ROLE = "canopy_tester"
PASSWORD = "s3cret-pw"
DATABASE = "canopy"
SETUP_HINT = ("run `make setup` (scripts/setup.sh installs the distribution's PostgreSQL, postgresql-<version>-postgis-3 "
              "and postgis)")


@dataclass(frozen=True)
class PostgisServer:
    host: str
    port: int
    dbname: str
    user: str
    password: str
    socket_dir: str
    control: tuple = ()  # (pg_ctl, data folder, server options, log file, run-as user) for stop() and start()

    def stop(self) -> None:
        """Stop the server at once, as a crash or a pulled cable would (fault tests)."""
        pg_ctl, data, _, log_file, user = self.control
        _run([pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], user, check=False)

    def start(self) -> None:
        pg_ctl, data, options, log_file, user = self.control
        _run([pg_ctl, "-D", data, "-l", log_file, "-o", options, "-w", "-t", "60", "start"], user, log_file)

    @property
    def conninfo(self) -> str:
        return f"host={self.host} port={self.port} dbname={self.dbname} user={self.user} password={self.password} connect_timeout=5"

    def conninfo_with(self, **changes) -> str:
        values = dict(host=self.host, port=self.port, dbname=self.dbname, user=self.user, password=self.password,
                      connect_timeout=5)
        values.update(changes)
        return " ".join(f"{key}={value}" for key, value in values.items())

    def admin_connect(self, dbname=None):
        """A superuser connection over the private socket (for checks that need the catalogue as a whole)."""
        import psycopg

        return psycopg.connect(host=self.socket_dir, port=self.port, dbname=dbname or self.dbname, user=ADMIN,
                               autocommit=True)


class PostgisUnavailable(RuntimeError):
    """PostgreSQL or PostGIS is not installed, or the server did not start."""


def server_binaries() -> Path:
    """The folder of ``initdb`` and ``pg_ctl``: the newest PostgreSQL under /usr/lib/postgresql with PostGIS raster
    installed for it (else the newest at all, which ``running_postgis`` then reports as lacking PostGIS)."""
    found = [Path(folder) for folder in glob.glob("/usr/lib/postgresql/*/bin")
             if os.path.exists(os.path.join(folder, "initdb")) and os.path.exists(os.path.join(folder, "pg_ctl"))]
    found.sort(key=lambda folder: (_postgis_installed(folder), _major(folder)), reverse=True)
    if found:
        return found[0]
    raise PostgisUnavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql: {SETUP_HINT}")


def _major(binaries: Path) -> tuple:
    return tuple(int(part) for part in binaries.parent.name.split(".") if part.isdigit())


def _postgis_installed(binaries: Path) -> bool:
    version = binaries.parent.name
    return bool(glob.glob(f"/usr/share/postgresql/{version}/extension/postgis_raster.control"))


def _server_user():
    """None when not root; otherwise an unprivileged account to run the server as."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgisUnavailable("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(command, user, log_file=None, check=True, timeout=120):
    if user is not None:
        command = ["runuser", "-u", user.pw_name, "--"] + command
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                            cwd="/")
    if check and result.returncode != 0:
        log = Path(log_file).read_text() if log_file and Path(log_file).exists() else ""
        raise PostgisUnavailable(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{log}")
    return result


@contextmanager
def running_postgis(settings: str = ""):
    """Start a throw-away PostgreSQL + PostGIS server; yields a PostgisServer; stops it and removes its folder.

    ``settings``: extra ``-c name=value`` options for the server (the benchmark raises memory limits)."""
    import psycopg

    binaries = server_binaries()
    if not _postgis_installed(binaries):
        raise PostgisUnavailable(f"PostGIS raster is not installed for PostgreSQL ({binaries}): {SETUP_HINT}")
    user = _server_user()
    # Not pytest's tmp_path: its folders are private to root, and the server may run as another user.
    root = Path(tempfile.mkdtemp(prefix="canopy-postgis-"))
    data, sockets, log_file = root / "data", root / "socket", root / "server.log"
    sockets.mkdir()
    if user is not None:
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = _free_port()
    started = False
    try:
        _run([str(binaries / "initdb"), "-D", str(data), "-U", ADMIN, "--auth-local=trust",
              "--auth-host=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"], user)
        options = (f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c full_page_writes=off -c shared_buffers=128MB -c max_connections=40 {settings}")
        _run([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log_file), "-o", options, "-w", "-t", "60", "start"],
             user, log_file)
        started = True
        with psycopg.connect(host=str(sockets), port=port, dbname="postgres", user=ADMIN, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            admin.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        with psycopg.connect(host=str(sockets), port=port, dbname=DATABASE, user=ADMIN, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION postgis")
            admin.execute("CREATE EXTENSION postgis_raster")
        yield PostgisServer("127.0.0.1", port, DATABASE, ROLE, PASSWORD, str(sockets),
                            (str(binaries / "pg_ctl"), str(data), options, str(log_file), user))
    finally:
        if started:
            _run([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"], user,
                 check=False)
        shutil.rmtree(root, ignore_errors=True)
