"""Health probes against real targets: nginx (http, https, tcp, tls),
PostgreSQL 15, shell commands, small Python servers. Every probe is checked
through opsd-cli (probe list / run / history, --json) and opsd's JSON log
on stderr."""
import calendar
import json
import os
import subprocess
import threading
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import (SANITIZED, SANITIZER_MARKERS, check_config,  # noqa: E402
                 closed_port, wait_for)

pytest_plugins = ["svc"]


def http_probe(name, url, **keys):
    keys.setdefault("interval", "60s")
    lines = [f"[probe {name}]", "kind = http", f"url = {url}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def probe(name, kind, **keys):
    lines = [f"[probe {name}]", f"kind = {kind}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def snapshots(d, name, until, timeout=8.0):
    """Polls probe.list for name until until(snapshot) is true; returns
    every distinct (runs_ok, runs_failed, state) seen, in order. One
    probe.list answer is one consistent view of the probe."""
    seen = []

    def step():
        p = d.probe(name)
        s = (p["runs_ok"], p["runs_failed"], p["state"])
        if not seen or seen[-1] != s:
            seen.append(s)
        return until(p)
    wait_for(step, timeout, f"probe {name}: {until.__doc__ or 'condition'}",
             interval=0.01, detail=lambda: seen)
    return seen


# --- http --------------------------------------------------------------------

def test_http_health_up(opsd_launcher, nginx_server):
    url = f"http://127.0.0.1:{nginx_server.http_port}/health"
    d = opsd_launcher(http_probe("web", url, interval="200ms", rise=1,
                                 expect_status=200, expect_body="ok",
                                 expect_header="X-Ready: yes"))
    p = d.wait_state("web", "up")
    assert p["kind"] == "http"
    assert p["last"]["ok"] is True, p
    rc, r = d.run_probe("web")
    assert rc == 0, f"probe run of a passing probe exited {rc}: {r}"
    assert r["ok"] is True and r["http_status"] == 200, r
    assert r["state"] == "up", r
    assert r["latency_ms"] >= 0


@pytest.mark.parametrize("case", [
    "status", "body", "header_missing", "header_value", "redirect",
    "connect", "dns", "timeout"])
def test_http_failure_reasons(case, opsd_launcher, nginx_server,
                              silent_server):
    base = f"http://127.0.0.1:{nginx_server.http_port}"
    url, keys, want = {
        "status": (base + "/down", {}, "unexpected status 503"),
        "body": (base + "/health", {"expect_body": "healthy"},
                 "body does not contain 'healthy'"),
        "header_missing": (base + "/health",
                           {"expect_header": "X-Version"},
                           "response header 'X-Version' missing"),
        "header_value": (base + "/health", {"expect_header": "X-Ready: no"},
                         "header X-Ready is 'yes', expected 'no'"),
        "redirect": (base + "/redirect", {}, "unexpected status 301"),
        "connect": (f"http://127.0.0.1:{closed_port()}/", {},
                    "connect failed"),
        "dns": ("http://nonexistent.invalid/", {}, "DNS"),
        "timeout": (f"http://127.0.0.1:{silent_server.port}/",
                    {"timeout": "300ms"}, "timeout"),
    }[case]
    d = opsd_launcher(http_probe("p", url, **keys))
    t0 = time.monotonic()
    rc, r = d.run_probe("p")
    took = time.monotonic() - t0
    assert rc == 1, f"probe run of a failing probe exited {rc}: {r}"
    assert r["ok"] is False, r
    assert want in r["reason"], f"reason {r['reason']!r} lacks {want!r}"
    if case == "dns":
        assert r["reason"].startswith("DNS"), r["reason"]
    if case == "timeout":
        assert took < 3 * (3 if SANITIZED else 1), \
            f"a 300ms timeout took {took:.1f}s"
    if case == "redirect":
        assert r["http_status"] == 301, r


def test_http_follow_redirects(opsd_launcher, nginx_server):
    url = f"http://127.0.0.1:{nginx_server.http_port}/redirect"
    d = opsd_launcher(http_probe("r", url, follow_redirects="yes",
                                 expect_header="X-Ready: yes"))
    rc, r = d.run_probe("r")
    assert rc == 0, r
    assert r["http_status"] == 200, r


def test_https_with_ca_file(opsd_launcher, nginx_server, tls_certs):
    url = f"https://127.0.0.1:{nginx_server.https_port}/health"
    d = opsd_launcher(http_probe("s", url, ca_file=tls_certs.ca,
                                 interval="200ms", rise=1))
    # a probe that has been running for a while, as in production: the
    # operator's `probe run` comes after scheduled runs
    wait_for(lambda: d.probe("s")["runs_ok"] >= 2, 5, "two scheduled runs")
    rc, r = d.run_probe("s")
    assert rc == 0, r
    assert "cert" in r, \
        f"probe run of an https probe has no 'cert' (its connection was " \
        f"reused from an earlier run, so curl reported no certificate): {r}"
    want = tls_certs.not_after(tls_certs.server_crt)
    got = calendar.timegm(time.strptime(r["cert"]["not_after"],
                                        "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(got - want) <= 1, (r["cert"], want)
    assert 364 < r["cert"]["days_left"] <= 365.01, r["cert"]
    assert r["cert"]["verified"] is True, r["cert"]


def test_https_first_run_reports_cert(opsd_launcher, nginx_server,
                                      tls_certs):
    url = f"https://127.0.0.1:{nginx_server.https_port}/health"
    d = opsd_launcher(http_probe("s", url, ca_file=tls_certs.ca))
    rc, r = d.run_probe("s")
    assert rc == 0, r
    assert "cert" in r and r["cert"]["not_after"], r
    assert "localhost" in r["cert"]["subject"], r["cert"]
    assert "opsd test CA" in r["cert"]["issuer"], r["cert"]


def test_https_without_ca_file(opsd_launcher, nginx_server):
    url = f"https://127.0.0.1:{nginx_server.https_port}/health"
    d = opsd_launcher(http_probe("s", url))
    rc, r = d.run_probe("s")
    assert rc == 1, r
    assert r["reason"].startswith("TLS error"), r["reason"]


# --- tcp ---------------------------------------------------------------------

def test_tcp_down_after_fall(opsd_launcher):
    d = opsd_launcher(probe("t", "tcp", address=f"127.0.0.1:{closed_port()}",
                            interval="200ms", rise=2, fall=3))

    def down(p):
        """state down"""
        return p["state"] == "down"
    seen = snapshots(d, "t", down)
    for ok, failed, state in seen:
        assert ok == 0, seen
        want = "down" if failed >= 3 else "unknown"
        assert state == want, f"{failed} failed runs with fall = 3 but " \
                              f"state {state}: {seen}"
    assert any(failed in (1, 2) for _, failed, _ in seen), \
        f"never saw the probe unknown after 1 or 2 failures: {seen}"
    p = d.probe("t")
    assert "Connection refused" in p["last"]["reason"], p["last"]
    assert p["state_changes"] == 1, p


def test_tcp_up_after_rise(opsd_launcher, nginx_server):
    d = opsd_launcher(probe("t", "tcp",
                            address=f"127.0.0.1:{nginx_server.http_port}",
                            interval="200ms", rise=2, fall=3))

    def up(p):
        """state up"""
        return p["state"] == "up"
    seen = snapshots(d, "t", up)
    for ok, failed, state in seen:
        assert failed == 0, seen
        assert state == ("up" if ok >= 2 else "unknown"), \
            f"{ok} ok runs with rise = 2 but state {state}: {seen}"
    assert any(ok == 1 for ok, _, _ in seen), \
        f"never saw the probe unknown after 1 ok run: {seen}"
    assert d.probe("t")["last"]["reason"] == "connected"


def test_tcp_send_expect(opsd_launcher, line_server):
    addr = f"127.0.0.1:{line_server.port}"
    d = opsd_launcher(probe("good", "tcp", address=addr, send="PING",
                            expect="+PONG PING", interval="60s") +
                      probe("bad", "tcp", address=addr, send="PING",
                            expect="+READY", interval="60s",
                            timeout="2s"))
    rc, r = d.run_probe("good")
    assert rc == 0, r
    assert b"PING" in line_server.lines, line_server.lines
    rc, r = d.run_probe("bad")
    assert rc == 1, r
    assert "+READY" in r["reason"] and "+PONG PING" in r["reason"], r


def test_tcp_send_without_expect(opsd_launcher, line_server):
    # send alone (e.g. a QUIT or a ping that needs no answer): the line
    # must reach the server before the probe closes the connection
    d = opsd_launcher(probe("fire", "tcp",
                            address=f"127.0.0.1:{line_server.port}",
                            send="HELLO-NO-EXPECT", interval="60s"))
    rc, r = d.run_probe("fire")
    assert rc == 0, r
    wait_for(lambda: b"HELLO-NO-EXPECT" in line_server.lines, 2,
             "the server to receive the probe's 'send' line (the probe "
             "closed the connection before writing it)")


# --- postgres ----------------------------------------------------------------

def pg_probe(pg, name="db", pwfile=None, **keys):
    keys.setdefault("interval", "60s")
    return probe(name, "postgres",
                 conninfo=f"host=127.0.0.1 port={pg.port} dbname=postgres "
                          f"user=probe",
                 password_file=pwfile or pg.password_file, **keys)


def process_tree(pid):
    """[(pid, args)] for pid and every descendant."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="],
                         capture_output=True, text=True).stdout
    procs = {}
    children = {}
    for line in out.splitlines():
        f = line.split(None, 2)
        if len(f) < 2:
            continue
        procs[int(f[0])] = f[2] if len(f) > 2 else ""
        children.setdefault(int(f[1]), []).append(int(f[0]))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append((p, procs.get(p, "")))
        todo += children.get(p, [])
    return tree


def test_postgres_up_and_version(opsd_launcher, pg_up):
    d = opsd_launcher(pg_probe(pg_up, interval="200ms", rise=1),
                      log_level="debug")
    d.wait_state("db", "up")
    rc, r = d.run_probe("db")
    assert rc == 0, r
    assert r["server_version"].startswith("15."), r
    assert r["server_version"] == pg_up.version().split()[0], r

    # the password is nowhere to be seen
    pw = pg_up.password
    for label, text in (
            ("opsd's stderr", d.log()),
            ("probe list --json", json.dumps(d.probes())),
            ("probe history --json", json.dumps(d.history("db"))),
            ("probe run --json", json.dumps(r)),
            ("/metrics", d.metrics())):
        assert pw not in text, f"the database password appears in {label}"
    tree = process_tree(d.pid)
    for pid, args in tree:
        assert pw not in args, f"the password is in the arguments of " \
                               f"pid {pid}: {args}"
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        assert pw.encode() not in environ, \
            f"the password is in the environment of pid {pid}"
    d.stop()
    assert pw not in d.log(), "the database password appears in opsd's log"


def test_postgres_wrong_password(opsd_launcher, pg_up):
    d = opsd_launcher(pg_probe(pg_up, pwfile=pg_up.bad_password_file))
    rc, r = d.run_probe("db")
    assert rc == 1, r
    assert "authentication" in r["reason"], r["reason"]
    assert pg_up.password not in d.log()


def test_postgres_down_and_up(opsd_launcher, pg_up):
    d = opsd_launcher(pg_probe(pg_up, interval="200ms", timeout="200ms",
                               rise=2, fall=2))
    d.wait_state("db", "up")
    f0 = d.probe("db")["runs_failed"]     # before any failure can happen
    pg_up.stop()

    def down(p):
        """state down"""
        return p["state"] == "down"
    seen = snapshots(d, "db", down)
    for ok, failed, state in seen:
        if failed - f0 < 2:
            assert state == "up", f"down after {failed - f0} failures " \
                                  f"with fall = 2: {seen}"
    p = d.probe("db")
    assert p["runs_failed"] - f0 >= 2
    assert "failed" in p["last"]["reason"], p
    ev = d.wait_event("probe.state", lambda e: e["state"] == "down")[0]
    assert ev["prev_state"] == "up" and ev["reason"], ev

    o0 = d.probe("db")["runs_ok"]         # no ok run while it is down
    pg_up.start()

    def up(p):
        """state up again"""
        return p["state"] == "up"
    seen = snapshots(d, "db", up, timeout=10)
    for ok, failed, state in seen:
        if ok - o0 < 2:
            assert state == "down", f"up after {ok - o0} ok runs with " \
                                    f"rise = 2: {seen}"
    assert d.probe("db")["state_changes"] == 3
    assert pg_up.password not in d.log()


# --- tls ---------------------------------------------------------------------

def test_tls_expiring_cert(opsd_launcher, nginx_server, tls_certs):
    d = opsd_launcher(probe("short", "tls",
                            address=f"127.0.0.1:{nginx_server.short_port}",
                            ca_file=tls_certs.ca, interval="60s"))
    rc, r = d.run_probe("short")
    assert rc == 1, r
    assert "expires in" in r["reason"], r["reason"]
    assert "warn_days 21" in r["reason"], r["reason"]
    c = r["cert"]
    assert 4 < c["days_left"] < 6, c
    assert c["verified"] is True, c
    assert "short.localhost" in c["subject"], c
    assert "opsd test CA" in c["issuer"], c


def test_tls_valid_cert(opsd_launcher, nginx_server, tls_certs):
    d = opsd_launcher(probe("long", "tls",
                            address=f"127.0.0.1:{nginx_server.https_port}",
                            ca_file=tls_certs.ca, interval="60s") +
                      probe("untrusted", "tls",
                            address=f"127.0.0.1:{nginx_server.https_port}",
                            interval="60s") +
                      probe("wrongname", "tls",
                            address=f"127.0.0.1:{nginx_server.https_port}",
                            servername="www.example.org",
                            ca_file=tls_certs.ca, interval="60s"))
    rc, r = d.run_probe("long")
    assert rc == 0, r
    c = r["cert"]
    assert c["verified"] is True and 364 < c["days_left"] <= 365.01, c
    assert "localhost" in c["subject"] and "opsd test CA" in c["issuer"], c
    rc, r = d.run_probe("untrusted")
    assert rc == 1 and "does not verify" in r["reason"], r
    assert r["cert"]["verified"] is False, r
    rc, r = d.run_probe("wrongname")
    assert rc == 1 and "does not verify" in r["reason"], r


def test_tls_connect_and_timeout_reasons(opsd_launcher, silent_server):
    d = opsd_launcher(probe("refused", "tls",
                            address=f"127.0.0.1:{closed_port()}",
                            interval="60s") +
                      probe("silent", "tls",
                            address=f"127.0.0.1:{silent_server.port}",
                            interval="60s", timeout="300ms") +
                      probe("nodns", "tls", address="nonexistent.invalid:443",
                            interval="60s"))
    rc, r = d.run_probe("refused")
    assert rc == 1, r
    assert "Connection refused" in r["reason"], \
        f"a refused connection should say so, like the tcp probe: " \
        f"{r['reason']!r}"
    rc, r = d.run_probe("silent")
    assert rc == 1 and "timeout" in r["reason"], r
    rc, r = d.run_probe("nodns")
    assert rc == 1 and r["reason"].startswith("DNS"), r


# --- exec --------------------------------------------------------------------

def test_exec_pass_and_fail(opsd_launcher):
    d = opsd_launcher(probe("yes", "exec", command="exit 0",
                            interval="60s") +
                      probe("no", "exec", command="echo why; exit 3",
                            interval="60s"))
    rc, r = d.run_probe("yes")
    assert rc == 0 and r["ok"] is True, r
    rc, r = d.run_probe("no")
    assert rc == 1 and r["ok"] is False, r
    assert "why" in r["reason"], r["reason"]
    assert "3" in r["reason"], r["reason"]


def pgrep(pattern):
    p = subprocess.run(["pgrep", "-f", pattern], capture_output=True,
                       text=True)
    return [int(x) for x in p.stdout.split()]


def test_exec_timeout_kills(opsd_launcher):
    marker = f"10.{os.getpid()}{int(time.time() * 1000) % 100000}"
    d = opsd_launcher(probe("slow", "exec", command=f"sleep {marker}",
                            interval="60s", timeout="500ms"))
    t0 = time.monotonic()
    rc, r = d.run_probe("slow")
    took = time.monotonic() - t0
    assert rc == 1, r
    assert "timeout" in r["reason"], r["reason"]
    assert took < 5, f"a 500ms timeout took {took:.1f}s"
    wait_for(lambda: not pgrep(f"sleep {marker}"), 3,
             f"no 'sleep {marker}' process left")


def test_exec_never_overlaps(opsd_launcher, tmp_path):
    log = tmp_path / "runs.log"
    lock = tmp_path / "runs.lock"
    cmd = (f"flock -n {lock} sh -c 'echo start >> {log}; sleep 0.3; "
           f"echo end >> {log}' || echo OVERLAP >> {log}")
    # a run takes 0.3s of a 0.5s slot; sanitizer builds get more room
    slot = "2s" if SANITIZED else "500ms"
    d = opsd_launcher(probe("busy", "exec", command=cmd, interval=slot,
                            timeout=slot))
    results = []

    def runner():
        results.append(d.run_probe("busy"))

    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        threads = [threading.Thread(target=runner) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(0.07)
    assert results and all(rc == 0 for rc, _ in results), results
    # one consistent reading: no run ended while the log was read
    def stable():
        before = d.probe("busy")
        text = log.read_text()
        after = d.probe("busy")
        if before["running"] or before["runs_ok"] != after["runs_ok"]:
            return None
        return after, text
    p, text = wait_for(stable, 5, "a moment between runs")
    lines = text.split()
    assert "OVERLAP" not in lines, f"two runs of one probe at once:\n{text}"
    assert lines[:2] == ["start", "end"], text
    for i, word in enumerate(lines):
        assert word == ("start" if i % 2 == 0 else "end"), \
            f"runs interleave at line {i + 1}:\n{text}"
    assert p["runs_ok"] == lines.count("end"), \
        f"runs_ok {p['runs_ok']} is not the number of runs:\n{text}"


def test_runs_share_the_slots_of_their_interval(opsd_launcher):
    """After its first run a probe runs on one of ten slots of its
    interval, on the slot's boundary: probes of one interval start
    together, in the wake-ups of at most ten slots, and spread over
    them. Each run prints when its command ran (date +%s%N), so the runs'
    times are read from their history: all fall at one offset of the
    200 ms slots of a 2 s interval, on more than one slot."""
    n, iv_ns, slot_ns = 12, 2_000_000_000, 200_000_000
    d = opsd_launcher("".join(
        probe(f"s{i}", "exec", command="date +%s%N", interval="2s",
              timeout="1s") for i in range(n)))
    # the first run at once, the grid from one to two intervals later
    wait_for(lambda: all(len(d.history(f"s{i}")) >= 3 for i in range(n)),
             20, "three runs of each probe")
    offsets, slots = [], set()
    for i in range(n):
        hist = d.history(f"s{i}")
        assert all(h["ok"] for h in hist), hist
        # newest first: the last is the first run, off the grid
        for h in hist[:-1]:
            t = int(h["reason"])
            offsets.append(t % slot_ns)
            slots.add(t % iv_ns // slot_ns)
    offsets.sort()
    # the smallest arc of the slot holding every offset: a run is late
    # by the fork and exec of its command and the runs before it
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    gaps.append(offsets[0] + slot_ns - offsets[-1])
    arc_ms = (slot_ns - max(gaps)) / 1e6
    assert arc_ms < (100 if SANITIZED else 60), \
        f"runs not on the slots' boundaries: offsets spread over " \
        f"{arc_ms:.1f} ms of 200: {[o // 1_000_000 for o in offsets]}"
    assert len(slots) > 1, f"every probe on one slot: {slots}"


# --- rise and fall, history, probe run ---------------------------------------

def simulate(oks, rise, fall):
    """States after each result of a run sequence, as opsd's rules say."""
    state, ok_streak, fail_streak, out = "unknown", 0, 0, []
    for ok in oks:
        if ok:
            ok_streak, fail_streak = ok_streak + 1, 0
            if state != "up" and ok_streak >= rise:
                state = "up"
        else:
            ok_streak, fail_streak = 0, fail_streak + 1
            if state != "down" and fail_streak >= fall:
                state = "down"
        out.append(state)
    return out


def planned_command(tmp_path, failing_runs):
    """An exec probe command whose run n prints 'run n' and fails when n
    is in failing_runs: the outcome of every run is known in advance and
    each result names its run."""
    counter = tmp_path / "runs"
    bad = " ".join(str(n) for n in failing_runs)
    return (f"n=$(( $(cat {counter} 2>/dev/null || echo 0) + 1 )); "
            f"echo $n > {counter}; echo run $n; "
            f"case ' {bad} ' in *\" $n \"*) exit 1;; esac")


def test_rise_fall_transitions(opsd_launcher, tmp_path):
    # rise 2, fall 3; runs 3-6 fail: up at run 2, down at run 5 (the
    # third failure in a row), up again at run 8 (the second success)
    failing = [3, 4, 5, 6]
    # 500 ms, not less: the timeout follows the interval, and under the
    # parallel suite a fork and exec of the shell took more than 200 ms
    d = opsd_launcher(probe("plan", "exec",
                            command=planned_command(tmp_path, failing),
                            interval="500ms", rise=2, fall=3))
    d.wait_event("probe.state", lambda e: e["probe"] == "plan", count=3,
                 timeout=15)
    wait_for(lambda: len(d.history("plan")) >= 9, 8, "nine runs")
    events = [(e["prev_state"], e["state"], e["reason"])
              for e in d.events("probe.state") if e["probe"] == "plan"]
    assert events[:3] == [("unknown", "up", "run 2"),
                          ("up", "down", "run 5 (exited with status 1)"),
                          ("down", "up", "run 8")], events
    assert len(events) == 3, events

    # the history, newest first, has every run and replays to the same
    # transitions
    hist = d.history("plan")
    runs = [int(h["reason"].split()[1]) for h in hist]
    assert runs == sorted(runs, reverse=True), \
        f"history is not newest first: {runs}"
    assert runs[-1] == 1 and runs == list(range(runs[0], 0, -1)), runs
    for h in hist:
        n = int(h["reason"].split()[1])
        assert h["ok"] is (n not in failing), h
    oks = [h["ok"] for h in reversed(hist)]
    states = simulate(oks, 2, 3)
    changes = [(a, b) for a, b in zip(["unknown"] + states, states)
               if a != b]
    assert changes == [(p, s) for p, s, _ in events], (oks, events)
    p = d.probe("plan")
    assert p["state"] == "up" and p["state_changes"] == 3, p


def test_probe_run_exit_codes_and_history(opsd_launcher, tmp_path):
    d = opsd_launcher(probe("clock", "exec", command="date +%s%N",
                            interval="24h") +
                      probe("bad", "exec", command="exit 1",
                            interval="60s"))
    # its own first run comes within a second of the start: after it, the
    # next is a day away, and every entry from here on is a probe run
    wait_for(lambda: d.history("clock"), 10, "the first run of clock")
    stamps = []
    for _ in range(4):
        rc, r = d.run_probe("clock")
        assert rc == 0, r
        stamps.append(int(r["reason"]))
    assert stamps == sorted(stamps)
    hist = [int(h["reason"]) for h in d.history("clock")]
    assert hist == sorted(hist, reverse=True), \
        f"history is not newest first: {hist}"
    assert hist[0] == stamps[-1] and set(stamps) <= set(hist), \
        (hist, stamps)
    # human form too
    rc, out, err = d.cli("probe", "history", "clock")
    assert rc == 0, err
    assert str(stamps[-1]) in out.splitlines()[2], out

    rc, out, err = d.cli("probe", "run", "clock")
    assert rc == 0 and "clock: ok" in out, (rc, out, err)
    rc, out, err = d.cli("probe", "run", "bad")
    assert rc == 1 and "FAILED" in out, (rc, out, err)
    rc, out, err = d.cli("--json", "probe", "run", "nosuch")
    assert rc == 1, (rc, out, err)
    assert json.loads(out)["code"] == -32002, out
    rc, out, err = d.cli("probe", "history", "nosuch")
    assert rc == 1, (rc, out, err)
    rc, out, err = d.cli("probe", "run")
    assert rc == 2, (rc, out, err)


def test_probe_list_shows_every_change(opsd_launcher, tmp_path):
    """probe.list keeps each probe's encoded text between calls and
    encodes it again when the probe changes: every answer shows the probe
    as it is now, while a run is under way, after each run and after a
    reload that gives it new knobs."""
    gate = tmp_path / "gate"    # each run waits for it, then takes it
    cmd = (f"while [ ! -e {gate} ]; do sleep 0.02; done; rm -f {gate}; " +
           planned_command(tmp_path, [2]))

    def body(**knobs):
        return probe("plan", "exec", command=cmd, interval="1h",
                     timeout="30s", **knobs)
    d = opsd_launcher(body(rise=1, fall=1))
    wait_for(lambda: d.probe("plan")["running"], 5, "the first run")
    gate.touch()
    p = wait_for(lambda: (lambda p: p if not p["running"] else None)(
        d.probe("plan")), 10, "the first run to end")
    assert (p["state"], p["runs_ok"], p["ok_streak"]) == ("up", 1, 1), p
    assert p["last"]["reason"] == "run 1", p

    result = {}
    t = threading.Thread(target=lambda: result.update(
        r=d.run_probe("plan")))
    t.start()
    wait_for(lambda: d.probe("plan")["running"], 10, "probe.run's run")
    gate.touch()
    t.join(20)
    assert result["r"][0] == 1, result
    p = d.probe("plan")
    assert not p["running"], p
    assert (p["state"], p["runs_ok"], p["runs_failed"], p["fail_streak"],
            p["state_changes"]) == ("down", 1, 1, 1, 2), p
    assert p["last"]["reason"].startswith("run 2"), p
    assert p["last"] == d.history("plan")[0], (p, d.history("plan"))

    d.write(body(rise=3, fall=5))
    rc, out, err = d.cli("reload")
    assert rc == 0, err
    p = d.probe("plan")
    assert (p["rise"], p["fall"]) == (3, 5), p


def test_state_change_event(opsd_launcher):
    d = opsd_launcher(probe("gone", "tcp",
                            address=f"127.0.0.1:{closed_port()}",
                            interval="200ms", fall=1))
    ev = d.wait_event("probe.state", lambda e: e.get("probe") == "gone")[0]
    for key in ("probe", "state", "prev_state", "reason", "latency_ms",
                "message_id", "msg", "level"):
        assert key in ev, f"probe.state event lacks {key!r}: {ev}"
    assert ev["state"] == "down" and ev["prev_state"] == "unknown", ev
    assert ev["kind"] == "tcp", ev
    assert "Connection refused" in ev["reason"], ev
    assert len(ev["message_id"]) == 32, ev
    float(ev["latency_ms"])
    assert ev["level"] == "warning", ev


# --- configuration errors ----------------------------------------------------

def _lines_of(text, needle):
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in config")


@pytest.mark.parametrize("case", [
    "bad_url", "port_range", "rise_zero", "password_file", "unknown_kind",
    "foreign_key", "unknown_route", "timeout_over_interval",
    "password_in_conninfo", "missing_required", "no_kind"])
def test_config_errors(case, tmp_path):
    body, needle, words = {
        "bad_url": (probe("p", "http", url="ftp://x"), "url = ftp",
                    "http"),
        "port_range": (probe("p", "tcp", address="127.0.0.1:70000"),
                       "address =", "65535"),
        "rise_zero": (probe("p", "tcp", address="127.0.0.1:1", rise=0),
                      "rise = 0", "rise"),
        "password_file": (probe("p", "postgres", conninfo="host=x",
                                password_file="/nonexistent/pw"),
                          "password_file", "/nonexistent/pw"),
        "unknown_kind": (probe("p", "smtp"), "kind = smtp", "kind"),
        "foreign_key": (probe("p", "tcp", address="127.0.0.1:1",
                              url="http://x/"), "url =", "url"),
        "unknown_route": (probe("p", "tcp", address="127.0.0.1:1",
                                alert="pager"), "alert = pager", "pager"),
        "timeout_over_interval": (probe("p", "tcp", address="127.0.0.1:1",
                                        interval="1s", timeout="2s"),
                                  "timeout = 2s", "timeout"),
        "password_in_conninfo": (probe("p", "postgres",
                                       conninfo="host=x password=s3cret"),
                                 "conninfo", "password_file"),
        "missing_required": (probe("p", "exec"), "[probe p]", "command"),
        "no_kind": ("[probe p]\naddress = 127.0.0.1:1\n\n", "[probe p]",
                    "kind"),
    }[case]
    text = "[opsd]\nmetrics_listen = off\n\n" + body
    rc, out, err, path = check_config(text, tmp_path)
    assert rc == 1, f"--check-config accepted it ({rc}): {out}{err}"
    line = _lines_of(text, needle)
    assert f"{path}:{line}:" in err, \
        f"error not reported at {path}:{line}:\n{err}"
    assert words in err, f"error does not mention {words!r}:\n{err}"


def test_config_valid_probes(tmp_path, tls_certs):
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    text = ("[opsd]\nmetrics_listen = off\n\n" +
            http_probe("h", "https://127.0.0.1:1/", ca_file=tls_certs.ca,
                       expect_status="200,204,301-308",
                       expect_header="X-Ready: yes") +
            probe("t", "tcp", address="[::1]:5432") +
            probe("g", "postgres", conninfo="host=x", password_file=pw) +
            probe("s", "tls", address="localhost:443", warn_days=30) +
            probe("e", "exec", command="true", interval="1s"))
    rc, out, err, path = check_config(text, tmp_path)
    assert rc == 0, f"valid probes rejected: {err}"


def test_cli_clean_under_sanitizers(opsd_launcher):
    """opsd-cli itself must not trip AddressSanitizer/UBSan (meaningful on
    a sanitizer build: the same $OPSD_BUILD holds a sanitized opsd-cli)."""
    d = opsd_launcher(probe("e", "exec", command="true", interval="60s"))
    for args in (["probe", "list"], ["--json", "probe", "list"],
                 ["probe", "run", "e"], ["--json", "probe", "history", "e"],
                 ["probe", "run", "nosuch"], ["status"]):
        rc, out, err = d.cli(*args)
        bad = [line for line in err.splitlines()
               if any(m in line for m in SANITIZER_MARKERS)]
        assert not bad, f"opsd-cli {' '.join(args)}: {bad[0]}\n{err}"
