"""opsd-cli's human output reads the same everywhere: times with their
zone (local, or UTC with --utc), one size format, rounded reals, reasons
on one line without libpq's blank runs, and tables that look alike. A
stand-in server answers as the daemon would."""
import json
import re
import socket
import threading

import pytest

from conftest import base_env, cli_run

T1 = "2026-12-01T13:05:09Z"     # 14:05:09 in Berlin (CET, +0100)
T2 = "2026-07-01T22:30:00Z"     # 00:30:00 the next day in Berlin (CEST)
LIBPQ = ("connection to server at \"db\" (10.0.0.5), port 5432 failed: "
         "FATAL:  password authentication failed for user \"app\"\n")

JOBS = {"jobs": [
    {"name": "backup:app", "next_run": T1, "last_run": T2,
     "last_result": "failed", "last_message": LIBPQ},
    {"name": "prune:app", "next_run": T1, "last_run": None,
     "last_result": None, "last_message": None}]}
BACKUPS = {"backups": [
    {"name": "app", "database": "app", "schedule": "daily 02:00",
     "next_run": T1, "newest_good": T2, "stale": False, "running": None,
     "backups": [
         {"id": "app-20260701T223000Z", "time": T2, "bytes": 11264,
          "sha256": "ab" * 32, "verified": "ok", "uploaded": None},
         {"id": "app-20260630T223000Z", "time": T1, "bytes": 1258291,
          "sha256": "cd" * 32, "verified": None, "uploaded": None,
          "verify_note": "could not verify:  " + LIBPQ}]}]}
PROBES = {"probes": [
    {"name": "db", "kind": "postgres", "state": "down", "since": T1,
     "ok_streak": 0, "fail_streak": 3, "rise": 2, "fall": 3,
     "last": {"time": T1, "ok": False, "latency_ms": 0.19712345,
              "reason": LIBPQ}},
    {"name": "api", "kind": "http", "state": "unknown", "since": None,
     "ok_streak": 0, "fail_streak": 0, "rise": 2, "fall": 3,
     "last": None}]}
PROBE_RUN = {"probe": "db", "ok": False, "latency_ms": 12.3456789,
             "reason": LIBPQ, "state": "down"}
MANIFEST = {"id": "app-20260701T223000Z", "bytes": 11264,
            "seconds": 0.19712345, "ratio": 2.0, "count": 3}


class Srv:
    """Answers every request from ANSWERS on a Unix socket."""

    ANSWERS = {"opsd.jobs": JOBS, "backup.list": BACKUPS,
               "probe.list": PROBES, "probe.run": PROBE_RUN,
               "backup.show": MANIFEST, "opsd.health": {
                   "status": "critical", "problems": [
                       "probe db down: " + LIBPQ], "fine": []}}

    def __init__(self, path):
        self.path = path
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(str(path))
        self.srv.listen(8)
        self.srv.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            with c, c.makefile("rb") as f:
                for line in f:
                    req = json.loads(line)
                    reply = {"jsonrpc": "2.0", "id": req["id"]}
                    if req["method"] in self.ANSWERS:
                        reply["result"] = self.ANSWERS[req["method"]]
                    else:
                        reply["error"] = {"code": -32601,
                                          "message": "no such method"}
                    c.sendall(json.dumps(reply).encode() + b"\n")

    def close(self):
        self.stop.set()
        self.thread.join()
        self.srv.close()


@pytest.fixture
def srv(rundir):
    s = Srv(rundir / "polish.sock")
    yield s
    s.close()


def pcli(srv, *args, tz="Europe/Berlin"):
    rc, out, err = cli_run(*args, socket_path=srv.path,
                           env=base_env(TZ=tz))
    assert rc in (0, 1, 2), (rc, out, err)
    return rc, out, err


# --- 1. times with their zone ---------------------------------------------

def test_local_time_with_zone(srv):
    rc, out, err = pcli(srv, "jobs")
    assert rc == 0, err
    assert "2026-12-01 14:05:09 +0100" in out, out      # winter
    assert "2026-07-02 00:30:00 +0200" in out, out      # summer
    assert "13:05:09" not in out and "T13" not in out, out


def test_utc_option(srv):
    for args in (("--utc", "jobs"), ("-u", "jobs")):
        rc, out, err = pcli(srv, *args)
        assert rc == 0, err
        assert "2026-12-01 13:05:09 UTC" in out, out
        assert "2026-07-01 22:30:00 UTC" in out, out
        assert "+0100" not in out and "+0200" not in out, out


def test_local_zone_utc_says_utc(srv):
    rc, out, err = pcli(srv, "probe", "list", tz="UTC")
    assert rc == 0, err
    assert "2026-12-01 13:05:09 UTC" in out, out


def test_utc_is_documented():
    rc, out, err = cli_run("--help")
    assert rc == 0 and "--utc" in out, out
    from conftest import REPO
    from pathlib import Path
    man = Path(REPO, "docs", "opsd-cli.1.scd").read_text()
    assert "*--utc*" in man and "TZ" in man


def test_json_times_as_sent(srv):
    rc, out, err = pcli(srv, "--json", "jobs")
    assert rc == 0 and json.loads(out) == JOBS, out


# --- 2. one size format ---------------------------------------------------

def test_sizes(srv):
    rc, out, err = pcli(srv, "backup", "list")
    assert rc == 0, err
    assert "11.0 KiB" in out and "1.2 MiB" in out, out
    assert "11264" not in out and "1258291" not in out, out


def test_size_units_round_up(rundir):
    sizes = [0, 1023, 1024, 1048575, 5 * 2 ** 30]

    class Sized(Srv):
        ANSWERS = dict(Srv.ANSWERS, **{"backup.list": {"backups": [
            dict(BACKUPS["backups"][0], backups=[
                dict(BACKUPS["backups"][0]["backups"][0], bytes=n)
                for n in sizes])]}})
    s = Sized(rundir / "sized.sock")
    try:
        rc, out, err = pcli(s, "backup", "list")
    finally:
        s.close()
    assert rc == 0, err
    for want in ("0 B", "1023 B", "1.0 KiB", "1.0 MiB", "5.0 GiB"):
        assert f"  {want}  " in out, (want, out)
    assert "1024.0" not in out, out


# --- 3. rounded reals -----------------------------------------------------

def test_reals_rounded_for_people(srv):
    rc, out, err = pcli(srv, "probe", "list")
    assert "0.2 ms" in out and "0.1971" not in out, out
    rc, out, err = pcli(srv, "probe", "run", "db")
    assert rc == 1 and "12.3 ms" in out, out
    rc, out, err = pcli(srv, "backup", "show", "app-20260701T223000Z")
    assert rc == 0, err
    assert '"seconds": 0.197' in out and "0.1971" not in out, out
    assert '"bytes": 11264' in out and '"count": 3' in out, out


def test_reals_untouched_in_json(srv):
    rc, out, err = pcli(srv, "--json", "backup", "show", "x")
    assert rc == 0 and json.loads(out)["seconds"] == 0.19712345, out
    rc, out, err = pcli(srv, "--json", "probe", "run", "db")
    assert json.loads(out)["latency_ms"] == 12.3456789, out


# --- 4. libpq's blanks ----------------------------------------------------

@pytest.mark.parametrize("args", [("jobs",), ("probe", "list"),
                                  ("probe", "run", "db"),
                                  ("backup", "list"), ("summary",),
                                  ("status", "--check")])
def test_no_blank_runs_in_reasons(srv, args):
    rc, out, err = pcli(srv, *args)
    assert "FATAL: password authentication failed" in out, out
    assert "FATAL:  " not in out, out
    assert "could not verify: connection" in out or args[0] != "backup"
    for line in out.splitlines():
        assert line == line.rstrip(), repr(line)


# --- 5. tables alike ------------------------------------------------------

@pytest.mark.parametrize("args,titles", [
    (("jobs",), ["JOB", "NEXT RUN", "LAST RUN", "RESULT", "MESSAGE"]),
    (("probe", "list"), ["PROBE", "KIND", "STATE", "SINCE", "LATENCY",
                         "LAST RESULT"]),
    (("backup", "list"), ["ID", "TIME", "SIZE", "VERIFIED", "UPLOADED",
                          "SHA256"]),
])
def test_tables_alike(srv, args, titles):
    rc, out, err = pcli(srv, *args)
    assert rc == 0, err
    lines = [ln.strip() for ln in out.splitlines()]
    head = next(i for i, ln in enumerate(lines) if ln.startswith(titles[0]))
    table = [ln for ln in out.splitlines()[head:] if ln.strip()][:3]
    indent = len(table[0]) - len(table[0].lstrip())
    table = [ln[indent:] for ln in table]
    # titles in capitals, two blanks between columns
    assert re.split(r" {2,}", table[0]) == titles, table[0]
    assert all(t == t.upper() for t in titles)
    starts = [table[0].index(t) for t in titles]
    for row in table[1:]:
        cells = re.split(r" {2,}", row)
        # each cell where its title starts (the last column may hold
        # blanks of its own, a left-aligned one starts there)
        for s, title in zip(starts[:len(titles) - 1], titles):
            if title in ("SIZE", "LATENCY"):    # right-aligned
                continue
            assert row[s] != " " and (s == 0 or row[s - 2:s] == "  "), \
                (title, row)
        assert "" not in cells, row
    # times the same way in every table
    times = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", out)
    assert times, out


@pytest.mark.parametrize("args,none_cols", [
    (("jobs",), 3), (("probe", "list"), 3), (("backup", "list"), 1)])
def test_dash_for_none(srv, args, none_cols):
    rc, out, err = pcli(srv, *args)
    assert rc == 0, err
    rows = [ln for ln in out.splitlines() if re.search(r"\s-(\s|$)", ln)]
    assert rows, out
    assert max(len(re.findall(r"(?<=  )-(?=  |$)", r)) for r in rows) \
        >= none_cols, out
    assert "(not run yet)" not in out and "None" not in out, out
