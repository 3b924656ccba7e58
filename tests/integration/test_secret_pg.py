"""
PostgreSQL passwords rotated by opsd against a real PostgreSQL 15: the
single strategy (the old password stops working, the new one works, the
server stores a SCRAM verifier and its statement log never sees the
plaintext), the alternating strategy (a session opened with the previous
credentials keeps working and can reconnect until the next rotation; the
roles' differences are reported), [database] password_secret (backups
and probes follow the rotations; an alternating secret's user too), the
failures that must leave the previous working password in place
(PostgreSQL down, the role missing, on_rotate or verify_probe failing
after ALTER ROLE), and the fleet lock (held by another host: nothing
changes; held by this one from set_password until the end).
"""
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc")

from backup_svc import PGBIN, backup_section, wait_for  # noqa: E402

pytest_plugins = ["backup_svc"]

PSQL = PGBIN / "psql"


def role(pg, name=None, extra=""):
    """A fresh login role with a throw-away password (what an app had
    before opsd managed it)."""
    name = name or f"app_{secrets.token_hex(3)}"
    pg.sql(f"CREATE ROLE {name} LOGIN PASSWORD "
           f"'{secrets.token_hex(12)}' {extra}")
    return name


def login(pg, user, password, db="postgres", sql="SELECT current_user"):
    """(rc, output) of psql as user with password over TCP."""
    p = subprocess.run(
        [str(PSQL), "-X", "-At", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", user, "-d", db, "-c", sql],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
        capture_output=True, text=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def db_section(pg, name="main"):
    return (f"[database {name}]\n"
            f"conninfo = host=127.0.0.1 port={pg.port} user=backup "
            f"dbname=postgres connect_timeout=5\n"
            f"password_file = {pg.backup_pw_file}\n"
            f"admin_conninfo = host=127.0.0.1 port={pg.port} "
            f"user=opsd_admin dbname=postgres connect_timeout=5\n"
            f"admin_password_file = {pg.admin_pw_file}\n\n")


def rotate(d, name, ok=True, timeout=30):
    """secret.rotate, then waits for its op to end; the op."""
    res = d.rpc("secret.rotate", {"name": name})
    op = res["op"]

    def done():
        o = d.rpc("op.show", {"id": op})
        return o if o.get("state") not in (None, "running") else None
    o = wait_for(done, timeout, f"rotation {op} of {name} to end",
                 detail=lambda: d.log()[-3000:])
    if ok:
        assert o["state"] == "ok", json.dumps(o, indent=1)
    return o


def secret(d, name):
    return d.rpc("secret.show", {"name": name})


def test_single_rotation_scram_and_no_plaintext_in_server_log(
        bk_pg, bk_daemons, tmp_path):
    pg = bk_pg
    r = role(pg)
    path = tmp_path / "db_password"
    pg.sql("ALTER SYSTEM SET log_statement = 'all'")
    pg.sql("SELECT pg_reload_conf()")
    try:
        d = bk_daemons(db_section(pg) +
                       f"[secret dbpw]\nkind = postgres-password\n"
                       f"database = main\nrole = {r}\npath = {path}\n")
        wait_for(lambda: secret(d, "dbpw")["version"] == 1, 20,
                 "the first password", detail=lambda: d.log()[-3000:])
        v1 = path.read_text()
        assert "\n" not in v1 and len(v1) >= 40
        assert login(pg, r, v1)[0] == 0
        rotate(d, "dbpw")
        v2 = path.read_text()
        assert v2 != v1
        rc, out = login(pg, r, v1)
        assert rc != 0 and "password authentication failed" in out
        assert login(pg, r, v2) == (0, r)
        stored = pg.sql(f"SELECT rolpassword FROM pg_authid WHERE "
                        f"rolname = '{r}'")
        assert stored.startswith("SCRAM-SHA-256$4096:"), stored
        log = (Path(pg.dir) / "server.log").read_text(errors="replace")
        assert "ALTER ROLE" in log     # the statement was logged...
        for v in (v1, v2):             # ...its password was not
            assert v not in log
            assert v not in d.log()
        s = secret(d, "dbpw")
        assert s["version"] == 2 and s["state"] == "ok"
        assert v2 not in json.dumps(s)
    finally:
        pg.sql("ALTER SYSTEM RESET log_statement")
        pg.sql("SELECT pg_reload_conf()")


def test_alternating_previous_credentials_keep_working(
        bk_pg, bk_daemons, tmp_path):
    pg = bk_pg
    base = f"alt_{secrets.token_hex(3)}"
    a, b = role(pg, base + "_a"), role(pg, base + "_b")
    pg.sql(f"GRANT pg_read_all_data TO {a}")       # b lacks it
    path, user = tmp_path / "pw", tmp_path / "user"
    d = bk_daemons(db_section(pg) +
                   f"[secret app]\nkind = postgres-password\n"
                   f"database = main\nrole = {base}\n"
                   f"strategy = alternating\npath = {path}\n"
                   f"user_path = {user}\nmin_interval = 3s\n"
                   f"combined_path = {tmp_path / 'app.json'}\n")
    wait_for(lambda: secret(d, "app")["version"] == 1, 20,
             "the first password", detail=lambda: d.log()[-3000:])
    assert user.read_text() == a
    p1 = path.read_text()
    combined = json.loads((tmp_path / "app.json").read_text())
    assert combined["user"] == a and combined["password"] == p1
    # a session opened with version 1 stays open across the rotation
    s1 = subprocess.Popen(
        [str(PSQL), "-X", "-At", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", a, "-d", "postgres"], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={"PATH": "/usr/bin:/bin", "PGPASSWORD": p1})
    try:
        # min_interval (1h by default for alternating) guards the pair
        reply = d.rpc_raw("secret.rotate", {"name": "app"})
        assert "error" in reply and "min_interval" in \
            reply["error"]["message"], reply
        time.sleep(3.1)
        rotate(d, "app")
        assert user.read_text() == b
        p2 = path.read_text()
        assert login(pg, b, p2) == (0, b)
        # the previous credentials still log in, and the open session
        # still answers
        assert login(pg, a, p1) == (0, a)
        s1.stdin.write("SELECT 40 + 2;\n")
        s1.stdin.flush()
        assert s1.stdout.readline().strip() == "42"
        # the grants differ: said, not fatal
        s = secret(d, "app")
        wait_for(lambda: secret(d, "app")["roles_differ"], 10,
                 "the roles' difference")
        diff = secret(d, "app")["roles_differ"]
        assert any("pg_read_all_data" in x and a in x for x in diff), diff
        assert d.events("secret.roles_differ")
        res = d.rpc("secret.rotate", {"name": "app", "force": True})
        wait_for(lambda: secret(d, "app")["version"] == 3, 20, "v3")
        assert user.read_text() == a
        assert login(pg, a, p1)[0] != 0      # two rotations later: gone
        assert login(pg, b, p2) == (0, b)    # the previous still works
        assert res["op"]
        assert s["version"] == 2
    finally:
        s1.kill()
        s1.wait()


# --- [database] password_secret ----------------------------------------------


def admin_keys(pg):
    return (f"admin_conninfo = host=127.0.0.1 port={pg.port} "
            f"user=opsd_admin dbname=postgres connect_timeout=5\n"
            f"admin_password_file = {pg.admin_pw_file}\n")


def owned_db(pg, owner):
    """A database with one table, both owned by owner: what a backup
    logged in as owner (or as a member of it) can dump."""
    name = f"sec_{secrets.token_hex(4)}"
    pg.sql(f"CREATE DATABASE {name} OWNER {owner}")
    pg.sql(f"CREATE TABLE items AS SELECT g AS id FROM "
           f"generate_series(1, 50) g; ALTER TABLE items OWNER TO {owner}",
           db=name)
    return name


def backup_now(d, name):
    """backup run NAME --follow, in a second of its own (a backup id is
    its time); the id of the backup it took."""
    t = time.time()
    time.sleep(1.02 - (t % 1))
    rc, out, err = d.run_backup(name)
    assert rc == 0, out + err
    return d.items(name)[0]["id"]


def test_password_secret_backups_and_probes_follow_rotations(
        bk_pg, bk_daemons, tmp_path):
    """A [database] whose role is the secret's: its backups read the
    password file at each run, and so does a postgres probe of the same
    file; both keep working across rotations, which the old password
    would not survive."""
    pg = bk_pg
    r = role(pg)
    v0 = secrets.token_hex(16)       # what the app had: adopted as v1
    pg.sql(f"ALTER ROLE {r} PASSWORD '{v0}'")
    db = owned_db(pg, r)
    path = tmp_path / "pw"
    path.write_text(v0)
    os.chmod(path, 0o400)
    ci = (f"host=127.0.0.1 port={pg.port} user={r} dbname={db} "
          f"connect_timeout=5")
    d = bk_daemons(
        f"[database main]\nconninfo = {ci}\npassword_secret = app\n" +
        admin_keys(pg) +
        f"\n[secret app]\nkind = postgres-password\ndatabase = main\n"
        f"role = {r}\npath = {path}\n\n"
        f"[probe db]\nkind = postgres\nconninfo = {ci}\n"
        f"password_file = {path}\ninterval = 1h\n\n" +
        backup_section("app", tmp_path / "backups", verify="never"))
    s = secret(d, "app")
    assert s["version"] == 1 and s["origin"] == "imported", s
    seen, taken = [], []
    for i in range(3):
        if i > 0:
            rotate(d, "app")
        pw = path.read_text()
        assert pw not in seen
        seen.append(pw)
        assert secret(d, "app")["version"] == i + 1
        res = d.rpc("probe.run", {"name": "db"}, timeout=30)
        assert res["ok"], res
        assert backup_now(d, "app") not in taken
        taken.append(d.items("app")[0]["id"])
    for old in seen[:-1]:
        assert login(pg, r, old, db=db)[0] != 0
    assert login(pg, r, seen[-1], db=db) == (0, r)


def test_password_secret_alternating_backups_follow_user_path(
        bk_pg, bk_daemons, tmp_path):
    """An alternating secret: the backup logs in as the role user_path
    names, with the password of that role; with the other role (which
    still has its own older password) the run would fail."""
    pg = bk_pg
    base = f"alt_{secrets.token_hex(3)}"
    owner = base + "_owner"
    pg.sql(f"CREATE ROLE {owner} NOLOGIN")
    a = role(pg, base + "_a", f"IN ROLE {owner}")
    b = role(pg, base + "_b", f"IN ROLE {owner}")
    db = owned_db(pg, owner)
    path, user = tmp_path / "pw", tmp_path / "user"
    d = bk_daemons(
        f"[database main]\nconninfo = host=127.0.0.1 port={pg.port} "
        f"user={a} dbname={db} connect_timeout=5\n"
        f"password_secret = app\n" + admin_keys(pg) +
        f"\n[secret app]\nkind = postgres-password\ndatabase = main\n"
        f"role = {base}\nstrategy = alternating\npath = {path}\n"
        f"user_path = {user}\n\n" +
        backup_section("app", tmp_path / "backups", verify="never"))
    wait_for(lambda: secret(d, "app")["version"] == 1, 20,
             "the first password", detail=lambda: d.log()[-3000:])
    creds, taken = {}, []
    for i, expect in enumerate((a, b, a)):
        if i > 0:
            # min_interval (1h) guards the pair; force skips it
            res = d.rpc("secret.rotate", {"name": "app", "force": True})
            wait_for(lambda: secret(d, "app")["version"] == i + 1 and
                     secret(d, "app")["state"] == "ok", 20, f"v{i + 1}",
                     detail=lambda: d.log()[-3000:])
            assert d.rpc("op.show", {"id": res["op"]})["state"] == "ok"
        assert user.read_text() == expect
        creds[expect] = path.read_text()
        assert secret(d, "app")["role"] == expect
        assert backup_now(d, "app") not in taken
        taken.append(d.items("app")[0]["id"])
        # the role not in use still has its older password: the backup
        # can only have used the one user_path names
        other = b if expect == a else a
        if other in creds:
            assert login(pg, other, creds[other], db=db) == (0, other)
            assert login(pg, other, creds[expect], db=db)[0] != 0


# --- failures: each leaves the previous working password -------------------


def failing_secret(pg, bk_daemons, tmp_path, extra="", sections="",
                   timeout="5s"):
    """A single-strategy secret dbpw with its first value in place; (d,
    role, path, value)."""
    r = role(pg)
    path = tmp_path / "pw"
    d = bk_daemons(db_section(pg) +
                   f"[secret dbpw]\nkind = postgres-password\n"
                   f"database = main\nrole = {r}\npath = {path}\n"
                   f"timeout = {timeout}\n{extra}\n{sections}")
    wait_for(lambda: secret(d, "dbpw")["version"] == 1 and
             secret(d, "dbpw")["state"] == "ok", 20, "the first password",
             detail=lambda: d.log()[-3000:])
    v1 = path.read_text()
    assert login(pg, r, v1) == (0, r)
    return d, r, path, v1


def state_files(d):
    return sorted(p.name for p in (d.state_dir / "secrets").iterdir())


def check_failed(d, pg, r, path, v1, op, words, result):
    """The op, secret.show and the event say why; nothing moved: the
    file, the version, the role's password (a login with the file's
    value), the state directory."""
    assert op["state"] == result, op
    for w in words:
        assert w in op["error"], op
    s = secret(d, "dbpw")
    assert s["version"] == 1 and s["state"] == "failed", s
    assert s["rotation"] is None and s["failures"] == 1, s
    last = s["last_result"]
    assert last["result"] == result and last["op"] == op["id"], last
    for w in words:
        assert w in last["error"] and w in s["last_error"], s
    ev = d.wait_event("secret.rotation_failed",
                      pred=lambda e: e.get("op") == op["id"])
    assert all(w in ev[0]["msg"] for w in words), ev
    assert path.read_text() == v1
    assert login(pg, r, v1) == (0, r)
    assert state_files(d) == ["dbpw.json", "dbpw.v1"], state_files(d)


def test_failure_postgres_stopped(bk_pg, bk_daemons, tmp_path):
    pg = bk_pg
    d, r, path, v1 = failing_secret(pg, bk_daemons, tmp_path)
    pg.stop()
    try:
        op = rotate(d, "dbpw", ok=False)
    finally:
        pg.start()
    check_failed(d, pg, r, path, v1, op,
                 ["cannot connect to database main", "admin"], "failed")
    rotate(d, "dbpw")
    assert login(pg, r, path.read_text()) == (0, r)


def test_failure_role_missing(bk_pg, bk_daemons, tmp_path):
    pg = bk_pg
    d, r, path, v1 = failing_secret(pg, bk_daemons, tmp_path)
    # renamed away and back: the role keeps its SCRAM verifier
    pg.sql(f"ALTER ROLE {r} RENAME TO {r}_away")
    try:
        op = rotate(d, "dbpw", ok=False)
    finally:
        pg.sql(f"ALTER ROLE {r}_away RENAME TO {r}")
    check_failed(d, pg, r, path, v1, op,
                 [f"cannot set the password of role {r}", "does not exist"],
                 "failed")


def test_failure_on_rotate_after_alter_role_sets_the_old_password_back(
        bk_pg, bk_daemons, tmp_path):
    pg = bk_pg
    fail = tmp_path / "fail"
    # the consumer copies each value it is given; the second command
    # fails once the test asks it to (not at the first value)
    d, r, path, v1 = failing_secret(
        pg, bk_daemons, tmp_path,
        f"on_rotate = cp {tmp_path / 'pw'} "
        f"{tmp_path}/seen.$OPSD_SECRET_VERSION\n"
        f"on_rotate = test ! -e {fail}\n")
    fail.touch()
    op = rotate(d, "dbpw", ok=False)
    check_failed(d, pg, r, path, v1, op,
                 [f"on_rotate 'test ! -e {fail}'"], "rolled_back")
    new = (tmp_path / "seen.2").read_text()
    assert new != v1
    rc, out = login(pg, r, new)
    assert rc != 0 and "password authentication failed" in out, out
    # on_rotate ran again with the old value: the consumer took it back
    assert (tmp_path / "seen.1").read_text() == v1
    fail.unlink()
    rotate(d, "dbpw")
    assert login(pg, r, path.read_text()) == (0, r)


def test_failure_verify_probe_sets_the_old_password_back(
        bk_pg, bk_daemons, tmp_path):
    pg = bk_pg
    fail = tmp_path / "fail"
    d, r, path, v1 = failing_secret(
        pg, bk_daemons, tmp_path,
        f"on_rotate = cp {tmp_path / 'pw'} "
        f"{tmp_path}/seen.$OPSD_SECRET_VERSION\n"
        "verify_probe = app\nverify_timeout = 2s\n",
        f"[probe app]\nkind = exec\ncommand = test ! -e {fail}\n"
        "interval = 1h\n")
    fail.touch()
    op = rotate(d, "dbpw", ok=False)
    check_failed(d, pg, r, path, v1, op, ["verify_probe app"],
                 "rolled_back")
    assert login(pg, r, (tmp_path / "seen.2").read_text())[0] != 0
    assert (tmp_path / "seen.1").read_text() == v1
    fail.unlink()
    rotate(d, "dbpw")


# --- the fleet lock ----------------------------------------------------------


def fleet_key(kind, name):
    """daemon/db/db.c db_lock_key(): FNV-1a (64 bits) of
    "opsd.KIND.NAME", shifted right once (a positive bigint). Its offset
    basis is 1469598103934665603, not FNV's 14695981039346656037: the
    key is what every opsd computes, so it is kept."""
    h = 1469598103934665603
    for c in f"opsd.{kind}.{name}".encode():
        h = ((h ^ c) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h >> 1


class AdvisoryLock:
    """Another host: a session holding pg_advisory_lock(key)."""

    def __init__(self, pg, key):
        self.proc = subprocess.Popen(
            [str(a) for a in pg.psql_argv()], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=pg.psql_env())
        self.proc.stdin.write(f"SELECT pg_advisory_lock({key});\n"
                              "\\echo LOCKED\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "the lock session ended"
            if line.strip() == "LOCKED":
                break

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("\\q\n")
            self.proc.stdin.close()
            self.proc.wait(10)


def lock_holders(pg, key):
    """Backend pids holding the bigint advisory lock key."""
    out = pg.sql("SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
                 "AND granted AND objsubid = 1 AND "
                 f"((classid::bigint << 32) | objid::bigint) = {key}")
    return [int(x) for x in out.split()]


def test_fleet_lock_held_by_another_host(bk_pg, bk_daemons, tmp_path):
    pg = bk_pg
    d, r, path, v1 = failing_secret(pg, bk_daemons, tmp_path,
                                    "lock = advisory\n")
    key = fleet_key("secret", "dbpw")
    other = AdvisoryLock(pg, key)
    try:
        op = rotate(d, "dbpw", ok=False)
    finally:
        other.release()
    check_failed(d, pg, r, path, v1, op,
                 ["another host holds the advisory lock opsd.secret.dbpw"],
                 "failed")
    ev = d.events("secret.rotation_failed")
    assert "nothing changed" in ev[-1]["msg"], ev
    rotate(d, "dbpw")
    assert login(pg, r, path.read_text()) == (0, r)


def test_fleet_lock_is_held_until_the_rotation_ends(bk_pg, bk_daemons,
                                                    tmp_path):
    """From set_password to promote: another host that tries in the
    middle (while on_rotate runs) is refused, and cannot undo the
    password this host is publishing."""
    pg = bk_pg
    hold, go = tmp_path / "hold", tmp_path / "go"
    d, r, path, v1 = failing_secret(
        pg, bk_daemons, tmp_path, "lock = advisory\n"
        f"on_rotate = while [ -e {hold} ] && [ ! -e {go} ]; do "
        "sleep 0.05; done\n")
    key = fleet_key("secret", "dbpw")
    assert lock_holders(pg, key) == []
    hold.touch()
    res = d.rpc("secret.rotate", {"name": "dbpw"})
    wait_for(lambda: d.rpc("op.show", {"id": res["op"]})["step"] ==
             "on_rotate", 20, "the rotation to reach on_rotate",
             detail=lambda: d.log()[-3000:])
    assert len(lock_holders(pg, key)) == 1
    rc, out, _ = pg.sql_rc(f"SELECT pg_try_advisory_lock({key})")
    assert rc == 0 and out.strip() == "f", out
    go.touch()
    wait_for(lambda: d.rpc("op.show", {"id": res["op"]})["state"] == "ok",
             20, "the rotation to end", detail=lambda: d.log()[-3000:])
    wait_for(lambda: lock_holders(pg, key) == [], 10, "the lock released")
    assert login(pg, r, path.read_text()) == (0, r)


class RoleLock:
    """A transaction that has altered the role and not ended: an ALTER
    ROLE of opsd waits behind it, and goes on once it is rolled back."""

    def __init__(self, pg, r):
        self.proc = subprocess.Popen(
            [str(a) for a in pg.psql_argv()], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=pg.psql_env())
        self.proc.stdin.write(f"BEGIN;\nALTER ROLE {r} CONNECTION LIMIT "
                              "-1;\n\\echo LOCKED\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            assert line, "the locking session ended"
            if line.strip() == "LOCKED":
                break

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("ROLLBACK;\n\\q\n")
            self.proc.stdin.close()
            self.proc.wait(10)


def test_failure_alter_role_times_out(bk_pg, bk_daemons, tmp_path):
    """ALTER ROLE waits for a lock past timeout: the statement is still
    on the server and commits once the lock goes (the client being gone
    does not stop it), so the role would end with a password nobody has
    unless the rollback sets the old one back after it."""
    pg = bk_pg
    d, r, path, v1 = failing_secret(pg, bk_daemons, tmp_path,
                                    timeout="1s")
    lock = RoleLock(pg, r)
    try:
        res = d.rpc("secret.rotate", {"name": "dbpw"})
        # the undo's own ALTER ROLE waits behind the lock too
        s = wait_for(lambda: (lambda s: s if s["state"] == "recovering"
                              else None)(secret(d, "dbpw")), 20,
                     "the rollback to wait for the database",
                     detail=lambda: d.log()[-3000:])
        # no restart: recovering, but nothing was recovered
        assert s["rotation"]["recovered"] is False, s
        assert s["rotation"]["rolling_back"] is True, s
    finally:
        lock.release()
    o = wait_for(lambda: (lambda o: o if o["state"] != "running" else
                          None)(d.rpc("op.show", {"id": res["op"]})), 30,
                 "the rotation to end", detail=lambda: d.log()[-3000:])
    assert o["state"] == "rolled_back", o
    assert "timed out" in o["error"], o
    assert o["recovered"] is False, o
    assert not d.events("secret.recovered")
    # whatever the server did with the statement, in the end the file's
    # value logs in
    time.sleep(1)
    assert path.read_text() == v1
    assert login(pg, r, v1) == (0, r)
    assert secret(d, "dbpw")["version"] == 1


# --- a probe that logs in with a secret --------------------------------------


def test_probe_password_secret_follows_rotations(bk_pg, bk_daemons,
                                                 tmp_path):
    """password_secret names a [secret] whose file does not exist yet when
    the configuration is read (password_file would be refused): the probe
    logs in with each version as it is published."""
    pg = bk_pg
    r = role(pg)
    path = tmp_path / "pub" / "db_password"
    d = bk_daemons(db_section(pg) +
                   f"[secret dbpw]\nkind = postgres-password\n"
                   f"database = main\nrole = {r}\npath = {path}\n\n"
                   f"[probe app]\nkind = postgres\n"
                   f"conninfo = host=127.0.0.1 port={pg.port} user={r} "
                   f"dbname=postgres connect_timeout=5\n"
                   f"password_secret = dbpw\ninterval = 200ms\n")

    def state():
        return {p["name"]: p for p in d.rpc("probe.list")["probes"]}["app"]
    wait_for(lambda: state()["state"] == "up", 20, "the probe to log in",
             detail=lambda: (state(), d.log()[-3000:]))
    rotate(d, "dbpw")
    assert login(pg, r, path.read_text()) == (0, r)
    # the newest runs (every 200 ms, a second after the rotation ended)
    # started after it: they logged in with the new password
    time.sleep(1.0)
    hist = d.rpc("probe.history", {"name": "app"})["history"]   # newest first
    assert len(hist) >= 3 and all(h["ok"] for h in hist[:3]), hist
    assert state()["state"] == "up", state()


@pytest.mark.parametrize("body,words", [
    ("password_secret = nosuch\n", "unknown secret 'nosuch'"),
    ("password_secret = dbpw\npassword_file = /etc/hostname\n",
     "password_secret and password_file: set one or the other"),
])
def test_probe_password_secret_errors(bk_pg, tmp_path, body, words):
    from backup_svc import OPSD, run
    conf = tmp_path / "opsd.conf"
    conf.write_text(f"[opsd]\nstate_dir = {tmp_path}/state\n\n" +
                    db_section(bk_pg) +
                    f"[secret dbpw]\nkind = postgres-password\n"
                    f"database = main\nrole = nobody_here\n"
                    f"path = {tmp_path}/pw\n\n"
                    "[probe app]\nkind = postgres\n"
                    "conninfo = host=127.0.0.1 dbname=postgres\n" + body)
    rc, out, err = run([OPSD, "-c", conf, "--check-config"])
    assert rc != 0, out + err
    line = next(i + 1 for i, x in enumerate(conf.read_text().splitlines())
                if x.startswith("password_secret"))
    assert f"{conf}:{line}: {words}" in err, err
