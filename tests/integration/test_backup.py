"""
Backups against a real PostgreSQL 15: runs, verification, restore,
failures (authentication, server down, pg_dump killed, opsd killed, disk
full, corruption), off-site copies to an S3 server that checks SigV4,
retention, the fleet lock, the scheduler, configuration errors and where
the database password must never show.

Slow steps are held open with a table lock instead of big data: pg_dump
takes ACCESS SHARE on every table it dumps, so while a test holds ACCESS
EXCLUSIVE on one, pg_dump waits in the middle of its run (seen in
pg_stat_activity) for as long as the test needs.
"""
import datetime
import hashlib
import http.client
import json
import os
import re
import secrets
import signal
import threading
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc", "s3server")

from backup_svc import (OPSD, TableLock, backup_section,  # noqa: E402
                        find_pg_dump, must, pg_dump_waiting, pid_alive,
                        proc_ppid, run, sha256_file, wait_for)
from s3server import (EMPTY_SHA256, S3Server,  # noqa: E402
                      sign_headers, verify_request)

# the fixtures bk_pg (a private PostgreSQL 15) and bk_daemons (opsd)
pytest_plugins = ["backup_svc"]


# --- helpers -----------------------------------------------------------------


def files_in(d):
    d = Path(d)
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def leftovers(d):
    """Files a failed run must not leave: partial, dump or manifest."""
    return [f for f in files_in(d) if f.endswith((".partial", ".dump",
                                                  ".json"))]


def start(bk_pg, bk_daemons, tmp_path, name, db=None, rows=1500,
          dbkw=None, dname=None, **keys):
    """A database (unless given), a backup dir and a running opsd with
    [database main] and [backup name]."""
    db = db or bk_pg.new_db(rows=rows)
    bdir = tmp_path / f"{name}.backups"
    body = bk_pg.conf_sections(db, **(dbkw or {})) + \
        backup_section(name, bdir, **keys)
    d = bk_daemons(body, name=dname)
    return d, db, bdir


def follow_result(out):
    """What backup run --follow ends with: 'ID: result[: error]' (the
    error may go on over several lines: pg_dump's own last lines)."""
    m = list(re.finditer(r"^\S+: (ok|failed|skipped|interrupted)\b", out,
                         re.M))
    assert m, f"backup run --follow printed no result:\n{out}"
    return out[m[-1].start():].strip()


def wait_pg_dump(bk_pg, d, db, timeout=15):
    """Waits until opsd's pg_dump is blocked mid-dump; returns its pid."""
    wait_for(lambda: pg_dump_waiting(bk_pg, db), timeout,
             f"pg_dump on {db} to wait for the table lock",
             interval=0.05, detail=lambda: d.log()[-3000:])
    pids = [p for p in find_pg_dump(db) if proc_ppid(p) == d.pid]
    assert len(pids) == 1, f"opsd's pg_dump children for {db}: {pids}"
    return pids[0]


def next_second():
    """Sleeps to just after the next wall-clock second (run ids have
    one-second resolution; see test_runs_in_the_same_second_never...)."""
    t = time.time()
    time.sleep(1.02 - (t % 1))


# --- the S3 test server checks signatures ------------------------------------


def test_s3_server_checks_sigv4(tmp_path):
    """The S3 server the upload tests rely on rejects what S3 rejects."""
    # AWS's documented example (GET Object, "Signature Calculations for the
    # Authorization Header"): the server's canonicalisation matches AWS's
    h = {"host": ["examplebucket.s3.amazonaws.com"],
         "range": ["bytes=0-9"], "x-amz-content-sha256": [EMPTY_SHA256],
         "x-amz-date": ["20130524T000000Z"],
         "authorization": [
             "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
             "us-east-1/s3/aws4_request,SignedHeaders=host;range;"
             "x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857"
             "bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"]}
    keys = {"AKIAIOSFODNN7EXAMPLE":
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
    assert verify_request("GET", "/test.txt", "", h, keys, "us-east-1",
                          check_time=False) == EMPTY_SHA256
    with pytest.raises(Exception, match="does not match"):
        verify_request("GET", "/test.txt", "", h,
                       {"AKIAIOSFODNN7EXAMPLE": "not-the-secret"},
                       "us-east-1", check_time=False)

    srv = S3Server(tmp_path / "s3", "AKTEST", "right-secret").start()
    try:
        def put(secret, body=b"hello backup\n", key="b/k/obj", **kw):
            url = f"{srv.url}/{key}"
            hdrs = sign_headers("PUT", url, "AKTEST", secret, body=body,
                                **kw)
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
            c.request("PUT", "/" + key, body=body, headers=hdrs)
            r = c.getresponse()
            data = r.read()
            c.close()
            return r.status, data

        status, data = put("wrong-secret")
        assert status == 403 and b"SignatureDoesNotMatch" in data, data
        assert srv.object_bytes("b", "k/obj") is None
        status, data = put("right-secret")
        assert status == 200, data
        assert srv.object_bytes("b", "k/obj") == b"hello backup\n"
        # signed for other bytes than those sent
        status, data = put("right-secret", body=b"tampered",
                           payload_hash=hashlib.sha256(b"other").hexdigest())
        assert status == 400 and b"XAmzContentSHA256Mismatch" in data
        # no x-amz-content-sha256 at all: 400, as S3
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        hdrs = sign_headers("PUT", f"{srv.url}/b/k/x", "AKTEST",
                            "right-secret", body=b"x")
        del hdrs["x-amz-content-sha256"]
        c.request("PUT", "/b/k/x", body=b"x", headers=hdrs)
        r = c.getresponse()
        assert r.status == 400, r.read()
        c.close()
        # an independent signer: curl's own --aws-sigv4
        f = tmp_path / "blob"
        f.write_bytes(secrets.token_bytes(5000))
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        for secret, want in (("wrong-secret", "403"),
                             ("right-secret", "200")):
            rc, out, err = run(["curl", "-sS", "-o", "/dev/null", "-w",
                                "%{http_code}", "--aws-sigv4",
                                "aws:amz:us-east-1:s3", "--user",
                                f"AKTEST:{secret}", "-T", f, "-H",
                                f"x-amz-content-sha256: {sha}",
                                f"{srv.url}/b/curl/blob"])
            assert out == want, f"curl with {secret}: {out} {err}"
        assert srv.object_bytes("b", "curl/blob") == f.read_bytes()
    finally:
        srv.stop()


# --- the happy path ----------------------------------------------------------


def test_run_verify_and_restore_end_to_end(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "e2e", rows=3000,
                        check=["SELECT count(*) FROM users",
                               "SELECT count(*) FROM orders"],
                        expect=["= 3000", "> 5000"])
    src = bk_pg.fingerprint(db)
    assert src["users"][0] == 3000 and src["orders"][0] == 6000

    rc, out, err = d.run_backup("e2e")
    assert rc == 0, out + err
    m = re.search(r"backup started: run (e2e-\S+)", out)
    assert m, out
    bid = m.group(1)
    # progress lines (non-tty: one per tick) and the final line
    assert re.search(rf"^{bid}\s+\w+\s+", out, re.M), out
    assert follow_result(out) == f"{bid}: ok", out

    rc, out, err = d.cli("--json", "backup", "list")
    assert rc == 0, err
    lst = json.loads(out)["backups"]
    b = [x for x in lst if x["name"] == "e2e"][0]
    assert b["running"] is None and b["stale"] is False
    assert [i["id"] for i in b["backups"]] == [bid]
    item = b["backups"][0]
    assert item["verified"] == "ok", item

    rc, out, err = d.cli("backup", "show", bid)
    assert rc == 0, err
    man = json.loads(out)
    dump = bdir / man["file"]
    assert man["id"] == bid and man["backup"] == "e2e"
    assert man["sha256"] == sha256_file(dump) == item["sha256"]
    assert man["bytes"] == dump.stat().st_size > 0
    assert man["server_version"].startswith("15."), man
    assert re.match(r"^15\.\d+", man["pg_dump_version"]), man
    assert man["verify"]["ok"] is True
    assert [c["got"] for c in man["verify"]["checks"]] == ["3000", "6000"]
    # complete files only, private ones; no scratch database left over
    assert files_in(bdir) == sorted([f"{bid}.dump", f"{bid}.json"])
    assert dump.stat().st_mode & 0o077 == 0, oct(dump.stat().st_mode)
    assert bk_pg.scratch_dbs("e2e") == []
    assert json.loads((bdir / f"{bid}.json").read_text())["sha256"] == \
        man["sha256"]

    target = f"restored_{secrets.token_hex(3)}"
    rc, out, err = d.cli("backup", "restore", bid, "--into", target,
                         "--create")
    assert rc == 0, out + err
    assert "(created)" in out, out
    assert bk_pg.tables(target) == bk_pg.tables(db)
    assert bk_pg.fingerprint(target) == src
    assert d.events("backup.restored")
    bk_pg.drop_db(target)


def test_restore_refuses_non_empty_and_missing_databases(bk_pg, bk_daemons,
                                                         tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "rst", verify="never")
    src = bk_pg.fingerprint(db)
    rc, out, err = d.run_backup("rst")
    assert rc == 0, out + err
    bid = d.items("rst")[0]["id"]

    # a database that exists and holds tables: refused without --force
    target = f"busy_{secrets.token_hex(3)}"
    bk_pg.sql(f'CREATE DATABASE "{target}"')
    bk_pg.sql("CREATE TABLE users (id int PRIMARY KEY, name text, "
              "email text, created timestamptz); "
              "INSERT INTO users VALUES (1, 'keep me?', NULL, now())",
              db=target)
    rc, out, err = d.cli("backup", "restore", bid, "--into", target)
    assert rc == 1, out + err
    assert "not empty" in err, err
    assert bk_pg.tables(target) == ["users"]
    assert bk_pg.sql("SELECT name FROM users", db=target) == "keep me?"

    # --force replaces its objects
    rc, out, err = d.cli("backup", "restore", bid, "--into", target,
                         "--force")
    assert rc == 0, out + err
    assert bk_pg.fingerprint(target) == src

    # a database that does not exist: refused without --create
    missing = f"missing_{secrets.token_hex(3)}"
    rc, out, err = d.cli("backup", "restore", bid, "--into", missing)
    assert rc == 1, out + err
    assert "does not exist" in err and "--create" in err, err
    assert bk_pg.databases(missing) == []

    # an empty existing database is fine without --force
    empty = f"empty_{secrets.token_hex(3)}"
    bk_pg.sql(f'CREATE DATABASE "{empty}"')
    rc, out, err = d.cli("backup", "restore", bid, "--into", empty)
    assert rc == 0, out + err
    assert bk_pg.fingerprint(empty) == src
    for x in (target, empty):
        bk_pg.drop_db(x)


# --- failures ----------------------------------------------------------------


def test_wrong_password_fails_cleanly(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "badpw",
                        dbkw={"password_file": bk_pg.bad_pw_file})
    rc, out, err = d.run_backup("badpw")
    assert rc == 1, out + err
    last = follow_result(out)
    assert ": failed: " in last, last
    assert "authentication" in last.lower(), last
    ev = d.wait_event("backup.failed")
    assert "authentication" in ev[0]["msg"].lower(), ev
    assert leftovers(bdir) == [], files_in(bdir)
    assert d.items("badpw") == []
    assert d.job("backup badpw")["last_result"] == "failed"


def test_postgres_stopped_mid_run(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "pgdown",
                        verify="never")
    lock = TableLock(bk_pg, db)
    try:
        follow = d.cli_popen("backup", "run", "pgdown", "--follow")
        wait_pg_dump(bk_pg, d, db)
        assert [f for f in files_in(bdir) if f.endswith(".partial")], \
            files_in(bdir)
        bk_pg.stop()
        out, err = follow.communicate(timeout=30)
    finally:
        lock.release()
    assert follow.returncode == 1, out + err
    last = follow_result(out)
    assert ": failed: pg_dump " in last, last
    assert leftovers(bdir) == [], files_in(bdir)
    assert d.items("pgdown") == []

    bk_pg.start()
    rc, out, err = d.run_backup("pgdown")
    assert rc == 0, out + err
    assert len(d.items("pgdown")) == 1


def test_pg_dump_killed(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "killed",
                        verify="never")
    with TableLock(bk_pg, db):
        follow = d.cli_popen("backup", "run", "killed", "--follow")
        pid = wait_pg_dump(bk_pg, d, db)
        # one run at a time
        rc, out, err = d.cli("backup", "run", "killed")
        assert rc == 1 and "already running" in err, out + err
        os.kill(pid, 9)
        out, err = follow.communicate(timeout=30)
    assert follow.returncode == 1, out + err
    last = follow_result(out)
    assert "pg_dump killed by signal 9" in last, last
    ev = d.wait_event("backup.failed")
    assert "signal 9" in ev[-1]["msg"], ev
    assert leftovers(bdir) == [], files_in(bdir)
    assert d.items("killed") == []

    rc, out, err = d.run_backup("killed")
    assert rc == 0, out + err
    assert len(d.items("killed")) == 1


def test_timeout_kills_pg_dump(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "slow", timeout="1s",
                        verify="never")
    with TableLock(bk_pg, db):
        t0 = time.monotonic()
        rc, out, err = d.run_backup("slow")
        took = time.monotonic() - t0
    assert rc == 1, out + err
    last = follow_result(out)
    # pg_dump ends on SIGTERM with status 1 ("terminated by user"): the
    # reason must still say that it was opsd's timeout
    assert "pg_dump" in last and "timeout" in last, last
    assert took < 10, f"a 1s timeout took {took:.1f}s"
    assert leftovers(bdir) == [], files_in(bdir)
    assert find_pg_dump(db) == []


def test_opsd_stopped_during_dump(bk_pg, bk_daemons, tmp_path):
    """SIGTERM in the middle of a dump: the follower hears it failed, the
    partial file and the run state go, pg_dump is not left behind, and
    the next start has nothing to call interrupted."""
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "term", verify="never")
    with TableLock(bk_pg, db):
        follow = d.cli_popen("backup", "run", "term", "--follow")
        pid = wait_pg_dump(bk_pg, d, db)
        d.stop()
        out, err = follow.communicate(timeout=15)
        wait_for(lambda: not pid_alive(pid), 10, "pg_dump to be stopped "
                 "with opsd")
    assert follow.returncode != 0, out + err
    assert re.search(r": (failed|interrupted)\b", out), out + err
    assert leftovers(bdir) == [], files_in(bdir)
    assert not (d.state_dir / "backup-term.run.json").exists()
    d.start()
    rc, out, err = d.run_backup("term")
    assert rc == 0, out + err
    assert d.events("backup.interrupted", since_start=True) == []


def test_opsd_killed_during_dump(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "crash", verify="never")
    lock = TableLock(bk_pg, db)
    try:
        d.rpc("backup.run", {"name": "crash"})
        dump_pid = wait_pg_dump(bk_pg, d, db)
        partial = [f for f in files_in(bdir) if f.endswith(".partial")]
        assert len(partial) == 1, files_in(bdir)
        run_id = partial[0][:-len(".dump.partial")]
        # the run is an unfinished op in the journal, at its dumping step
        ops = [json.loads(p.read_text())
               for p in d.state_dir.glob("op-*.json")]
        assert [(o["kind"], o["object"], o["step"], o["data"]["run"])
                for o in ops] == [("backup.run", "crash", "dumping",
                                   run_id)], ops
        d.kill9()
    finally:
        lock.release()
    # the orphaned pg_dump dies on its broken pipe once it can go on
    wait_for(lambda: not pid_alive(dump_pid), 10, "the orphaned pg_dump "
             "to end")

    d.start()
    ev = d.wait_event("backup.interrupted", since_start=True)
    assert ev[0].get("backup_id") == run_id, ev
    assert "dumping" in ev[0]["msg"], ev
    assert files_in(bdir) == [], files_in(bdir)
    assert not (d.state_dir / "backup-crash.run.json").exists()
    assert d.items("crash") == []
    assert bk_pg.scratch_dbs("crash") == []

    rc, out, err = d.run_backup("crash")
    assert rc == 0, out + err
    items = d.items("crash")
    assert len(items) == 1, items
    assert sha256_file(bdir / f"{items[0]['id']}.dump") == items[0]["sha256"]


def test_opsd_killed_during_verify(bk_pg, bk_daemons, tmp_path):
    """A kill -9 while a scratch database exists: the next start drops it."""
    db = bk_pg.new_db(rows=500)
    bdir = tmp_path / "vcrash.backups"
    slow = backup_section("vcrash", bdir,
                          check="SELECT count(*) FROM pg_sleep(60)",
                          expect="= 1")
    d = bk_daemons(bk_pg.conf_sections(db) + slow)
    d.rpc("backup.run", {"name": "vcrash"})

    def sleeping():
        out = bk_pg.sql("SELECT datname FROM pg_stat_activity WHERE query "
                        "LIKE '%pg_sleep(60)%' AND datname LIKE "
                        "'opsd_verify_vcrash_%'")
        return out.strip()
    scratch = wait_for(sleeping, 20, "the verify check to run in the "
                       "scratch database", interval=0.05,
                       detail=lambda: d.log()[-3000:])
    assert bk_pg.scratch_dbs("vcrash") == [scratch]
    bid = d.items("vcrash")[0]["id"]
    d.kill9()

    d.write(bk_pg.conf_sections(db) + backup_section(
        "vcrash", bdir, check="SELECT count(*) FROM users", expect="> 0"))
    d.start()
    wait_for(lambda: bk_pg.scratch_dbs("vcrash") == [], 10,
             "the stale scratch database to be dropped",
             detail=lambda: d.log()[-3000:])
    # the complete backup stays (unverified); nothing partial
    assert [i["id"] for i in d.items("vcrash")] == [bid]
    assert leftovers(bdir) == sorted([f"{bid}.dump", f"{bid}.json"])
    rc, out, err = d.cli("backup", "verify", bid)
    assert rc == 0, out + err
    assert d.items("vcrash")[0]["verified"] == "ok"
    ev = d.wait_event("backup.interrupted", since_start=True)
    assert ev[0].get("backup_id") == bid, ev
    # the state file names the step it was in when it died
    assert "verifying" in ev[0]["msg"], ev[0]["msg"]


def test_verify_check_failure(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "vfail",
                        check="SELECT count(*) FROM users",
                        expect="> 100000000")
    rc, out, err = d.run_backup("vfail")
    ev = d.wait_event("backup.verify_failed")
    assert "returned 1500, expected > 100000000" in ev[0]["msg"], ev
    item = d.items("vfail")[0]
    assert item["verified"] == "FAILED", item
    man = d.rpc("backup.show", {"id": item["id"]})
    assert man["verify"]["ok"] is False
    assert man["verify"]["checks"][0]["got"] == "1500"
    assert bk_pg.scratch_dbs("vfail") == []
    # asked again: exit 1, the scratch database is dropped again
    rc, out, err = d.cli("backup", "verify", item["id"])
    assert rc == 1, out + err
    assert "expected > 100000000" in err, err
    assert bk_pg.scratch_dbs("vfail") == []
    lst = d.backups("vfail")
    assert lst["newest_good"] == "-", lst


def sleeping_check(bk_pg, name):
    """The scratch database where a pg_sleep check of backup name runs."""
    def find():
        return bk_pg.sql("SELECT datname FROM pg_stat_activity WHERE query "
                         "LIKE '%pg_sleep(%' AND query NOT LIKE "
                         "'%pg_stat_activity%' AND datname LIKE "
                         f"'opsd_verify_{name}_%'").strip()
    return find


def test_one_verification_at_a_time(bk_pg, bk_daemons, tmp_path):
    """A second backup verify of the same backup while one runs is
    refused; it must not collide with the first one's scratch database
    and call a good backup FAILED. opsd stopping in the middle tells the
    waiting client, and the next start drops the scratch database."""
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "vtwice", rows=300,
                        verify="never",
                        check="SELECT count(*) FROM pg_sleep(30)",
                        expect="= 1")
    rc, out, err = d.run_backup("vtwice")
    assert rc == 0, out + err
    bid = d.items("vtwice")[0]["id"]
    first = d.cli_popen("backup", "verify", bid)
    try:
        scratch = wait_for(sleeping_check(bk_pg, "vtwice"), 20,
                           "the first verification's check to run",
                           interval=0.05, detail=lambda: d.log()[-3000:])
        rc, out, err = d.cli("backup", "verify", bid)
        assert rc == 1 and "already running" in err, out + err
        assert d.items("vtwice")[0]["verified"] == "-"
        assert d.events("backup.verify_failed") == []
        assert bk_pg.scratch_dbs("vtwice") == [scratch]
        d.stop()
        out, err = first.communicate(timeout=10)
        assert first.returncode != 0, out + err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    d.start()
    wait_for(lambda: bk_pg.scratch_dbs("vtwice") == [], 10,
             "the scratch database to be dropped at the next start",
             detail=lambda: d.log()[-3000:])


def test_fleet_restart_leaves_another_hosts_verification_alone(
        bk_pg, bk_daemons, tmp_path):
    """Host 2 starting (after a crash or a deploy) cleans up its own
    leftovers, not the scratch database host 1 is verifying in."""
    db = bk_pg.new_db(rows=300)

    def body(i):
        return bk_pg.conf_sections(db) + backup_section(
            "fleetv", tmp_path / f"host{i}", lock="advisory",
            check="SELECT count(*) FROM pg_sleep(3)", expect="= 1")
    h1 = bk_daemons(body(1), name="host1")
    h1.rpc("backup.run", {"name": "fleetv"})
    wait_for(sleeping_check(bk_pg, "fleetv"), 20, "host1's verify check",
             interval=0.05, detail=lambda: h1.log()[-3000:])
    h2 = bk_daemons(body(2), name="host2")
    wait_for(lambda: h1.events("backup.verified") +
             h1.events("backup.verify_failed"), 20,
             "host1's verification to end", interval=0.05,
             detail=lambda: h1.log()[-3000:])
    h1.wait_idle("fleetv")
    failed = h1.events("backup.verify_failed")
    dropped = [e["msg"] for e in h2.events("backup.recover")]
    assert failed == [], f"{failed[0]['msg']}\nhost2: {dropped}"
    assert h1.items("fleetv")[0]["verified"] == "ok"


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    rc, out, err = run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0750",
                        "tmpfs", mnt])
    if rc != 0:
        pytest.skip(f"cannot mount a tmpfs here: {err.strip()}")
    try:
        yield mnt
    finally:
        if run(["umount", mnt])[0] != 0:
            run(["umount", "-l", mnt])


def test_disk_full(bk_pg, bk_daemons, tmp_path, small_tmpfs):
    # ~1.3 MB of hex text: well over 256 KiB even compressed
    db = bk_pg.new_db(rows=300, extra_sql="CREATE TABLE blobs (id int "
                      "PRIMARY KEY, v text); INSERT INTO blobs SELECT g, "
                      "md5(g::text || 'a') || md5(g::text || 'b') FROM "
                      "generate_series(1, 20000) g;")
    d = bk_daemons(bk_pg.conf_sections(db) + backup_section(
        "full", small_tmpfs, verify="never"))
    rc, out, err = d.run_backup("full")
    assert rc == 1, out + err
    last = follow_result(out)
    assert "No space left on device" in last and "disk full" in last, last
    assert files_in(small_tmpfs) == [], files_in(small_tmpfs)
    assert d.items("full") == []
    st = os.statvfs(small_tmpfs)
    assert st.f_bfree == st.f_blocks, "the tmpfs is not empty again"


def test_corrupted_backup_is_refused(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "corrupt",
                        verify="never")
    rc, out, err = d.run_backup("corrupt")
    assert rc == 0, out + err
    item = d.items("corrupt")[0]
    dump = bdir / f"{item['id']}.dump"
    with open(dump, "ab") as f:
        f.write(b"\0garbage")
    rc, out, err = d.cli("backup", "verify", item["id"])
    assert rc == 1, out + err
    assert "checksum mismatch" in err, err
    assert d.items("corrupt")[0]["verified"] == "FAILED"
    assert bk_pg.scratch_dbs("corrupt") == []
    target = f"never_{secrets.token_hex(3)}"
    rc, out, err = d.cli("backup", "restore", item["id"], "--into", target,
                         "--create")
    assert rc == 1, out + err
    assert "checksum mismatch" in err and "refusing" in err, err
    assert bk_pg.databases(target) == []


# --- off-site copies ---------------------------------------------------------


@pytest.fixture
def s3(tmp_path):
    keys = tmp_path / "s3keys"
    keys.mkdir()
    ak, sk = "AKOPSD" + secrets.token_hex(4).upper(), secrets.token_hex(20)
    (keys / "access").write_text(ak + "\n")
    (keys / "secret").write_text(sk + "\n")
    (keys / "wrong").write_text("x" + sk[1:] + "\n")
    for f in keys.iterdir():
        os.chmod(f, 0o600)
    srv = S3Server(tmp_path / "s3data", ak, sk).start()
    srv.keyfiles = keys
    yield srv
    srv.stop()


def s3_keys(srv, bucket_prefix, secret="secret"):
    return {"upload": f"s3://{bucket_prefix}",
            "s3_endpoint": srv.url, "s3_region": "us-east-1",
            "s3_access_key_file": srv.keyfiles / "access",
            "s3_secret_key_file": srv.keyfiles / secret}


def test_s3_upload(bk_pg, bk_daemons, tmp_path, s3):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "offsite",
                        check="SELECT count(*) FROM users", expect="> 0",
                        **s3_keys(s3, "backups/opsd/host1"))
    rc, out, err = d.run_backup("offsite")
    assert rc == 0, out + err
    item = d.items("offsite")[0]
    assert item["verified"] == "ok" and item["uploaded"] == "ok", item
    man = d.rpc("backup.show", {"id": item["id"]})
    assert man["upload"]["ok"] is True, man
    key = f"opsd/host1/{man['file']}"
    assert sorted(s3.objects("backups")) == sorted(
        [key, f"opsd/host1/{item['id']}.json"])
    body = s3.object_bytes("backups", key)
    assert hashlib.sha256(body).hexdigest() == man["sha256"] == \
        sha256_file(bdir / man["file"])
    remote_man = json.loads(s3.object_bytes(
        "backups", f"opsd/host1/{item['id']}.json"))
    assert remote_man["sha256"] == man["sha256"]
    # every request was signed and accepted; the PUT carried the dump's
    # SHA-256 (checked against the body by the server)
    reqs = s3.log()
    assert reqs and all(r["status"] in (200, 204) for r in reqs), reqs
    assert [r["method"] for r in reqs] == ["PUT", "HEAD", "PUT", "HEAD"]
    # one try was enough (the manifest's own PUT is not a second try of
    # the backup's upload)
    assert man["upload"]["tries"] == 1, man["upload"]


def test_s3_upload_failures_keep_the_local_backup(bk_pg, bk_daemons,
                                                  tmp_path, s3):
    """A wrong secret and a server that is down: the upload fails after
    its retries, the local backup stays listed and verified. Both run at
    once in one daemon, so the retry delays are waited for only once
    (2 + 4 + 8 s; a configurable delay would make this test fast)."""
    db = bk_pg.new_db(rows=300)
    down = S3Server(tmp_path / "down", "AKDOWN", "x")   # never started
    body = bk_pg.conf_sections(db)
    body += backup_section("badkey", tmp_path / "badkey",
                           **s3_keys(s3, "bk/p", secret="wrong"))
    keys = s3_keys(s3, "bk/p")
    keys["s3_endpoint"] = down.url
    body += backup_section("s3down", tmp_path / "s3down", **keys)
    d = bk_daemons(body)
    t0 = time.monotonic()
    d.rpc("backup.run", {"name": "badkey"})
    d.rpc("backup.run", {"name": "s3down"})
    for name in ("badkey", "s3down"):
        d.wait_event("backup.upload_failed",
                     pred=lambda e, n=name: e.get("backup") == n,
                     timeout=60)
    took = time.monotonic() - t0
    for name in ("badkey", "s3down"):
        d.wait_idle(name)
        items = d.items(name)
        assert len(items) == 1, items
        assert items[0]["verified"] == "ok" and \
            items[0]["uploaded"] == "FAILED", items
        man = d.rpc("backup.show", {"id": items[0]["id"]})
        assert man["upload"]["ok"] is False, man
        assert man["upload"]["tries"] == 4, man
        assert (tmp_path / name / man["file"]).is_file()
        assert d.job(f"backup {name}")["last_result"] == "ok"
    badkey = d.rpc("backup.show", {"id": d.items("badkey")[0]["id"]})
    assert "403" in badkey["upload"]["error"], badkey["upload"]
    assert s3.objects("bk") == []
    puts = s3.log(lambda r: r["method"] == "PUT")
    assert len(puts) == 4 and all(
        r["code"] == "SignatureDoesNotMatch" for r in puts), puts
    # four tries, waiting 2, 4 and 8 seconds between them
    times = [r["t"] for r in puts]
    gaps = [round(b - a, 1) for a, b in zip(times, times[1:])]
    assert all(abs(g - w) < 1.0 for g, w in zip(gaps, (2, 4, 8))), \
        f"delays between upload tries: {gaps}s (took {took:.1f}s)"


# --- retention ---------------------------------------------------------------


def test_retention_keep_last(bk_pg, bk_daemons, tmp_path):
    keep = dict(verify="never", keep_last=2, keep_daily=0, keep_weekly=0,
                keep_monthly=0)
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "ret", rows=200,
                        **keep)
    ids = []
    for _ in range(3):
        next_second()
        rc, out, err = d.run_backup("ret")
        assert rc == 0, out + err
        ids.append(re.search(r"run (ret-\S+)", out).group(1))
    assert len(set(ids)) == 3, ids
    kept = [i["id"] for i in d.items("ret")]
    assert kept == ids[1:], kept
    assert files_in(bdir) == sorted([f"{i}.{x}" for i in ids[1:]
                                     for x in ("dump", "json")])

    # keep_last = 1: the dry run lists, removes nothing
    keep["keep_last"] = 1
    d.write(bk_pg.conf_sections(db) + backup_section("ret", bdir, **keep))
    rc, out, err = d.cli("reload")
    assert rc == 0, out + err
    rc, out, err = d.cli("backup", "prune", "ret", "--dry-run")
    assert rc == 0, out + err
    assert f"would remove {ids[1]}" in out, out
    assert (bdir / f"{ids[1]}.dump").exists()
    assert [i["id"] for i in d.items("ret")] == ids[1:]
    rc, out, err = d.cli("--json", "backup", "prune", "ret")
    assert rc == 0, out + err
    res = json.loads(out)
    assert res["removed"] == [ids[1]] and res["kept"] == [ids[2]], res
    assert files_in(bdir) == [f"{ids[2]}.dump", f"{ids[2]}.json"]


def test_retention_keeps_the_newest_verified(bk_pg, bk_daemons, tmp_path):
    """keep_last = 1, but the newest backup that verified stays too."""
    db = bk_pg.new_db(rows=200)
    bdir = tmp_path / "rv.backups"
    base = dict(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
    good = backup_section("rv", bdir, check="SELECT count(*) FROM users",
                          expect="> 0", **base)
    bad = backup_section("rv", bdir, check="SELECT count(*) FROM users",
                         expect="< 0", **base)
    d = bk_daemons(bk_pg.conf_sections(db) + good)
    rc, out, err = d.run_backup("rv")
    assert rc == 0, out + err
    first = d.items("rv")[0]
    assert first["verified"] == "ok"
    d.write(bk_pg.conf_sections(db) + bad)
    assert d.cli("reload")[0] == 0
    next_second()
    # written, not verified: --follow exits 1 (a deploy gate)
    rc, out, err = d.run_backup("rv")
    assert rc == 1 and "verification FAILED" in out, out + err
    items = d.items("rv")
    assert [i["verified"] for i in items] == ["ok", "FAILED"], items
    assert items[0]["id"] == first["id"]


def test_runs_in_the_same_second_never_share_an_id(bk_pg, bk_daemons,
                                                  tmp_path):
    """Run ids have one-second resolution. A second run within the same
    second is refused (try again) or gets an id of its own; it must never
    reuse the first one's id and so overwrite its file and manifest."""
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "fast", rows=100,
                        verify="never")
    for _ in range(5):
        next_second()
        t = int(time.time())
        rc1, out1, err1 = d.run_backup("fast")
        rc2, out2, err2 = d.run_backup("fast")
        assert rc1 == 0, out1 + err1
        if int(time.time()) == t:
            break
    else:
        pytest.skip("could not fit two runs into one second here")
    items = [i["id"] for i in d.items("fast")]
    dumps = [f for f in files_in(bdir) if f.endswith(".dump")]
    assert len(set(items)) == len(items), f"duplicate ids: {items}"
    assert len(dumps) == len(items), (dumps, items)
    if rc2 == 0:
        assert len(items) == 2, items
    else:
        assert "second" in err2 and len(items) == 1, out2 + err2
    for i in items:
        man = d.rpc("backup.show", {"id": i})
        assert sha256_file(bdir / man["file"]) == man["sha256"]


# --- several hosts -----------------------------------------------------------


def test_fleet_advisory_lock(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=500)
    dirs = [tmp_path / "host1", tmp_path / "host2"]
    hosts = [bk_daemons(bk_pg.conf_sections(db) + backup_section(
        "shared", dirs[i], lock="advisory", verify="never"),
        name=f"host{i + 1}") for i in range(2)]
    with TableLock(bk_pg, db):
        barrier = threading.Barrier(2)
        procs = [None, None]

        def go(i):
            barrier.wait()
            procs[i] = hosts[i].cli_popen("backup", "run", "shared",
                                          "--follow")
        ts = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        # one stands aside at once; the other is held in its dump
        skipped = wait_for(lambda: [i for i in range(2)
                                    if hosts[i].events("backup.skipped")],
                           15, "one host to stand aside")
        assert len(skipped) == 1, skipped
        loser, winner = skipped[0], 1 - skipped[0]
        out, err = procs[loser].communicate(timeout=15)
        assert "skipped" in follow_result(out), out + err
        wait_pg_dump(bk_pg, hosts[winner], db)
    out, err = procs[winner].communicate(timeout=30)
    assert procs[winner].returncode == 0, out + err
    assert follow_result(out).endswith(": ok"), out
    assert len(hosts[winner].items("shared")) == 1
    assert hosts[loser].items("shared") == []
    assert [f for f in files_in(dirs[winner]) if f.endswith(".dump")]
    assert leftovers(dirs[loser]) == []
    ev = hosts[loser].events("backup.skipped")[0]
    assert "another host" in ev["msg"], ev
    job = hosts[loser].job("backup shared")
    assert job["last_result"] == "skipped", job
    assert hosts[winner].job("backup shared")["last_result"] == "ok"
    # the lock went with the winner's session: the other host runs now
    rc, out, err = hosts[loser].run_backup("shared")
    assert rc == 0, out + err


# --- the scheduler -----------------------------------------------------------


def test_jobs_and_an_interval_schedule(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=100)
    body = bk_pg.conf_sections(db)
    body += backup_section("nightly", tmp_path / "n", verify="never")
    body += backup_section("often", tmp_path / "o", verify="never",
                           schedule="every 2s")
    d = bk_daemons(body)
    rc, out, err = d.cli("--json", "jobs")
    assert rc == 0, err
    jobs = {j["name"]: j for j in json.loads(out)["jobs"]}
    assert "backup nightly" in jobs and "backup often" in jobs, jobs
    nr = jobs["backup nightly"]["next_run"]
    assert re.match(r"^\d{4}-\d\d-\d\dT03:00:00Z$", nr), nr
    assert jobs["backup nightly"]["last_run"] is None
    rc, out, err = d.cli("jobs")
    assert rc == 0 and "backup nightly" in out, out + err

    ev = d.wait_event("backup.succeeded",
                      pred=lambda e: e.get("backup") == "often", timeout=10)
    assert ev
    assert not [e for e in d.events("rpc.audit")
                if e.get("method") == "backup.run"]
    wait_for(lambda: (d.job("backup often") or {}).get("last_result") ==
             "ok", 10, "the job to record its result")
    assert d.items("often")
    assert d.items("nightly") == []


def test_verify_schedule_restores_the_newest_again(bk_pg, bk_daemons,
                                                   tmp_path):
    """verify = never, but verify_schedule: the newest backup is restored
    and checked on its own schedule, and the job records it."""
    db = bk_pg.new_db(rows=100)
    d = bk_daemons(bk_pg.conf_sections(db) + backup_section(
        "vs", tmp_path / "vs", verify="never", verify_schedule="every 1s",
        check="SELECT count(*) FROM users", expect="> 0"))
    job = d.job("verify vs")
    assert job is not None, "no 'verify vs' job listed"
    rc, out, err = d.run_backup("vs")
    assert rc == 0, out + err
    assert d.items("vs")[0]["verified"] == "-", d.items("vs")
    wait_for(lambda: d.items("vs")[0]["verified"] == "ok", 15,
             "the scheduled verification", detail=lambda: d.log()[-2000:])
    wait_for(lambda: (d.job("verify vs") or {}).get("last_result") == "ok",
             10, "the verify job to record its result")
    assert d.events("backup.verified")


def test_persistent_job_catches_up(bk_pg, bk_daemons, tmp_path):
    db = bk_pg.new_db(rows=100)
    long_ago = int(time.time()) - 3 * 86400
    body = bk_pg.conf_sections(db)
    body += backup_section("missed", tmp_path / "m", verify="never",
                           persistent="yes")
    body += backup_section("notpersistent", tmp_path / "np",
                           verify="never", persistent="no")
    d = bk_daemons(body, start=False)
    d.state_dir.mkdir(mode=0o700)
    old = {"last_run": long_ago, "last_slot": long_ago, "last_ok": 1,
           "last_result": "from three days ago"}
    (d.state_dir / "jobs.json").write_text(json.dumps(
        {"backup missed": old, "backup notpersistent": old}))
    t0 = int(time.time())
    d.start()
    d.wait_event("backup.succeeded",
                 pred=lambda e: e.get("backup") == "missed", timeout=15)
    wait_for(lambda: d.job("backup missed")["running"] is False, 10,
             "the catch-up run to end")
    job = d.job("backup missed")
    last = datetime.datetime.strptime(job["last_run"], "%Y-%m-%dT%H:%M:%SZ")
    assert last.replace(tzinfo=datetime.timezone.utc).timestamp() >= t0 - 1
    assert job["last_result"] == "ok", job
    assert re.match(r"^\d{4}-\d\d-\d\dT03:00:00Z$", job["next_run"]), job
    assert len(d.items("missed")) == 1
    # persistent = no: the missed run is not made up for
    assert d.items("notpersistent") == []
    assert d.job("backup notpersistent")["last_message"] == \
        "from three days ago"


# --- configuration errors ----------------------------------------------------

GOOD_DB = """[database main]
conninfo = host=127.0.0.1 port=5432 user=backup dbname=app
password_file = {pw}
"""


def _conf(tmp_path, db_section=GOOD_DB, schedule="0 3 * * *", extra=""):
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    os.chmod(pw, 0o600)
    text = ("[opsd]\n"
            f"socket = {tmp_path}/s.sock\n"
            f"state_dir = {tmp_path}/state\n"
            "metrics_listen = off\n\n" +
            db_section.format(pw=pw) + "\n"
            "[backup b]\n"
            "database = main\n"
            f"dir = {tmp_path}/bk\n"
            f"schedule = {schedule}\n" + extra)
    path = tmp_path / "opsd.conf"
    path.write_text(text)
    return path, text


def _line_of(text, needle):
    for n, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(f"{needle!r} is not in the config")


CONFIG_ERRORS = {
    # case: (_conf keywords, the line to blame, what the message says)
    "missing database": (dict(db_section=""), "database = main",
                         "no [database main] section"),
    "bad schedule": (dict(schedule="61 * * * *"), "schedule = 61",
                     "minute"),
    "unknown time zone": (dict(extra="timezone = Mars/Olympus_Mons\n"),
                          "timezone =", "unknown time zone"),
    "check without expect": (dict(extra="check = SELECT 1\n"), "check =",
                             "needs an 'expect'"),
    "password in conninfo": (dict(db_section="[database main]\nconninfo = "
                                  "host=h user=u password=hunter2 "
                                  "dbname=app\n"), "password=hunter2",
                             "must not hold the password"),
    "pg_dump_args with -f": (dict(extra="pg_dump_args = -Fc -f /tmp/x\n"),
                             "pg_dump_args", "'-f'"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_ERRORS))
def test_config_errors(tmp_path, case):
    kw, needle, message = CONFIG_ERRORS[case]
    path, text = _conf(tmp_path, **kw)
    rc, out, err = run([OPSD, "--check-config", "-c", path])
    assert rc != 0, f"{case}: accepted\n{text}"
    want = f"{path}:{_line_of(text, needle)}: "
    hits = [x for x in err.splitlines() if x.startswith(want)]
    assert hits and any(message in h for h in hits), \
        f"{case}: wanted '{want}...{message}', got:\n{err}"
    assert "hunter2" not in out + err


def test_config_good_one_passes(tmp_path):
    path, text = _conf(tmp_path, extra="check = SELECT 1\nexpect = = 1\n"
                       "timezone = Europe/Berlin\n")
    rc, out, err = run([OPSD, "--check-config", "-c", path])
    assert rc == 0, err


# --- secrets -----------------------------------------------------------------


def test_password_never_shows(bk_pg, bk_daemons, tmp_path):
    d, db, bdir = start(bk_pg, bk_daemons, tmp_path, "secret",
                        check="SELECT count(*) FROM users", expect="> 0")
    secrets_ = [bk_pg.backup_password, bk_pg.admin_password]
    with TableLock(bk_pg, db):
        follow = d.cli_popen("backup", "run", "secret", "--follow")
        pid = wait_pg_dump(bk_pg, d, db)
        ps = must(["ps", "-eo", "args"])
        assert "pg_dump" in ps
        for s in secrets_:
            assert s not in ps, "a password is in the process list"
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        names = {e.split(b"=", 1)[0].decode() for e in environ if e}
        assert "PGPASSFILE" in names and "PGPASSWORD" not in names, names
        for s in secrets_:
            assert s.encode() not in b"\0".join(environ)
        passfile = [e.split(b"=", 1)[1].decode() for e in environ
                    if e.startswith(b"PGPASSFILE=")][0]
        st = os.stat(passfile)
        assert st.st_mode & 0o077 == 0, oct(st.st_mode)
        assert Path(passfile).is_relative_to(d.state_dir)
        assert bk_pg.backup_password in Path(passfile).read_text()
    out, err = follow.communicate(timeout=30)
    assert follow.returncode == 0, out + err
    assert d.items("secret")[0]["verified"] == "ok"
    # the private password files are gone after the run
    assert not os.path.exists(passfile)
    rundir = d.state_dir / "run"
    assert not [f for f in files_in(rundir) if f.startswith("pgpass")], \
        files_in(rundir)
    shown = json.dumps(d.rpc("backup.show", {"id": d.items("secret")[0]
                                             ["id"]}))
    log = d.log()
    for s in secrets_:
        assert s not in log, "a password is in opsd's log"
        assert s not in out + err and s not in shown
