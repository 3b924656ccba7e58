"""
The event loop stays out of a backup's data path: pg_dump writes into a
FIFO that opsd's dump writer (a child) copies to disk, so a dump goes on
while the loop is stopped, opsd itself write()s no dump bytes, and the
loop's lag stays small during a dump of a few hundred MB.
"""
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc")

from backup_svc import (SANITIZED, TableLock, backup_section,  # noqa: E402
                        find_pg_dump, pg_dump_waiting, pid_alive, proc_ppid,
                        sha256_file, wait_for)

pytest_plugins = ["backup_svc"]

BIG_MB = 250


@pytest.fixture(scope="module")
def big_db(bk_pg_session):
    """A database with a ~250 MB table (hex text: ~250 MB of dump with
    -Z0), made once for the module."""
    pg = bk_pg_session
    if not pg.started:
        pg.start()
    rows = BIG_MB * 1024 * 1024 // 512
    return pg.new_db(tag="big", rows=100, extra_sql=(
        "CREATE TABLE blobs (id int PRIMARY KEY, v text); "
        "INSERT INTO blobs SELECT g, repeat(md5(g::text), 16) FROM "
        f"generate_series(1, {rows}) g;"))


def start(bk_pg, bk_daemons, tmp_path, name, db, **keys):
    keys.setdefault("verify", "never")
    keys.setdefault("pg_dump_args", "-Z0")
    bdir = Path("/var/tmp") / f"opsd-loop-{os.getpid()}-{name}"
    d = bk_daemons(bk_pg.conf_sections(db) + backup_section(name, bdir,
                                                            **keys))
    return d, bdir


@pytest.fixture
def cleanup_dirs():
    dirs = []
    yield dirs
    for d in dirs:
        subprocess.run(["rm", "-rf", str(d)])


def partial_size(bdir):
    for p in Path(bdir).glob("*.dump.partial"):
        try:
            return p.stat().st_size
        except FileNotFoundError:
            pass
    return 0


def test_dump_goes_on_while_the_loop_is_stopped(bk_pg, bk_daemons, tmp_path,
                                                 cleanup_dirs):
    """opsd stopped (SIGSTOP) in the middle of a dump: the dump is written
    to the end all the same (no dump byte waits for the loop), and once opsd
    goes on the run completes with the file's own checksum."""
    db = bk_pg.new_db(rows=3000)
    d, bdir = start(bk_pg, bk_daemons, tmp_path, "stopped", db)
    cleanup_dirs.append(bdir)
    lock = TableLock(bk_pg, db)
    stopped = False
    try:
        d.rpc("backup.run", {"name": "stopped"})
        wait_for(lambda: pg_dump_waiting(bk_pg, db), 15,
                 "pg_dump to wait for the table lock", interval=0.05)
        pids = [p for p in find_pg_dump(db) if proc_ppid(p) == d.pid]
        assert len(pids) == 1, pids
        os.kill(d.pid, signal.SIGSTOP)
        stopped = True
        lock.release()
        # pg_dump ends while opsd cannot read anything (it used to wait
        # on the full pipe to opsd for as long as opsd was stopped)
        wait_for(lambda: not pid_alive(pids[0]), 15,
                 "pg_dump to finish while opsd is stopped")
        size = partial_size(bdir)
        assert size > 100_000, f"the partial file has {size} bytes"
    finally:
        lock.release()
        if stopped:
            os.kill(d.pid, signal.SIGCONT)
    d.wait_idle("stopped")
    items = d.items("stopped")
    assert len(items) == 1, [e["msg"] for e in d.events("backup.failed")]
    f = bdir / f"{items[0]['id']}.dump"
    assert items[0]["bytes"] == f.stat().st_size == size
    assert sha256_file(f) == items[0]["sha256"]
    assert [p.name for p in (d.state_dir / "run").glob("*")] == []


def status_poller(d, samples, stop):
    """opsd.status every 50 ms: (lag_ms, round trip ms) into samples."""
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            loop = d.rpc("opsd.status", timeout=5)["loop"]
            samples.append((loop["lag_ms"], (time.monotonic() - t0) * 1e3))
        except (OSError, ValueError, AssertionError):
            pass
        stop.wait(0.05)


def test_loop_lag_stays_small_during_a_big_dump(bk_pg, bk_daemons, tmp_path,
                                                big_db, cleanup_dirs):
    d, bdir = start(bk_pg, bk_daemons, tmp_path, "lag", big_db)
    cleanup_dirs.append(bdir)
    samples, stop = [], threading.Event()
    t = threading.Thread(target=status_poller, args=(d, samples, stop))
    t.start()
    try:
        t0 = time.monotonic()
        rc, out, err = d.run_backup("lag", timeout=120)
        took = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
    assert rc == 0, out + err
    items = d.items("lag")
    assert len(items) == 1 and items[0]["bytes"] > BIG_MB * 1_000_000 * 0.9
    assert len(samples) > 10, f"{len(samples)} status samples in {took:.1f}s"
    lag = max(s[0] for s in samples)
    rtt = max(s[1] for s in samples)
    limit = 300 if SANITIZED else 100
    assert lag < limit, (f"loop lag up to {lag:.1f} ms during a "
                         f"{items[0]['bytes']} byte dump ({took:.1f} s; "
                         f"slowest opsd.status {rtt:.1f} ms)")


def test_opsd_writes_no_dump_bytes(bk_pg, bk_daemons, tmp_path, big_db,
                                   cleanup_dirs):
    """strace of opsd's main thread (the loop) during a backup: what it
    write()s is replies, logs and small state files, not the dump, and it
    starts no writeback (sync_file_range) itself."""
    if subprocess.run(["which", "strace"], capture_output=True).returncode:
        pytest.skip("strace is not installed")
    d, bdir = start(bk_pg, bk_daemons, tmp_path, "trace", big_db)
    cleanup_dirs.append(bdir)
    trace = tmp_path / "strace.txt"
    st = subprocess.Popen(["strace", "-qq", "-o", str(trace), "-e",
                           "trace=write,writev,pwrite64,sync_file_range",
                           "-p", str(d.pid)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # strace is attached once it has printed the first syscall
        wait_for(lambda: d.rpc("opsd.status") and trace.exists()
                 and trace.stat().st_size > 0, 10, "strace to attach")
        rc, out, err = d.run_backup("trace", timeout=180)
    finally:
        st.send_signal(signal.SIGINT)
        st.wait(10)
    assert rc == 0, out + err
    items = d.items("trace")
    assert len(items) == 1 and items[0]["bytes"] > BIG_MB * 1_000_000 * 0.9
    text = trace.read_text()
    written = sum(int(m.group(1)) for m in
                  re.finditer(r"^(?:write|writev|pwrite64)\(.*= (\d+)$",
                              text, re.M))
    assert written < 2_000_000, (f"opsd's loop wrote {written} bytes during "
                                 f"a {items[0]['bytes']} byte backup")
    assert "sync_file_range(" not in text, "opsd's loop starts writeback"
