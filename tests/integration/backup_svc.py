"""
Helpers for the backup tests: a private PostgreSQL 15 for the session,
a launcher for opsd with [database]/[backup] sections, psql wrappers and
a table lock that holds pg_dump in the middle of a dump for as long as a
test needs (instead of big data and sleeps).

PostgreSQL (session scope, fsync=off) has two login roles over TCP with
SCRAM passwords:

  backup      owns the test databases; what [database] conninfo uses
  opsd_admin  superuser; what admin_conninfo uses (scratch databases,
              restores) and what the tests' psql uses

Passwords reach psql through PGPASSWORD in psql's own environment only,
and opsd through password files (0600).
"""
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from opsd_proc import (BUILD, CLI, OPSD, PG_ENV, REPO,  # noqa: F401
                       SANITIZED, SANITIZER_MARKERS, SCALE, SYSTEMD_ENV,
                       DaemonProc, env, free_port, must, pid_alive,
                       port_open, run, wait_for)

PGBIN = Path("/usr/lib/postgresql/15/bin")
PSQL = PGBIN / "psql"


def tmpdir(prefix):
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


def sha256_file(path):
    """sha256sum's answer, from the tool itself."""
    return must(["sha256sum", "--", path]).split()[0]


# --- PostgreSQL --------------------------------------------------------------


class Postgres:
    def __init__(self):
        self.dir = tmpdir("opsd-bpg.")
        self.data = self.dir / "data"
        self.port = free_port()
        self.backup_password = "bk-" + secrets.token_hex(12)
        self.admin_password = "adm-" + secrets.token_hex(12)
        self.files = tmpdir("opsd-bpg-keys.")
        self.backup_pw_file = self.files / "backup.pass"
        self.admin_pw_file = self.files / "admin.pass"
        self.bad_pw_file = self.files / "bad.pass"
        self.started = False
        self._n = 0

    def _as_pg(self, cmd, timeout=60):
        return must(["su", "postgres", "-s", "/bin/sh", "-c", cmd],
                    timeout=timeout)

    def setup(self):
        shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        su_pw = self.dir / "su.pass"
        su_pw.write_text(secrets.token_hex(16) + "\n")
        shutil.chown(su_pw, "postgres", "postgres")
        self._as_pg(f"{PGBIN}/initdb -D {self.data} -U postgres "
                    f"--pwfile={su_pw} --auth-local=peer "
                    f"--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 "
                    f"-N >/dev/null")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "password_encryption = 'scram-sha-256'\nfsync = off\n"
                    "synchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 60\nshared_buffers = 32MB\n")
        self.start()
        for sql in (f"CREATE ROLE opsd_admin LOGIN SUPERUSER PASSWORD "
                    f"'{self.admin_password}'",
                    f"CREATE ROLE backup LOGIN PASSWORD "
                    f"'{self.backup_password}'"):
            self._as_pg(f"{PSQL} -X -q -h {self.dir} -p {self.port} "
                        f"-U postgres -d postgres -c \"{sql}\"")
        for path, pw in ((self.backup_pw_file, self.backup_password),
                         (self.admin_pw_file, self.admin_password),
                         (self.bad_pw_file, "wrong-" + secrets.token_hex(8))):
            path.write_text(pw + "\n")
            os.chmod(path, 0o600)

    def start(self):
        self._as_pg(f"{PGBIN}/pg_ctl -D {self.data} -l {self.dir}/server.log"
                    f" -w -t 30 start >/dev/null")
        self.started = True
        wait_for(lambda: port_open(self.port), 10, "PostgreSQL's port")

    def stop(self, mode="fast"):
        if not self.started:
            return
        self._as_pg(f"{PGBIN}/pg_ctl -D {self.data} -m {mode} -w -t 30 stop "
                    f">/dev/null")
        self.started = False
        wait_for(lambda: not port_open(self.port), 10,
                 "PostgreSQL's port to close")

    def cleanup(self):
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.rmtree(self.files, ignore_errors=True)

    # --- SQL -----------------------------------------------------------------
    def psql_argv(self, db="postgres", user="opsd_admin"):
        return [PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1", "-p", str(self.port), "-U", user,
                "-d", db]

    def psql_env(self, user="opsd_admin"):
        pw = self.admin_password if user == "opsd_admin" else \
            self.backup_password
        return env(PGPASSWORD=pw, PGCONNECT_TIMEOUT=5)

    def sql(self, query, db="postgres", user="opsd_admin", timeout=60):
        """Runs SQL with psql; returns its -At output (rows of a|b)."""
        return must(self.psql_argv(db, user) + ["-c", query], "psql",
                    env=self.psql_env(user), timeout=timeout).strip()

    def sql_rc(self, query, db="postgres", user="opsd_admin"):
        return run(self.psql_argv(db, user) + ["-c", query],
                   env=self.psql_env(user))

    def databases(self, like="%"):
        out = self.sql("SELECT datname FROM pg_database WHERE datname LIKE "
                       f"'{like}' ORDER BY 1")
        return [x for x in out.splitlines() if x]

    def drop_db(self, name):
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def new_db(self, tag="app", rows=2000, extra_sql=""):
        """A fresh database owned by `backup` with users, orders and
        events tables (rows users, 2*rows orders, rows events)."""
        self._n += 1
        name = f"{tag}_{self._n}_{secrets.token_hex(3)}"
        self.sql(f'CREATE DATABASE "{name}" OWNER backup')
        seed = f"""
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL,
    email text UNIQUE, created timestamptz NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, user_id int REFERENCES users,
    amount numeric(10,2), note text);
CREATE TABLE events (id bigserial PRIMARY KEY, kind text, payload jsonb);
CREATE INDEX orders_user ON orders (user_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 500;
INSERT INTO users (name, email, created)
    SELECT 'user ' || g, 'u' || g || '@example.org',
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
    FROM generate_series(1, {rows}) g;
INSERT INTO orders (user_id, amount, note)
    SELECT 1 + (g % {rows}), (g * 7919 % 100000) / 100.0,
           'note ' || md5(g::text)
    FROM generate_series(1, {2 * rows}) g;
INSERT INTO events (kind, payload)
    SELECT CASE WHEN g % 3 = 0 THEN 'login' ELSE 'click' END,
           jsonb_build_object('n', g, 'tags', jsonb_build_array('a', g % 7))
    FROM generate_series(1, {rows}) g;
{extra_sql}
"""
        self.sql(seed, db=name, user="backup")
        return name

    def fingerprint(self, db, tables=("users", "orders", "events")):
        """{table: (row count, md5 of every row in id order)}."""
        out = {}
        for t in tables:
            r = self.sql(f"SELECT count(*) || '|' || coalesce(md5("
                         f"string_agg(t::text, ',' ORDER BY id)), '') "
                         f"FROM {t} t", db=db)
            n, h = r.split("|")
            out[t] = (int(n), h)
        return out

    def tables(self, db):
        out = self.sql("SELECT tablename FROM pg_tables WHERE schemaname = "
                       "'public' ORDER BY 1", db=db)
        return [x for x in out.splitlines() if x]

    def scratch_dbs(self, backup_name):
        pfx = "opsd_verify_" + re.sub(r"[^a-z0-9]", "_",
                                      backup_name.lower()) + "_"
        return [d for d in self.databases("opsd_verify%")
                if d.startswith(pfx)]

    def conf_sections(self, db, dbsection="main", admin=True,
                      password_file=None):
        """A [database] section for db."""
        pwf = password_file or self.backup_pw_file
        s = (f"[database {dbsection}]\n"
             f"conninfo = host=127.0.0.1 port={self.port} user=backup "
             f"dbname={db} connect_timeout=5\n"
             f"password_file = {pwf}\n")
        if admin:
            s += (f"admin_conninfo = host=127.0.0.1 port={self.port} "
                  f"user=opsd_admin dbname=postgres connect_timeout=5\n"
                  f"admin_password_file = {self.admin_pw_file}\n")
        return s + "\n"


class TableLock:
    """Holds ACCESS EXCLUSIVE on a table in an open transaction, so that
    pg_dump (which takes ACCESS SHARE on every table it dumps) waits in the
    middle of its run until release()."""

    def __init__(self, pg, db, table="orders"):
        self.pg = pg
        self.db = db
        self.proc = subprocess.Popen(
            [str(a) for a in pg.psql_argv(db)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=pg.psql_env())
        self.proc.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN ACCESS "
                              f"EXCLUSIVE MODE;\n\\echo LOCKED\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line.strip() == "LOCKED", f"could not lock {table}: {line}"

    def release(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("COMMIT;\n\\q\n")
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.release()


def pg_dump_waiting(pg, db):
    """True once a pg_dump session on db waits for a lock (mid-dump)."""
    try:
        out = pg.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                     f"'{db}' AND application_name = 'pg_dump' AND "
                     "wait_event_type = 'Lock'")
    except AssertionError:
        return False
    return out.strip() not in ("", "0")


def proc_cmdline(pid):
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def proc_ppid(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def find_pg_dump(db):
    """PIDs of pg_dump processes (pgrep -f) dumping database db."""
    rc, out, _ = run(["pgrep", "-f", f"pg_dump .*dbname={db}( |$)"])
    pids = []
    for p in out.split():
        argv = proc_cmdline(p)
        if argv and Path(argv[0]).name == "pg_dump":
            pids.append(int(p))
    return pids


# --- the daemon under test ---------------------------------------------------


class Daemon(DaemonProc):
    """opsd for the backup tests (see opsd_proc.DaemonProc), with
    helpers for its backups and jobs."""

    # --- backups -------------------------------------------------------------
    def backups(self, name):
        for b in self.rpc("backup.list", {"name": name})["backups"]:
            if b["name"] == name:
                return b
        raise AssertionError(f"backup {name} is not configured")

    def items(self, name):
        return self.backups(name)["backups"]

    def running(self, name):
        return self.backups(name).get("running")

    def wait_idle(self, name, timeout=30.0):
        return wait_for(lambda: self.running(name) is None, timeout,
                        f"backup {name} to finish",
                        detail=lambda: self.log()[-3000:])

    def job(self, name):
        for j in self.rpc("opsd.jobs")["jobs"]:
            if j["name"] == name:
                return j
        return None

    def run_backup(self, name, timeout=60):
        """backup run NAME --follow: (rc, stdout, stderr)."""
        return self.cli("backup", "run", name, "--follow", timeout=timeout)


def backup_section(name, dir, database="main", **keys):
    """A [backup NAME] section; list values give repeated keys."""
    keys.setdefault("schedule", "0 3 * * *")
    keys.setdefault("pg_bin_dir", str(PGBIN))
    keys.setdefault("persistent", "no")
    s = f"[backup {name}]\ndatabase = {database}\ndir = {dir}\n"
    for k, v in keys.items():
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            s += f"{k} = {x}\n"
    return s + "\n"


# --- fixtures ----------------------------------------------------------------


@pytest.fixture(scope="session")
def bk_pg_session():
    """The backup tests' own PostgreSQL 15 (session)."""
    pg = Postgres()
    try:
        pg.setup()
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def bk_pg(bk_pg_session):
    """The session's PostgreSQL, running again after a test stopped it."""
    pg = bk_pg_session
    if not pg.started:
        pg.start()
    yield pg
    if not pg.started:
        pg.start()


@pytest.fixture
def bk_daemons(tmp_path):
    """make(body, name=None, start=True) -> Daemon. All are stopped in
    teardown; the test fails when one's stderr has a sanitizer report."""
    rundir = tmpdir("opsd-bk.")
    made = []

    def make(body="", name=None, start=True):
        d = Daemon(tmp_path, rundir, name or f"d{len(made) + 1}")
        d.write(body)
        made.append(d)
        if start:
            d.start()
        return d

    yield make
    errors = []
    for d in made:
        try:
            d.stop()
        except AssertionError as e:
            errors.append(str(e))
    shutil.rmtree(rundir, ignore_errors=True)
    for d in made:
        line = d.sanitizer_report()
        if line:
            errors.append(f"sanitizer report in {d.stderr_path}: {line}")
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)
