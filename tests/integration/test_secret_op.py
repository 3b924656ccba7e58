"""
Rotations on the op journal: a crash at every step of secret.rotate (the
fault points of a test build, OPSD_FAULT=secret.rotate:STEP[:after]) and
what the next start makes of it, for a single-strategy PostgreSQL
password that takes every step (on_rotate and a verify_probe), a random
secret and an alternating pair; a crash after a rollback was recorded; a
database that is down while a rollback needs it; a real kill -9 while
on_rotate hangs; and SIGTERM in the middle of a rotation.

What a restart must leave, whatever the step: a rotation stopped before
write_files is rolled back, one stopped at or after it is finished; the
op is in the history with recovered: true and secret.recovered names it;
the published file, the role's real password (a login with the file's
value) and the version secret.show reports agree; the state directory
holds no version NAME.json does not keep; and the next rotation works.
"""
import base64
import hashlib
import json
import os
import secrets
import signal
import subprocess
import time

import pytest

pytest.register_assert_rewrite("backup_svc")

from backup_svc import PGBIN, SCALE, wait_for  # noqa: E402

pytest_plugins = ["backup_svc"]

PSQL = PGBIN / "psql"
NAME = "s1"

PG_STEPS = ["generate", "set_password", "test_login", "write_files",
            "on_rotate", "verify", "promote"]
RANDOM_STEPS = ["generate", "write_files", "on_rotate", "verify", "promote"]


def case_ids(cases):
    return [f"{k}-{s}" + (":after" if a else "") for k, s, a in cases]


CASES = [("pg", s, a) for s in PG_STEPS for a in (False, True)] + \
        [("random", s, a) for s in RANDOM_STEPS for a in (False, True)] + \
        [("alternating", s, a) for s in ("set_password", "write_files")
         for a in (False, True)]


def finished_forward(step):
    """At or after write_files the new value is known to work: the
    rotation is finished; before it, it is rolled back."""
    return PG_STEPS.index(step) >= PG_STEPS.index("write_files")


# --- helpers -----------------------------------------------------------------


def login(pg, user, password, db="postgres"):
    """(rc, output) of psql as user with password over TCP."""
    p = subprocess.run(
        [str(PSQL), "-X", "-At", "-h", "127.0.0.1", "-p", str(pg.port),
         "-U", user, "-d", db, "-c", "SELECT current_user"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"},
        capture_output=True, text=True, timeout=30)
    return p.returncode, (p.stdout + p.stderr).strip()


def fingerprint(value):
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]


def secret(d, name=NAME):
    return d.rpc("secret.show", {"name": name})


def op_files(d):
    return sorted(d.state_dir.glob("op-*.json"))


def state_files(d):
    return sorted(p.name for p in (d.state_dir / "secrets").iterdir())


def wait_exit(d, timeout=20):
    try:
        rc = d.proc.wait(timeout=timeout * SCALE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"opsd did not exit at the fault point:\n"
                             f"{d.log()[-4000:]}")
    d._close()
    return rc


def wait_op_done(d, op_id, timeout=20):
    def done():
        o = d.rpc("op.show", {"id": op_id})
        return o if o["state"] != "running" else None
    return wait_for(done, timeout, f"op {op_id} to end", interval=0.05,
                    detail=lambda: d.log()[-4000:])


def start_rotation(d, name=NAME):
    """secret.rotate (forced: an adopted value is new); a fault at the
    first step exits before the answer."""
    try:
        d.rpc_raw("secret.rotate", {"name": name, "force": True})
    except (OSError, ValueError):
        pass


def rotate_ok(d, name=NAME):
    res = d.rpc("secret.rotate", {"name": name, "force": True})
    o = wait_op_done(d, res["op"])
    assert o["state"] == "ok", json.dumps(o, indent=1)
    return o


class Setup:
    """A secret NAME with an adopted version 1 (so that the fault set
    at the start is not met by the first value), on_rotate writing the
    version it is given to a log, and a verify_probe."""

    def __init__(self, kind, pg, tmp_path, on_rotate=None):
        self.kind = kind
        self.pg = pg
        self.dir = tmp_path
        self.path = tmp_path / "value"
        self.user_path = tmp_path / "user"
        self.log = tmp_path / "on_rotate.log"
        cmd = on_rotate or f"echo $OPSD_SECRET_VERSION >> {self.log}"
        if kind == "random":
            self.v0 = base64.b64encode(secrets.token_bytes(32)).decode()
            self.role = None
            body = (f"[secret {NAME}]\nkind = random\npath = {self.path}\n"
                    f"on_rotate = {cmd}\nverify_probe = check\n"
                    f"verify_timeout = 10s\n\n"
                    f"[probe check]\nkind = exec\n"
                    f"command = test -s {self.path}\ninterval = 1h\n")
        else:
            self.v0 = secrets.token_hex(16)
            base = f"cr_{secrets.token_hex(3)}"
            if kind == "alternating":
                self.roles = (base + "_a", base + "_b")
                keys = (f"role = {base}\nstrategy = alternating\n"
                        f"user_path = {self.user_path}\n")
                self.user_path.write_text(self.roles[0])
            else:
                self.roles = (base,)
                keys = f"role = {base}\n"
            for r in self.roles:
                pg.sql(f"CREATE ROLE {r} LOGIN PASSWORD "
                       f"'{secrets.token_hex(12)}'")
            # the value an app had: the role's password, adopted as v1
            pg.sql(f"ALTER ROLE {self.roles[0]} PASSWORD '{self.v0}'")
            self.role = self.roles[0]
            user = f"$(cat {self.user_path})" if kind == "alternating" \
                else base
            # the verify probe logs in as the role in use with the file
            body = (f"[database main]\n"
                    f"conninfo = host=127.0.0.1 port={pg.port} "
                    f"user=backup dbname=postgres connect_timeout=5\n"
                    f"password_file = {pg.backup_pw_file}\n"
                    f"admin_conninfo = host=127.0.0.1 port={pg.port} "
                    f"user=opsd_admin dbname=postgres connect_timeout=5\n"
                    f"admin_password_file = {pg.admin_pw_file}\n\n"
                    f"[secret {NAME}]\nkind = postgres-password\n"
                    f"database = main\n{keys}path = {self.path}\n"
                    f"timeout = 5s\non_rotate = {cmd}\n"
                    f"verify_probe = check\nverify_timeout = 10s\n\n"
                    f"[probe check]\nkind = exec\ncommand = "
                    f"PGPASSWORD=$(cat {self.path}) PGCONNECT_TIMEOUT=5 "
                    f"{PSQL} -X -At -h 127.0.0.1 -p {pg.port} -U {user} "
                    f"-d postgres -c 'SELECT 1'\ninterval = 1h\n")
        self.path.write_text(self.v0)
        os.chmod(self.path, 0o400)
        self.body = body

    def on_rotate_versions(self):
        try:
            return [int(x) for x in self.log.read_text().split()]
        except FileNotFoundError:
            return []

    def check(self, d, version):
        """The file, the role's password and secret.show agree on
        version; the state holds it and the previous only."""
        s = secret(d)
        assert s["version"] == version, s
        assert s["rotation"] is None, s
        value = self.path.read_text()
        assert s["fingerprint"] == fingerprint(value), s
        if version == 1:
            assert value == self.v0
        else:
            assert value != self.v0
        kept = [f"{NAME}.json"] + [f"{NAME}.v{v}"
                                   for v in range(max(1, version - 1),
                                                  version + 1)]
        assert state_files(d) == sorted(kept), state_files(d)
        assert op_files(d) == [], op_files(d)
        if self.kind == "random":
            return value
        if self.kind == "alternating":
            user = self.roles[(version - 1) % 2]
            assert self.user_path.read_text() == user
            assert s["role"] == user, s
        else:
            user = self.role
        assert login(self.pg, user, value) == (0, user)
        if version > 1 and self.kind == "pg":
            rc, out = login(self.pg, user, self.v0)
            assert rc != 0 and "password authentication failed" in out
        return value


@pytest.fixture
def pg(bk_pg):
    return bk_pg


# --- a crash at every step ---------------------------------------------------


@pytest.mark.parametrize("kind,step,after", CASES, ids=case_ids(CASES))
def test_crash_at_every_step(pg, bk_daemons, tmp_path, monkeypatch, kind,
                             step, after):
    st = Setup(kind, pg, tmp_path)
    fault = f"secret.rotate:{step}" + (":after" if after else "")
    monkeypatch.setenv("OPSD_FAULT", fault)
    d = bk_daemons(st.body)
    monkeypatch.delenv("OPSD_FAULT")
    s = secret(d)
    assert s["version"] == 1 and s["origin"] == "imported", s
    start_rotation(d)
    assert wait_exit(d) == 77, d.log()[-3000:]
    assert "OPSD_FAULT=" + fault in d.log(), d.log()[-3000:]
    left = op_files(d)
    assert len(left) == 1, left
    op = json.loads(left[0].read_text())
    assert op["kind"] == "secret.rotate" and op["object"] == NAME, op
    assert op["step"] == step, op

    d.start()
    forward = finished_forward(step)
    o = wait_op_done(d, op["id"])
    assert o["state"] == ("ok" if forward else "rolled_back"), o
    assert o["recovered"] is True, o
    ev = d.wait_event("secret.recovered", since_start=True,
                      pred=lambda e: e.get("op") == op["id"])
    assert ("finished" if forward else "rolled back") in ev[0]["msg"], ev
    st.check(d, 2 if forward else 1)
    if forward:
        # the consumers were told again after the restart
        assert st.on_rotate_versions()[-1] == 2, st.on_rotate_versions()
        assert secret(d)["state"] == "ok"
    else:
        s = secret(d)
        assert s["last_result"]["result"] == "rolled_back", s
        # asked for by hand, not due: not retried on its own
        assert s["next_rotation"] is None, s

    rotate_ok(d)
    st.check(d, 3 if forward else 2)
    assert secret(d)["state"] == "ok"
    assert st.on_rotate_versions()[-1] == (3 if forward else 2)


def test_crash_after_a_rollback_was_recorded(pg, bk_daemons, tmp_path,
                                            monkeypatch):
    """on_rotate fails, the rollback is done and written to NAME.json,
    and opsd stops before the journal has it (on_rotate:after fires in
    op_finish): the next start finishes the op as it ended, without a
    second rollback or a second failure counted."""
    fail = tmp_path / "fail"
    log = tmp_path / "on_rotate.log"
    st = Setup("pg", pg, tmp_path, on_rotate=(
        f"echo $OPSD_SECRET_VERSION >> {log}; test ! -e {fail}"))
    fail.touch()
    monkeypatch.setenv("OPSD_FAULT", "secret.rotate:on_rotate:after")
    d = bk_daemons(st.body)
    monkeypatch.delenv("OPSD_FAULT")
    start_rotation(d)
    assert wait_exit(d) == 77, d.log()[-3000:]
    op = json.loads(op_files(d)[0].read_text())
    assert st.on_rotate_versions() == [2, 1]
    d.start()
    o = wait_op_done(d, op["id"])
    assert o["state"] == "rolled_back" and o["recovered"], o
    assert "on_rotate" in o["error"], o
    d.wait_event("secret.recovered", pred=lambda e: e.get("op") == op["id"])
    s = secret(d)
    assert s["failures"] == 1 and s["last_result"]["op"] == op["id"], s
    assert st.on_rotate_versions() == [2, 1]
    st.check(d, 1)
    fail.unlink()
    rotate_ok(d)
    st.check(d, 2)


# --- the database is down while a rollback needs it --------------------------


def test_database_down_during_recovery(pg, bk_daemons, tmp_path,
                                       monkeypatch):
    st = Setup("pg", pg, tmp_path)
    monkeypatch.setenv("OPSD_FAULT", "secret.rotate:test_login")
    d = bk_daemons(st.body)
    monkeypatch.delenv("OPSD_FAULT")
    start_rotation(d)
    assert wait_exit(d) == 77, d.log()[-3000:]
    op = json.loads(op_files(d)[0].read_text())
    # the role has the new password: only the database can undo that
    new = (d.state_dir / "secrets" / f"{NAME}.v2").read_text()
    assert login(pg, st.role, new) == (0, st.role)
    pg.stop()
    try:
        d.start()
        s = wait_for(lambda: (lambda x: x if x["state"] == "recovering"
                              else None)(secret(d)), 10,
                     "secret.show to say recovering",
                     detail=lambda: d.log()[-3000:])
        assert s["rotation"]["op"] == op["id"], s
        assert s["rotation"]["recovered"] is True, s
        lst = d.rpc("secret.list")["secrets"]
        assert [x["state"] for x in lst if x["name"] == NAME] == \
            ["recovering"]
        assert d.rpc("op.show", {"id": op["id"]})["state"] == "running"
        # a rotation asked for meanwhile is refused, saying why
        reply = d.rpc_raw("secret.rotate", {"name": NAME})
        assert "error" in reply and "recovering" in \
            reply["error"]["message"], reply
        assert st.path.read_text() == st.v0
    finally:
        pg.start()
    o = wait_op_done(d, op["id"], timeout=15)
    assert o["state"] == "rolled_back" and o["recovered"], o
    d.wait_event("secret.recovered", pred=lambda e: e.get("op") == op["id"])
    st.check(d, 1)
    assert login(pg, st.role, new)[0] != 0
    rotate_ok(d)
    st.check(d, 2)


def test_recovery_takes_the_fleet_lock(pg, bk_daemons, tmp_path,
                                       monkeypatch):
    """A crash after set_password, and another host holding the fleet
    lock when opsd starts again: the role is not touched until the lock
    is free, then the password is set back."""
    from test_secret_pg import AdvisoryLock, fleet_key
    st = Setup("pg", pg, tmp_path)
    st.body = st.body.replace("timeout = 5s\n",
                              "timeout = 5s\nlock = advisory\n")
    monkeypatch.setenv("OPSD_FAULT", "secret.rotate:test_login")
    d = bk_daemons(st.body)
    monkeypatch.delenv("OPSD_FAULT")
    start_rotation(d)
    assert wait_exit(d) == 77, d.log()[-3000:]
    op = json.loads(op_files(d)[0].read_text())
    new = (d.state_dir / "secrets" / f"{NAME}.v2").read_text()
    assert login(pg, st.role, new) == (0, st.role)
    other = AdvisoryLock(pg, fleet_key("secret", NAME))
    try:
        d.start()
        d.wait_event("secret.rollback",
                     pred=lambda e: "another host holds" in e["msg"])
        assert secret(d)["state"] == "recovering"
        assert login(pg, st.role, new) == (0, st.role)
    finally:
        other.release()
    o = wait_op_done(d, op["id"], timeout=25)
    assert o["state"] == "rolled_back" and o["recovered"], o
    st.check(d, 1)
    assert login(pg, st.role, new)[0] != 0


# --- a real kill -9 while on_rotate hangs ------------------------------------


def test_kill9_while_on_rotate_hangs(pg, bk_daemons, tmp_path):
    """The first on_rotate hangs (sleep 30) and opsd is killed: the next
    start finishes the rotation, on_rotate included."""
    mark, pidf = tmp_path / "hung", tmp_path / "hung.pid"
    log = tmp_path / "on_rotate.log"
    st = Setup("pg", pg, tmp_path, on_rotate=(
        f"if [ ! -e {mark} ]; then touch {mark}; echo $$ > {pidf}; "
        f"sleep 30; fi; echo $OPSD_SECRET_VERSION >> {log}"))
    d = bk_daemons(st.body)
    res = d.rpc("secret.rotate", {"name": NAME, "force": True})
    try:
        wait_for(pidf.exists, 20, "on_rotate to hang",
                 detail=lambda: d.log()[-3000:])
        o = d.rpc("op.show", {"id": res["op"]})
        assert o["state"] == "running" and o["step"] == "on_rotate", o
        assert secret(d)["state"] == "rotating"
        d.kill9()
        d.start()
        o = wait_op_done(d, res["op"])
        assert o["state"] == "ok" and o["recovered"], o
        d.wait_event("secret.recovered",
                     pred=lambda e: e.get("op") == res["op"])
        assert st.on_rotate_versions() == [2]
        st.check(d, 2)
        rotate_ok(d)
        st.check(d, 3)
        assert st.on_rotate_versions() == [2, 3]
    finally:
        try:
            os.killpg(int(pidf.read_text()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def test_every_step_is_taken(pg, bk_daemons, tmp_path):
    """Without faults the cases' rotations walk the steps the crashes
    are set at, and op.show lists them."""
    for kind, steps in (("pg", PG_STEPS), ("random", RANDOM_STEPS)):
        sub = tmp_path / kind
        sub.mkdir()
        st = Setup(kind, pg, sub)
        d = bk_daemons(st.body, name=kind)
        o = rotate_ok(d)
        show = d.rpc("op.show", {"id": o["id"]})
        assert [x["name"] for x in show["steps"]] == steps, show
        st.check(d, 2)
        d.stop()


def test_sigterm_during_a_rotation(pg, bk_daemons, tmp_path):
    """SIGTERM while on_rotate runs: on_rotate ends, the verify probe
    cannot run any more (the probes have stopped), so the op is left to
    the next start, which finishes it; opsd exits then, not at
    shutdown_timeout."""
    log = tmp_path / "on_rotate.log"
    st = Setup("pg", pg, tmp_path, on_rotate=(
        f"sleep 1; echo $OPSD_SECRET_VERSION >> {log}"))
    # before any section: [opsd]'s
    d = bk_daemons("shutdown_timeout = 30s\n" + st.body)
    res = d.rpc("secret.rotate", {"name": NAME, "force": True})
    wait_for(lambda: d.rpc("op.show", {"id": res["op"]})["step"] ==
             "on_rotate", 10, "on_rotate to run",
             detail=lambda: d.log()[-3000:])
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(timeout=40 * SCALE)
    took = time.monotonic() - t0
    d._close()
    assert rc == 0, d.log()[-3000:]
    assert took < 10 * SCALE, (took, d.log()[-3000:])
    assert st.on_rotate_versions() == [2]
    assert len(op_files(d)) == 1
    assert not d.events("secret.rotation_failed")
    d.start()
    o = wait_op_done(d, res["op"])
    assert o["state"] == "ok" and o["recovered"], o
    assert st.on_rotate_versions() == [2, 2]
    st.check(d, 2)
