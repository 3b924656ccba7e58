"""Automatic recovery with real child processes: a small HTTP backend the
suite starts, whose restart command is a script that starts it again;
the budget and its one flapping alert (through the suite's webhook
receiver), dependencies holding alerts and restarts, maintenance windows,
a restart command killed at its timeout, and the config's file:line
errors."""
import os
import signal
import socket
import time

import pytest

pytest.register_assert_rewrite("svc")
from svc import (check_config, free_port, metric_value,  # noqa: E402
                 parse_metrics, wait_for)

pytest_plugins = ["svc"]

BACKEND = r'''
import http.server, os, sys, threading, time
port, pidfile, life = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
    def log_message(self, *a):
        pass
http.server.HTTPServer.allow_reuse_address = True
srv = http.server.HTTPServer(("127.0.0.1", port), H)
with open(pidfile + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(pidfile + ".tmp", pidfile)
if life > 0:
    threading.Timer(life, lambda: os._exit(3)).start()
srv.serve_forever()
'''


class Backend:
    """A python HTTP server on a free port, started by start.sh (the
    probe's restart command too); life > 0 makes it die that long after
    every start."""

    def __init__(self, d, life=0.0):
        self.dir = d
        self.port = free_port()
        self.pidfile = d / "backend.pid"
        (d / "backend.py").write_text(BACKEND)
        self.script = d / "start.sh"
        self.starts = d / "starts"
        self.script.write_text(
            "#!/bin/sh\n"
            f"echo start >> {self.starts}\n"
            f"rm -f {self.pidfile}\n"
            # detached: its own session, no pipe of opsd's kept open
            f"setsid /usr/bin/python3 {d}/backend.py {self.port} "
            f"{self.pidfile} {life} </dev/null >/dev/null 2>&1 &\n"
            "i=0\n"
            f"while [ ! -s {self.pidfile} ] && [ $i -lt 100 ]; do "
            "sleep 0.05; i=$((i+1)); done\n"
            "echo backend started\n")
        self.script.chmod(0o755)

    def start(self):
        os.system(f"sh {self.script}")
        wait_for(self.listening, 5, "the backend to listen")

    def pid(self):
        try:
            return int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def kill(self):
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def nstarts(self):
        try:
            return len(self.starts.read_text().splitlines())
        except FileNotFoundError:
            return 0


@pytest.fixture
def backends(tmp_path):
    made = []

    def make(name="b", life=0.0):
        d = tmp_path / name
        d.mkdir()
        b = Backend(d, life)
        made.append(b)
        return b
    yield make
    for b in made:
        b.kill()


def route(url):
    return f"[alert hook]\ntype = webhook\nurl = {url}\n\n"


def http_probe(name, b, **keys):
    keys.setdefault("interval", "200ms")
    keys.setdefault("timeout", "150ms")
    keys.setdefault("rise", 1)
    keys.setdefault("fall", 1)
    lines = [f"[probe {name}]", "kind = http",
             f"url = http://127.0.0.1:{b.port}/"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def flag_probe(name, flag, **keys):
    keys.setdefault("interval", "200ms")
    keys.setdefault("rise", 1)
    keys.setdefault("fall", 1)
    lines = [f"[probe {name}]", "kind = exec", f"command = test -e {flag}"]
    lines += [f"{k} = {v}" for k, v in keys.items()]
    return "\n".join(lines) + "\n\n"


def firing(p):
    return (p["json"] or {}).get("status") == "firing"


def restarts(d, probe, result=None):
    return [e for e in d.events("probe.restart")
            if e.get("probe") == probe and
            (result is None or e.get("result") == result)]


# --- restart --------------------------------------------------------------

def test_killed_backend_is_restarted(opsd_launcher, backends, webhook_rx):
    b = backends()
    b.start()
    d = opsd_launcher(route(webhook_rx.url) + http_probe(
        "api", b, on_down="restart", restart=f"sh {b.script}",
        restart_grace="1s", restart_limit="3 in 1m", alert="hook"))
    d.wait_state("api", "up")
    old = b.pid()
    killed = time.monotonic()
    b.kill()
    # one interval to see it, the command, and the grace at most
    ev = d.wait_event("probe.restart", lambda e: e.get("result") == "ok",
                      timeout=0.2 + 1.0 + 3.0)[0]
    assert ev["service"] == "api" and ev["attempt"] == "1", ev
    d.wait_state("api", "up", timeout=3)
    took = time.monotonic() - killed
    assert took < 0.2 + 1.0 + 2.0, f"up again after {took:.2f}s"
    assert b.pid() not in (None, old) and b.listening()
    assert b.nstarts() == 2, b.starts.read_text()
    assert len(restarts(d, "api", "started")) == 1
    # recovered before anyone had to be told
    time.sleep(0.5)
    assert [p for p in webhook_rx.received() if firing(p)] == []
    m = parse_metrics(d.metrics())
    assert metric_value(m, "opsd_probe_restarts_total", probe="api",
                        result="ok") == 1.0
    assert metric_value(m, "opsd_probe_restarts_total", probe="api",
                        result="failed") == 0.0
    rec = d.probe("api")["recovery"]
    assert rec["restarts_total"]["ok"] == 1 and rec["on_down"] == "restart"
    ops = d.rpc("op.list", {"kind": "probe.restart"})["ops"]
    assert len(ops) == 1 and ops[0]["object"] == "api", ops


def test_dying_backend_stops_at_budget_with_one_flapping_alert(
        opsd_launcher, backends, webhook_rx):
    b = backends(life=0.4)
    d = opsd_launcher(route(webhook_rx.url) + http_probe(
        "api", b, on_down="restart", restart=f"sh {b.script}",
        restart_grace="300ms", restart_limit="3 in 1m",
        restart_backoff="100ms", alert="hook"))
    ev = d.wait_event("probe.flapping", timeout=15)[0]
    assert ev["state"] == "firing" and ev["restarts"] == "3", ev
    flap = webhook_rx.wait(firing, timeout=5)
    # the budget holds: no more restarts, no more alerts
    time.sleep(2.0)
    assert len(restarts(d, "api", "started")) == 3, restarts(d, "api")
    assert b.nstarts() == 3
    fired = [p for p in webhook_rx.received() if firing(p)]
    assert len(fired) == 1, [p["json"] for p in fired]
    assert fired[0]["json"]["event"] == "probe.flapping", flap
    assert fired[0]["json"]["name"] == "api"
    p = d.probe("api")
    assert p["recovery"]["status"] == "flapping", p
    assert p["note"].startswith("flapping"), p
    rc, out, err = d.cli("probe", "list")
    assert "flapping" in out, out


def test_budget_rearms_after_cooldown_and_resets_on_success(
        opsd_launcher, backends, webhook_rx, tmp_path):
    b = backends(life=0.4)
    d = opsd_launcher(route(webhook_rx.url) + http_probe(
        "api", b, on_down="restart", restart=f"sh {b.script}",
        restart_grace="300ms", restart_limit="2 in 3s",
        restart_cooldown="1500ms", restart_backoff="100ms", alert="hook"))
    d.wait_event("probe.flapping", timeout=10)
    n = b.nstarts()
    assert n == 2
    # after the cooldown it tries again: re-armed, still one alert
    wait_for(lambda: b.nstarts() > n, 6, "a restart after the cooldown")
    d.wait_event("probe.flapping", count=2, timeout=10)
    assert len([p for p in webhook_rx.received() if firing(p)]) == 1
    # a backend that stays up: the budget resets and the alert resolves
    b.script.write_text(b.script.read_text().replace(" 0.4 ", " 0 "))
    ev = d.wait_event("probe.flapping", lambda e: e["state"] ==
                      "resolved", timeout=15)[0]
    assert ev["probe"] == "api"
    webhook_rx.wait(lambda p: (p["json"] or {}).get("status") ==
                    "resolved", timeout=5)
    assert d.probe("api")["recovery"]["restarts"] == 0


def test_restart_command_that_hangs_is_killed(opsd_launcher, tmp_path):
    flag = tmp_path / "up"
    d = opsd_launcher(flag_probe(
        "hang", flag, on_down="restart", restart="exec sleep 31.7",
        restart_timeout="500ms", restart_grace="200ms",
        restart_limit="1 in 1m"))
    t0 = time.monotonic()
    ev = d.wait_event("probe.restart", lambda e: e.get("result") ==
                      "timeout", timeout=5)[0]
    assert time.monotonic() - t0 < 4
    assert int(ev["duration_ms"]) < 3000, ev

    def sleeping():
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if b"31.7" in f.read():
                            return True
                except OSError:
                    pass
        return False
    wait_for(lambda: not sleeping(), 3, "the hung command to be gone")
    m = parse_metrics(d.metrics())
    assert metric_value(m, "opsd_probe_restarts_total", probe="hang",
                        result="timeout") == 1.0


# --- dependencies ---------------------------------------------------------

def test_dependency_down_holds_alerts_and_restarts(opsd_launcher,
                                                   webhook_rx, tmp_path):
    dbf, apif = tmp_path / "db", tmp_path / "api"
    webf = tmp_path / "web"
    for f in (dbf, apif, webf):
        f.touch()
    marker = tmp_path / "restarted"
    d = opsd_launcher(
        route(webhook_rx.url) +
        flag_probe("db", dbf, alert="hook") +
        flag_probe("api", apif, alert="hook", fall=3, depends_on="db",
                   on_down="restart", restart=f"touch {marker}") +
        flag_probe("web", webf, alert="hook", fall=3, depends_on="api"))
    for n in ("db", "api", "web"):
        d.wait_state(n, "up")
    dbf.unlink()
    apif.unlink()
    webf.unlink()
    webhook_rx.wait(lambda p: firing(p) and p["json"]["name"] == "db")
    d.wait_state("api", "down")
    d.wait_state("web", "down")
    time.sleep(1.0)
    names = [p["json"]["name"] for p in webhook_rx.received() if firing(p)]
    assert names == ["db"], f"one root-cause alert, got {names}"
    assert not marker.exists(), "no restart while the dependency is down"
    assert restarts(d, "api") == []
    p = d.probe("api")
    assert p["note"] == "held: depends on db", p
    assert d.probe("web")["note"] == "held: depends on api"
    held = d.wait_event("probe.held", pred=lambda e: e["probe"] == "api")[0]
    assert "db" in held["why"], held
    rc, out, err = d.cli("probe", "show", "api")
    assert rc == 0 and "held: depends on db" in out, out
    assert d.cli_json("probe", "show", "api")["depends_on"] == ["db"]
    rc, out, err = d.cli("probe", "show", "nosuch")
    assert rc == 1 and "no probe named 'nosuch'" in err, out + err
    # the dependency back: api's restart happens; web stays held by api
    dbf.touch()
    wait_for(marker.exists, 5, "the restart once db is up")
    time.sleep(0.5)
    names = [p["json"]["name"] for p in webhook_rx.received() if firing(p)]
    assert names == ["db"], names
    # api back: web (no on_down) is still down, its held alert goes out
    apif.touch()
    webhook_rx.wait(lambda p: firing(p) and p["json"]["name"] == "web",
                    timeout=5)


# --- maintenance ----------------------------------------------------------

def test_maintenance_holds_alerts_then_they_come_back(opsd_launcher,
                                                      webhook_rx, tmp_path):
    flag = tmp_path / "web"
    flag.touch()
    d = opsd_launcher(route(webhook_rx.url) +
                      flag_probe("web", flag, alert="hook"))
    d.wait_state("web", "up")
    rc, out, err = d.cli("maintenance", "start", "web", "--for", "30m",
                         "--reason", "upgrade")
    assert rc == 0, out + err
    d.wait_event("maintenance.started")
    flag.unlink()
    d.wait_state("web", "down")
    time.sleep(0.8)
    assert [p for p in webhook_rx.received() if firing(p)] == []
    p = d.probe("web")
    assert p["note"].startswith("maintenance until "), p
    assert p["maintenance"]["reason"] == "upgrade", p
    rc, out, err = d.cli("probe", "list")
    assert "down, maintenance until" in out, out
    lst = d.cli_json("maintenance", "list")["windows"]
    assert [w["name"] for w in lst] == ["web"], lst

    # the window survives a restart of opsd
    d.stop()
    d.start()
    assert [w["name"] for w in
            d.rpc("maintenance.list")["windows"]] == ["web"]
    d.wait_state("web", "down")
    time.sleep(0.5)
    assert [p for p in webhook_rx.received() if firing(p)] == []

    rc, out, err = d.cli("maintenance", "stop", "web")
    assert rc == 0, out + err
    d.wait_event("maintenance.ended")
    webhook_rx.wait(lambda p: firing(p) and p["json"]["name"] == "web",
                    timeout=5)
    # and the next state change alerts as usual
    flag.touch()
    webhook_rx.wait(lambda p: (p["json"] or {}).get("status") ==
                    "resolved", timeout=5)


def test_maintenance_expires_on_time(opsd_launcher, webhook_rx, tmp_path):
    flag = tmp_path / "web"
    d = opsd_launcher(route(webhook_rx.url) +
                      flag_probe("web", flag, alert="hook"))
    t0 = time.monotonic()
    # 4 s: time for the probe to go down first on a loaded machine
    d.rpc("maintenance.start", {"all": True, "for": "4s"})
    d.wait_state("web", "down")
    assert [p for p in webhook_rx.received() if firing(p)] == []
    ev = d.wait_event("maintenance.ended", timeout=7)[0]
    assert ev["why"] == "its time is up", ev
    # an end is kept to the second: 4s from now is 4 to 5 s away
    took = time.monotonic() - t0
    assert 3.9 < took < 5.3, took
    webhook_rx.wait(lambda p: firing(p) and p["json"]["name"] == "web",
                    timeout=3)
    assert d.rpc("maintenance.list")["windows"] == []


def test_maintenance_bad_requests(opsd_launcher, tmp_path):
    d = opsd_launcher(flag_probe("web", tmp_path / "x"))
    r = d.rpc_raw("maintenance.start", {"name": "nosuch"})
    assert r["error"]["code"] == -32002, r
    r = d.rpc_raw("maintenance.start", {"name": "web", "all": True})
    assert r["error"]["code"] == -32602, r
    r = d.rpc_raw("maintenance.start", {"name": "web", "reason": "a\nb"})
    assert r["error"]["code"] == -32602, r
    rc, out, err = d.cli("maintenance", "start")
    assert rc == 2, out + err
    r = d.rpc_raw("maintenance.stop", {"name": "web"})
    assert r["error"]["code"] == -32002, r


# --- configuration --------------------------------------------------------

@pytest.mark.parametrize("body,line,words", [
    ("[probe a]\nkind = exec\ncommand = true\ndepends_on = nosuch\n", 4,
     "depends_on: no [probe nosuch] section"),
    ("[probe a]\nkind = exec\ncommand = true\ndepends_on = b\n\n"
     "[probe b]\nkind = exec\ncommand = true\ndepends_on = a\n", 4,
     "depends_on: a cycle: a -> b -> a"),
    ("[probe a]\nkind = exec\ncommand = true\ndepends_on = a\n", 4,
     "cannot depend on itself"),
    ("[probe a]\nkind = exec\ncommand = true\non_down = restart\n", 4,
     "on_down = restart needs 'restart'"),
    ("[probe a]\nkind = exec\ncommand = true\nrestart = true\n", 4,
     "'restart' needs on_down"),
    ("[probe a]\nkind = exec\ncommand = true\non_down = restart\n"
     "restart = true\nrestart_limit = 3 per 10m\n", 6,
     "restart_limit '3 per 10m'"),
    ("[probe a]\nkind = exec\ncommand = true\nservice = a/b\n", 4,
     "service 'a/b'"),
    ("[probe a]\nkind = exec\ncommand = true\non_down = sometimes\n", 4,
     "on_down"),
])
def test_bad_recovery_config(tmp_path, body, line, words):
    rc, out, err, path = check_config(body, tmp_path)
    assert rc != 0, err
    assert f"{path}:{line}: " in err and words in err, err


# --- deploys and the op lock ------------------------------------------------

@pytest.fixture
def stack(tmp_path):
    from deploy_svc import Stack, short_dir
    import shutil
    rundir = short_dir()
    s = Stack(tmp_path, rundir)
    yield s
    errors = s.cleanup()
    shutil.rmtree(rundir, ignore_errors=True)
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def test_deploy_takes_maintenance_for_its_cutover(stack, webhook_rx,
                                                  tmp_path):
    flag, marker = tmp_path / "flag", tmp_path / "restarted"
    flag.touch()
    stack.slots.behave("2.0", start_delay=30)
    stack.up(start_daemon=False, health_deadline="60s")
    d = stack.d
    d.write(stack.section(health_deadline="60s") + route(webhook_rx.url) +
            flag_probe("web", flag, alert="hook", service="api",
                       on_down="restart", restart=f"touch {marker}",
                       restart_grace="200ms"))
    d.start()
    wait_for(lambda: d.rpc("probe.list")["probes"][0]["state"] == "up", 5,
             "web up")
    rc, out, err = d.cli("deploy", "start", "api", "--version", "2.0")
    assert rc == 0, out + err
    w = wait_for(lambda: d.rpc("maintenance.list")["windows"], 5,
                 "the deploy's window")
    assert w[0]["name"] == "api" and w[0]["source"] == "deploy", w
    flag.unlink()
    wait_for(lambda: d.rpc("probe.list")["probes"][0]["state"] == "down",
             5, "web down")
    time.sleep(0.8)
    assert not marker.exists(), "no restart during the cutover"
    assert [p for p in webhook_rx.received() if firing(p)] == []
    p = d.rpc("probe.list")["probes"][0]
    assert p["note"].startswith("maintenance until"), p
    # the cutover ends (aborted here): the window with it, restarts resume
    rc, out, err = d.cli("deploy", "abort", "api")
    assert rc == 0, out + err
    wait_for(lambda: d.rpc("maintenance.list")["windows"] == [], 30,
             "the window to end with the cutover")
    wait_for(marker.exists, 5, "the restart after the cutover")


def test_restart_and_deploy_share_the_op_lock(stack, tmp_path):
    flag = tmp_path / "flag"
    stack.up(start_daemon=False)
    d = stack.d
    d.write(stack.section() + flag_probe(
        "web", flag, service="api", on_down="restart",
        restart="sleep 3", restart_timeout="10s"))
    d.start()
    wait_for(lambda: any(e.get("result") == "started" for e in
                         d.events("probe.restart")), 5, "the restart")
    rc, out, err = d.cli("deploy", "start", "api", "--version", "2.0")
    assert rc == 1, out + err
    assert "probe.restart on api is already in progress" in err, err


def test_on_down_exec_runs_once_per_time_down(opsd_launcher, tmp_path):
    flag, runs = tmp_path / "flag", tmp_path / "runs"
    d = opsd_launcher(flag_probe(
        "job", flag, on_down="exec", restart=f"echo ran >> {runs}",
        restart_grace="100ms", restart_limit="5 in 1m",
        restart_backoff="0"))
    d.wait_state("job", "down")
    wait_for(runs.exists, 3, "the command")
    time.sleep(1.0)
    assert runs.read_text().count("ran") == 1, "once while it stays down"
    flag.touch()
    d.wait_state("job", "up")
    flag.unlink()
    d.wait_state("job", "down")
    wait_for(lambda: runs.read_text().count("ran") == 2, 3,
             "once more for the second time down")
    assert d.probe("job")["recovery"]["on_down"] == "exec"


def test_state_file_windows_at_start(opsd_launcher, tmp_path):
    """A window of the file is honoured at start; one of a cutover that
    is not unfinished any more, or one whose time is up, is ended; a file
    that does not parse is moved aside."""
    import json
    d = opsd_launcher(flag_probe("web", tmp_path / "x"), start=False)
    d.state_dir.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    (d.state_dir / "maintenance.json").write_text(json.dumps({
        "version": 1, "windows": [
            {"name": "web", "source": "cli", "reason": "kept",
             "started": now, "until": now + 3600, "uid": 0},
            {"name": "api", "source": "deploy", "reason": "",
             "started": now, "until": now + 3600, "uid": -1},
            {"name": "old", "source": "cli", "reason": "",
             "started": now - 100, "until": now - 10, "uid": 0}]}))
    d.start()
    assert [w["name"] for w in d.rpc("maintenance.list")["windows"]] == \
        ["web"]
    whys = sorted(e["why"] for e in d.events("maintenance.ended"))
    assert whys == ["its cutover ended while opsd was stopped",
                    "its time was up while opsd was stopped"], whys
    d.stop()
    (d.state_dir / "maintenance.json").write_text("{not json")
    d.start()
    assert d.rpc("maintenance.list")["windows"] == []
    assert (d.state_dir / "maintenance.json.bad").exists()


def test_dependency_replaced_by_a_reload(opsd_launcher, tmp_path):
    """A reload that starts the dependency over (a new interval) leaves
    the dependent following the new one."""
    dbf, apif = tmp_path / "db", tmp_path / "api"
    body = (flag_probe("db", dbf) +
            flag_probe("api", apif, fall=3, depends_on="db"))
    d = opsd_launcher(body)
    wait_for(lambda: d.probe("api")["note"] == "held: depends on db", 5,
             "api held")
    d.write(body.replace("interval = 200ms", "interval = 150ms", 1))
    rc, out, err = d.cli("reload")
    assert rc == 0, out + err
    dbf.touch()
    wait_for(lambda: d.probe("db")["state"] == "up", 5, "db up")
    wait_for(lambda: d.probe("api")["note"] == "", 5, "api not held")
    dbf.unlink()
    wait_for(lambda: d.probe("api")["note"] == "held: depends on db", 5,
             "api held again")


def test_flapping_alert_resolved_when_the_probe_goes_away(
        opsd_launcher, backends, webhook_rx):
    b = backends()
    probe = http_probe("api", b, on_down="restart", restart="exit 1",
                       restart_grace="100ms", restart_limit="1 in 1m",
                       alert="hook")
    d = opsd_launcher(route(webhook_rx.url) + probe)
    webhook_rx.wait(firing, timeout=10)
    r = restarts(d, "api", "failed")
    assert len(r) == 1 and "status 1" in r[0]["detail"], r
    b.start()                   # up, but not for a whole window yet
    d.wait_state("api", "up")
    assert d.probe("api")["recovery"]["status"] == "flapping"
    d.write(route(webhook_rx.url))
    rc, out, err = d.cli("reload")
    assert rc == 0, out + err
    post = webhook_rx.wait(lambda p: (p["json"] or {}).get("status") ==
                           "resolved", timeout=5)[0]
    assert post["json"]["name"] == "api", post


@pytest.mark.parametrize("point", ["restart", "restart:after"])
def test_crash_during_a_restart_is_not_run_again(opsd_launcher, tmp_path,
                                                 monkeypatch, point):
    """kill at the probe.restart op's step (before the command, or after
    it ran): the next opsd abandons the op and runs nothing of it again;
    the probe decides anew."""
    flag, marker = tmp_path / "flag", tmp_path / "ran"
    flag.touch()
    d = opsd_launcher(flag_probe("api", flag, on_down="restart",
                                 restart=f"echo x >> {marker}",
                                 restart_grace="100ms"), start=False)
    monkeypatch.setenv("OPSD_FAULT", f"probe.restart:{point}")
    d.start()
    d.wait_state("api", "up")
    flag.unlink()
    d.proc.wait(timeout=10)
    assert d.proc.returncode == 77, d.log()[-2000:]
    ran = marker.read_text().count("x") if marker.exists() else 0
    assert ran == (0 if point == "restart" else 1)
    monkeypatch.delenv("OPSD_FAULT")
    flag.touch()
    d.stop()
    d.start()
    op = wait_for(lambda: [o for o in d.rpc("op.list", {
        "kind": "probe.restart"})["ops"] if o["state"] != "running"], 5,
        "the recovered op")[0]
    assert op["state"] == "abandoned" and op["object"] == "api", op
    d.wait_state("api", "up")
    time.sleep(0.3)
    assert (marker.read_text().count("x") if marker.exists() else 0) == ran
