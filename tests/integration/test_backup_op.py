"""
Backup runs on the op journal: a crash at every step of backup.run (the
fault points of a test build, OPSD_FAULT=backup.run:STEP[:after]) and
what the next start finds; a real kill -9 mid-dump as `op list` shows it;
hostile op files; and restores whose backup goes away under them (a
reload without the [backup] section, SIGTERM) while pg_restore runs.

What a restart must leave, whatever the step: no .partial, no dump
without its manifest, no scratch database, no password file of the run;
a dump whose manifest was written is a backup and stays (its op is ok),
anything before that is rolled back; the op is in the history with
recovered: true; and the next run succeeds.
"""
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc", "s3server")

from backup_svc import (PGBIN, SCALE, TableLock, backup_section,  # noqa: E402
                        find_pg_dump, pg_dump_waiting, pid_alive, proc_ppid,
                        wait_for)
from s3server import S3Server  # noqa: E402

pytest_plugins = ["backup_svc"]

NAME = "opb"

# every step of backup.run, in order, and what a crash there leaves
STEPS = ["connecting", "locking", "dumping", "syncing", "renaming",
         "verifying", "uploading", "pruning"]
# a crash from here on finds the manifest written: the backup is kept
KEPT_FROM = ("renaming", ":after")


def expect_kept(step, after):
    i = STEPS.index(step)
    r = STEPS.index(KEPT_FROM[0])
    return i > r or (i == r and after)


CASES = [(s, a) for s in STEPS for a in (False, True)]


# --- helpers -----------------------------------------------------------------


def files_in(d):
    d = Path(d)
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


@pytest.fixture
def s3(tmp_path):
    keys = tmp_path / "s3keys"
    keys.mkdir()
    ak, sk = "AKOPSD" + secrets.token_hex(4).upper(), secrets.token_hex(20)
    (keys / "access").write_text(ak + "\n")
    (keys / "secret").write_text(sk + "\n")
    for f in keys.iterdir():
        os.chmod(f, 0o600)
    srv = S3Server(tmp_path / "s3data", ak, sk).start()
    srv.keyfiles = keys
    yield srv
    srv.stop()


def every_step_conf(bk_pg, tmp_path, s3, db, name=NAME):
    """A backup that takes every step: the fleet lock, verify = each, an
    upload, retention."""
    bdir = tmp_path / f"{name}.backups"
    body = bk_pg.conf_sections(db) + backup_section(
        name, bdir, lock="advisory", verify="each",
        check="SELECT count(*) FROM users", expect="> 0", keep_last=5,
        upload="s3://backups/opsd", s3_endpoint=s3.url,
        s3_region="us-east-1",
        s3_access_key_file=s3.keyfiles / "access",
        s3_secret_key_file=s3.keyfiles / "secret")
    return body, bdir


def op_files(d):
    return sorted(d.state_dir.glob("op-*.json"))


def ops(d, **filters):
    args = ["--json", "op", "list"]
    for k, v in filters.items():
        args += [f"--{k}", v]
    rc, out, err = d.cli(*args)
    assert rc == 0, f"op list failed ({rc}): {out}{err}"
    return json.loads(out)["ops"]


def wait_op_done(d, op_id, timeout=20):
    def done():
        for o in ops(d):
            if o["id"] == op_id and o["state"] != "running":
                return o
        return None
    return wait_for(done, timeout, f"op {op_id} to be finished",
                    interval=0.1, detail=lambda: d.log()[-4000:])


def pgpass_files(d, name=NAME):
    run = d.state_dir / "run"
    return sorted(p.name for p in run.glob(f"pgpass-{name}-*")) \
        if run.is_dir() else []


def next_second():
    t = time.time()
    time.sleep(1.02 - (t % 1))


def wait_exit(d, timeout=30):
    try:
        rc = d.proc.wait(timeout=timeout * SCALE)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"opsd did not exit at the fault point:\n"
                             f"{d.log()[-4000:]}")
    d._close()
    return rc


def check_clean(d, bk_pg, bdir, name=NAME):
    """No partial, no dump without a manifest, no scratch database, no
    password file of this backup."""
    names = files_in(bdir)
    assert [f for f in names if f.endswith(".partial")] == [], names
    dumps = {f[:-len(".dump")] for f in names if f.endswith(".dump")}
    mans = {f[:-len(".json")] for f in names if f.endswith(".json")}
    assert dumps == mans, names
    wait_for(lambda: bk_pg.scratch_dbs(name) == [], 15,
             "no scratch database of the backup",
             detail=lambda: d.log()[-3000:])
    assert pgpass_files(d, name) == [], pgpass_files(d, name)


# --- a crash at every step ---------------------------------------------------


@pytest.mark.parametrize("step,after", CASES,
                         ids=[s + (":after" if a else "") for s, a in CASES])
def test_crash_at_every_step(bk_pg, bk_daemons, tmp_path, s3, monkeypatch,
                             step, after):
    db = bk_pg.new_db(rows=300)
    body, bdir = every_step_conf(bk_pg, tmp_path, s3, db)
    fault = f"backup.run:{step}" + (":after" if after else "")
    monkeypatch.setenv("OPSD_FAULT", fault)
    d = bk_daemons(body)
    monkeypatch.delenv("OPSD_FAULT")
    # the connecting step is taken before the reply: no answer then
    d.cli("backup", "run", NAME)
    assert wait_exit(d) == 77, d.log()[-3000:]
    assert "OPSD_FAULT=" + fault in d.log(), d.log()[-3000:]

    left = op_files(d)
    assert len(left) == 1, left
    op = json.loads(left[0].read_text())
    assert op["kind"] == "backup.run" and op["object"] == NAME, op
    run_id = op["data"]["run"]
    assert run_id.startswith(NAME + "-"), op

    d.start()
    kept = expect_kept(step, after)
    o = wait_op_done(d, op["id"])
    assert o["kind"] == "backup.run" and o["object"] == NAME, o
    assert o["state"] == ("ok" if kept else "rolled_back"), o
    assert o["recovered"] is True, o
    assert op_files(d) == [], op_files(d)
    ev = d.wait_event("backup.interrupted", since_start=True)
    assert ev[0].get("backup_id") == run_id, ev

    check_clean(d, bk_pg, bdir)
    ids = [i["id"] for i in d.items(NAME)]
    if kept:
        assert ids == [run_id], ids
        assert (bdir / f"{run_id}.dump").exists()
    else:
        assert ids == [], ids
        assert files_in(bdir) == [], files_in(bdir)

    next_second()
    rc, out, err = d.run_backup(NAME)
    assert rc == 0, out + err
    assert len(d.items(NAME)) == len(ids) + 1
    newest = ops(d, kind="backup.run")[0]
    assert newest["state"] == "ok" and newest["recovered"] is False, newest
    check_clean(d, bk_pg, bdir)


def test_every_step_is_taken_and_followed(bk_pg, bk_daemons, tmp_path, s3):
    """One run without faults walks every step, op show lists them, and
    --follow hears them with the op's id."""
    db = bk_pg.new_db(rows=300)
    body, bdir = every_step_conf(bk_pg, tmp_path, s3, db)
    d = bk_daemons(body)
    rc, out, err = d.cli("--json", "backup", "run", NAME, "--follow")
    assert rc == 0, out + err
    notes = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    prog = [n["params"] for n in notes
            if n.get("method") == "backup.progress"]
    fin = [n["params"] for n in notes
           if n.get("method") == "backup.finished"]
    assert fin and fin[0]["result"] == "ok", notes
    op_id = fin[0]["op"]
    assert {p["op"] for p in prog} == {op_id}, prog
    seen = []
    for p in prog:
        if not seen or seen[-1] != p["step"]:
            seen.append(p["step"])
    assert seen == STEPS, seen
    for p in prog:
        assert set(p) >= {"run", "op", "backup", "step", "bytes",
                          "elapsed_seconds", "rate_bytes_per_second"}, p
    show = d.rpc("op.show", {"id": op_id})
    assert [s["name"] for s in show["steps"]] == STEPS, show
    assert show["state"] == "ok" and show["kind"] == "backup.run", show


# --- a real kill -9 ----------------------------------------------------------


def test_kill9_mid_dump_shows_in_op_list(bk_pg, bk_daemons, tmp_path):
    """op list on a running daemon: a good run, and one cut by a real
    SIGKILL while pg_dump was running, rolled back by the next start."""
    db = bk_pg.new_db(rows=500)
    bdir = tmp_path / "k9.backups"
    d = bk_daemons(bk_pg.conf_sections(db) +
                   backup_section("k9", bdir, verify="never"))
    rc, out, err = d.run_backup("k9")
    assert rc == 0, out + err
    good = d.items("k9")[0]["id"]
    next_second()
    with TableLock(bk_pg, db):
        run_id = d.rpc("backup.run", {"name": "k9"})["run"]
        wait_for(lambda: pg_dump_waiting(bk_pg, db), 15, "pg_dump to wait",
                 interval=0.05, detail=lambda: d.log()[-3000:])
        dump = [p for p in find_pg_dump(db) if proc_ppid(p) == d.pid]
        assert len(dump) == 1, dump
        running = [o for o in ops(d, kind="backup.run")
                   if o["state"] == "running"]
        assert [o["step"] for o in running] == ["dumping"], running
        assert (bdir / f"{run_id}.dump.partial").exists()
        d.kill9()
    wait_for(lambda: not pid_alive(dump[0]), 10, "the orphaned pg_dump")

    d.start()
    killed = wait_op_done(d, running[0]["id"])
    assert killed["state"] == "rolled_back" and killed["recovered"], killed
    assert "dumping" in killed["error"], killed
    assert files_in(bdir) == sorted([f"{good}.dump", f"{good}.json"])
    assert pgpass_files(d, "k9") == []
    rc, out, err = d.cli("op", "list", "--kind", "backup.run")
    assert rc == 0, err
    lines = [x for x in out.splitlines() if running[0]["id"] in x]
    assert len(lines) == 1 and "rolled_back" in lines[0], out
    states = [o["state"] for o in ops(d, kind="backup.run")]
    assert states == ["rolled_back", "ok"], states
    next_second()
    rc, out, err = d.run_backup("k9")
    assert rc == 0, out + err
    assert [o["state"] for o in ops(d, kind="backup.run")] == \
        ["ok", "rolled_back", "ok"]


# --- hostile op files --------------------------------------------------------


def hostile_op(d, op_id, run, obj=NAME, step="dumping"):
    (d.state_dir / f"op-{op_id}.json").write_text(json.dumps({
        "format": 1, "id": op_id, "kind": "backup.run", "object": obj,
        "step": step, "started": "2026-12-01T12:34:56Z", "pid": 1,
        "steps": [{"name": "connecting", "at": "2026-12-01T12:34:56Z"},
                  {"name": step, "at": "2026-12-01T12:34:57Z"}],
        "data": {"run": run}}))


def test_hostile_op_files_touch_nothing(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=100)
    bdir = tmp_path / "opb.backups"
    odir = tmp_path / "other.backups"
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "passwd.dump.partial"
    victim.write_text("not yours\n")
    (outside / "passwd.dump").write_text("not yours\n")
    body = bk_pg.conf_sections(db) + \
        backup_section(NAME, bdir, verify="never") + \
        backup_section("other", odir, verify="never")
    d = bk_daemons(body, start=False)
    d.state_dir.mkdir(mode=0o750, exist_ok=True)
    bdir.mkdir()
    odir.mkdir()
    # another backup's run, with files that would match its names
    other_run = "other-20261201T123456Z"
    for suffix in (".dump.partial", ".dump"):
        (odir / f"{other_run}{suffix}").write_text("x")
        (bdir / f"{other_run}{suffix}").write_text("x")
    rel = os.path.relpath(outside / "passwd", bdir)
    cases = {
        "20261201T123456Z-0000000a": rel,
        "20261201T123456Z-0000000b": "../../etc/passwd",
        "20261201T123456Z-0000000c": other_run,
        "20261201T123456Z-0000000d": f"{NAME}-20261399T999999Z",
        "20261201T123456Z-0000000e": f"{NAME}-20261201T123456Z/../../x",
    }
    for op_id, run in cases.items():
        # one op per kind and object is unfinished at a time: one
        # object each, all of them backup NAME's name or a missing one
        hostile_op(d, op_id, run)
        d.start()
        o = wait_op_done(d, op_id)
        assert o["state"] == "abandoned" and o["recovered"], o
        assert "not a run of backup" in o["error"], o
        d.stop()
    # a backup that is not configured any more: abandoned, nothing done
    hostile_op(d, "20261201T123456Z-0000000f", "gone-20261201T123456Z",
               obj="gone")
    d.start()
    o = wait_op_done(d, "20261201T123456Z-0000000f")
    assert o["state"] == "abandoned" and "no longer" in o["error"], o
    assert victim.read_text() == "not yours\n"
    assert (outside / "passwd.dump").exists()
    # the other backup's dump stays (its partial is its own sweep's to
    # remove); in NAME's dir they are not NAME's names: left alone too
    assert files_in(odir) == [f"{other_run}.dump"]
    assert sorted(files_in(bdir)) == sorted(
        [f"{other_run}.dump", f"{other_run}.dump.partial"])
    assert d.events("backup.interrupted") == []
    assert op_files(d) == []


# --- restores whose backup goes away -----------------------------------------


def slow_pg_bin(tmp_path, seconds=4):
    """A pg_bin_dir whose pg_restore waits first (and says so), the real
    tools otherwise."""
    b = tmp_path / "pgbin"
    b.mkdir()
    for tool in ("pg_dump",):
        os.symlink(PGBIN / tool, b / tool)
    marker = tmp_path / "pg_restore.started"
    (b / "pg_restore").write_text(
        f"#!/bin/sh\ntouch {marker}\nsleep {seconds}\n"
        f"exec {PGBIN}/pg_restore \"$@\"\n")
    os.chmod(b / "pg_restore", 0o755)
    return b, marker


def restore_setup(bk_pg, bk_daemons, tmp_path, name):
    db = bk_pg.new_db(rows=300)
    pgbin, marker = slow_pg_bin(tmp_path)
    bdir = tmp_path / f"{name}.backups"
    base = bk_pg.conf_sections(db)
    sec = backup_section(name, bdir, verify="never", pg_bin_dir=pgbin)
    d = bk_daemons(base + sec)
    rc, out, err = d.run_backup(name)
    assert rc == 0, out + err
    bid = d.items(name)[0]["id"]
    return d, base, bid, marker


def test_reload_removes_the_backup_under_a_restore(bk_pg, bk_daemons,
                                                   tmp_path):
    d, base, bid, marker = restore_setup(bk_pg, bk_daemons, tmp_path, "rsr")
    target = f"rsr_into_{secrets.token_hex(3)}"
    cli = d.cli_popen("backup", "restore", bid, "--into", target,
                      "--create")
    wait_for(marker.exists, 20, "pg_restore to start",
             detail=lambda: d.log()[-3000:])
    d.write(base)
    rc, out, err = d.cli("reload")
    assert rc == 0, out + err
    out, err = cli.communicate(timeout=20 * SCALE)
    assert cli.returncode != 0, out + err
    assert "stopped" in err and "removed from the configuration" in err, err
    # after the sleep pg_restore would have run: it was stopped instead
    time.sleep(5)
    assert d.sanitizer_report() is None, d.sanitizer_report()
    assert "result" in d.rpc_raw("opsd.status")
    assert d.rpc("backup.list")["backups"] == []
    assert not d.events("backup.restored")
    bk_pg.drop_db(target)


def test_sigterm_during_a_restore(bk_pg, bk_daemons, tmp_path):
    """SIGTERM while pg_restore runs and another client still waits (a
    second restore keeps the loop alive): both waiters hear why, opsd
    exits cleanly and nothing touches the freed backup."""
    d, base, bid, marker = restore_setup(bk_pg, bk_daemons, tmp_path, "rst")
    t1 = f"rst_a_{secrets.token_hex(3)}"
    t2 = f"rst_b_{secrets.token_hex(3)}"
    c1 = d.cli_popen("backup", "restore", bid, "--into", t1, "--create")
    wait_for(marker.exists, 20, "pg_restore to start",
             detail=lambda: d.log()[-3000:])
    marker.unlink()
    c2 = d.cli_popen("backup", "restore", bid, "--into", t2, "--create")
    wait_for(marker.exists, 20, "the second pg_restore to start",
             detail=lambda: d.log()[-3000:])
    d.proc.send_signal(signal.SIGTERM)
    for c in (c1, c2):
        out, err = c.communicate(timeout=20 * SCALE)
        assert c.returncode != 0, out + err
        assert "stopped" in err and "opsd is stopping" in err, err
    assert d.proc.wait(timeout=20 * SCALE) == 0, d.log()[-3000:]
    d._close()
    time.sleep(5)
    assert d.sanitizer_report() is None, d.sanitizer_report()
    assert not d.events("backup.restored")
    for t in (t1, t2):
        bk_pg.drop_db(t)
