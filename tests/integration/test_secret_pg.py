"""
PostgreSQL passwords rotated by opsd against a real PostgreSQL 15: the
single strategy (the old password stops working, the new one works, the
server stores a SCRAM verifier and its statement log never sees the
plaintext), the alternating strategy (a session opened with the previous
credentials keeps working and can reconnect until the next rotation; the
roles' differences are reported), [database] password_secret, and the
failures that must leave the previous working password in place.
"""
import json
import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc")

from backup_svc import PGBIN, wait_for  # noqa: E402

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


def test_password_secret_backups_follow_rotations(bk_pg, bk_daemons,
                                                  tmp_path):
    pg = bk_pg
    r = role(pg, extra="")
    path = tmp_path / "pw"
    d = bk_daemons(
        f"[database main]\nconninfo = host=127.0.0.1 port={pg.port} "
        f"user={r} dbname=postgres connect_timeout=5\n"
        f"password_secret = app\n"
        f"admin_conninfo = host=127.0.0.1 port={pg.port} "
        f"user=opsd_admin dbname=postgres connect_timeout=5\n"
        f"admin_password_file = {pg.admin_pw_file}\n\n"
        f"[secret app]\nkind = postgres-password\ndatabase = main\n"
        f"role = {r}\npath = {path}\n"
        f"[probe db]\ntype = postgres\n")
    assert d
