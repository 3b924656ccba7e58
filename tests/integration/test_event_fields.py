"""
Every event carries the fields docs/logging.md gives it, and every event
of a backup, probe or alert route names its object, so that
`journalctl -t opsd OPSD_BACKUP=app` (OPSD_PROBE=, OPSD_ROUTE=) finds all
of them.

The tables of docs/logging.md are parsed into {event: fields}. One real
daemon (JSON lines on stderr) goes through a scenario that makes most
event types happen: start, reloads that work and fail, a denied call, log
level changes, probes going up and down, alerts sent, retried, failed and
dropped, backups that succeed, fail (and are retried), verify, fail to
verify and cannot verify, go stale, are pruned and restored, and a
kill -9 in the middle of a dump followed by a restart. A second, shorter
run writes to a private journald and is read back with journalctl, for at
least one event per subsystem. Every event type that opsd --list-events
or logging.md names is either seen or listed in NOT_TRIGGERED with why.
"""
import json
import os
import re
import shutil
import signal
import textwrap
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("backup_svc", "svc")

import journal_svc  # noqa: E402

from backup_svc import (CLI, OPSD, Daemon,  # noqa: E402
                        TableLock, backup_section, env, find_pg_dump,
                        pg_dump_waiting, pid_alive, proc_ppid, run, tmpdir,
                        wait_for)
from svc import SilentServer, Webhook  # noqa: E402

pytest_plugins = ["backup_svc"]

REPO = Path(__file__).resolve().parents[2]
LOGGING_MD = REPO / "docs" / "logging.md"
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup",
             "--clear-groups"]

# Event types the scenario does not make happen, and why. Each is either
# an error of the host (disk, descriptors, sockets) that a test cannot
# cause without fault injection of its own, or a feature with its own
# test module.
NOT_TRIGGERED = {
    # a host without libcurl or libpq: test_lazylib.py
    "daemon.library": "needs a host without the library (test_lazylib)",
    # a jobs.json with bad or future values: test_jobs.py, unit test-jobs
    "jobs.state": "needs a hostile jobs.json (test_jobs.py)",
    # an S3 server and failing uploads: test_backup_files.py
    "backup.upload_failed": "needs an off-site target (test_backup_files)",
    "backup.upload": "needs an off-site target (test_backup_files)",
    # a second host holding the advisory lock: test_backup_loop.py
    "backup.skipped": "needs lock = advisory held by another session",
    "backup.manifest": "needs a hostile manifest (test_backup.py)",
    "backup.verify": "a scratch database that cannot be dropped",
    "backup.reload": "a reload while a run is in progress",
    "alert.secret": "a group-readable credential file (test_alerts.py)",
    "alert.render": "a message that is not valid JSON text",
    "probe.secret": "a group-readable password file (test_probes.py)",
    "config.error": "the daemon exits at start (test_config.py)",
    "config.reload": "changing state_dir on reload",
    "control.listen": "a control socket that cannot be created",
    "control.accept": "accept() failing (out of descriptors)",
    "control.limit": "max_connections reached (test_control_limits.py)",
    "control.idle": "idle_timeout expiring (test_control_limits.py)",
    "jobs.overlap": "a run still going at its next scheduled time",
    "libevent": "libevent's own messages: none in a healthy run",
    "metrics.listen": "metrics_listen is off in this scenario",
    "op.load": "a malformed op file (test_backup_op.py)",
    "op.write": "an op file that cannot be written",
    "op.history": "an op history that cannot be written",
    "op.finish": "a finished op's file that cannot be removed",
    "state.dir": "a state directory that cannot be created",
    "state.read": "an unreadable opsd.json",
    "state.write": "an opsd.json that cannot be written",
    # secrets have their own modules: test_secret.py (random values,
    # files, env files, schedules, alerts), test_secret_pg.py (roles,
    # PostgreSQL failures), test_secret_op.py (a crash at every step)
    "secret.created": "a [secret] (test_secret.py)",
    "secret.rotated": "a rotation (test_secret.py)",
    "secret.rotation_failed": "a failing on_rotate (test_secret.py)",
    "secret.recovered": "a crash in a rotation (test_secret_op.py)",
    "secret.overdue": "a rotation overdue (test_secret.py)",
    "secret.roles_differ": "an alternating pair (test_secret_pg.py)",
    "secret.file_restored": "a deleted secret file (test_secret.py)",
    "secret.adopted": "a value in place at the first start (test_secret)",
    "secret.create": "a first value that cannot be made",
    "secret.on_rotate": "on_rotate failing while rolling back",
    "secret.publish": "a secret file that cannot be written",
    "secret.reload": "a reload during a rotation",
    "secret.roles": "roles that cannot be compared (database down)",
    "secret.rollback": "a rollback that cannot reach the database",
    "secret.schedule": "a scheduled rotation that cannot start",
    "secret.state": "a malformed or missing state file",
    # certificates: test_cert.py (nginx, renewals, a crash at every step)
    "cert.expiring": "a certificate close to its end (test_cert.py)",
    "cert.unreadable": "an unusable file or key (test_cert.py)",
    "cert.renewed": "a renewal (test_cert.py)",
    "cert.renewal_failed": "a failing renew command (test_cert.py)",
    "cert.served_differs": "a forgotten reload (test_cert.py)",
    "cert.served_unchecked": "an endpoint where nothing listens (test_cert.py)",
    # recovery: test_recover.py (real backends, restart scripts)
    "probe.restart": "a probe with on_down = restart (test_recover.py)",
    "probe.flapping": "a backend that dies after every start "
                      "(test_recover.py)",
    "probe.held": "a dependency down, or maintenance (test_recover.py)",
    "maintenance.started": "opsd-cli maintenance start (test_recover.py)",
    "maintenance.ended": "maintenance stop or expiry (test_recover.py)",
    # the audit: test_audit.py (two real PostgreSQL servers)
    "audit.finished": "an audit run (test_audit.py)",
    "audit.new_findings": "a scheduled audit with new findings "
                          "(test_audit.py)",
    "audit.resolved": "findings fixed between scheduled audits "
                      "(test_audit.py)",
    "cert.overdue": "a renewal overdue (test_cert.py)",
    "cert.recovered": "a crash in a renewal (test_cert.py)",
    "cert.state": "a state file that cannot be read or written",
    "cert.schedule": "a due renewal that cannot start",
    "cert.reload": "a reload during a renewal",
    # nginx and two slots: test_deploy.py, test_deploy_op.py
    "deploy.started": "needs nginx and slots (test_deploy.py)",
    "deploy.step": "needs nginx and slots (test_deploy.py)",
    "deploy.succeeded": "needs nginx and slots (test_deploy.py)",
    "deploy.failed": "needs nginx and slots (test_deploy.py)",
    "deploy.rolled_back": "needs nginx and slots (test_deploy.py)",
    "deploy.recovered": "a cutover killed halfway (test_deploy_op.py)",
    "deploy.retired": "a rollback window that ends (test_deploy.py)",
    "deploy.command": "needs nginx and slots (test_deploy.py)",
    "deploy.health": "needs nginx and slots (test_deploy.py)",
    "deploy.state": "an unwritable or hostile deploy state file",
    "deploy.journal": "an op file that cannot be written",
    "deploy.stop": "a stop command that fails after a cutover",
    "deploy.render": "a rendered include that cannot be removed",
    "deploy.rollback": "a way back that cannot go on",
    "deploy.retire": "a stop that fails at the end of a window",
    "deploy.reload": "a reload while a cutover is under way",
}

# Documented fields that are there only in some records of an event
# (the tables say so in words: "when ...", "unless ...").
CONDITIONAL = {
    "alert.failed": {"attempts", "alert"},  # "when the request could be made"
    "op.finished": {"error"},               # "unless ok"
}

# The objects: every record of these subsystems names its object.
OBJECT_FIELDS = {
    "backup.": ("backup", "database"),
    "probe.": ("probe",),
    "alert.": ("route",),
    "deploy.": ("deploy",),
}


# --- the documentation ------------------------------------------------------


def _ticks(text):
    return re.findall(r"`([^`]+)`", text)


def _strip_parens(text):
    prev = None
    while prev != text:
        prev = text
        text = re.sub(r"\([^()]*\)", "", text)
    return text


def parse_logging_md(path=LOGGING_MD):
    """({key event: fields}, {other event: fields}, {key event: id})."""
    key, other, ids = {}, {}, {}
    section = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section == "Key events" and len(cells) == 5:
            name = _ticks(cells[0])[0]
            ids[name] = _ticks(cells[1])[0]
            fields = cells[3]
            key[name] = set(_ticks(_strip_parens(fields)))
        elif section == "Other records" and len(cells) == 3:
            names = _ticks(cells[0])
            when = cells[2]
            fields = set()
            m = re.search(r"\bFields? (.*?)(?:\.|$)", when)
            if m:
                fields |= set(_ticks(_strip_parens(m.group(1))))
            m = re.search(r"The fields of `([a-z_.]+)`(.*?)(?:\.|$)", when)
            if m:
                fields |= other.get(m.group(1), set())
                fields |= set(_ticks(m.group(2)))
            for n in names:
                other[n] = other.get(n, set()) | fields
    return key, other, ids


def test_logging_md_parses():
    key, other, ids = parse_logging_md()
    assert len(key) >= 20, key
    assert key["rpc.audit"] == {"method", "uid", "gid", "pid", "comm"}
    assert key["alert.dropped"] >= {"route", "status", "waited_ms"}
    assert "firing" not in key["alert.dropped"]
    assert other["alert.retry"] >= {"route", "attempt", "error"}
    assert other["backup.restore"] == {"backup", "database", "backup_id",
                                       "into"}
    for i in ids.values():
        assert re.fullmatch(r"[0-9a-f]{32}", i), i


def list_events():
    rc, out, err = run([OPSD, "--list-events"])
    assert rc == 0, err
    return dict(line.split() for line in out.splitlines() if line.strip())


# --- the scenario -----------------------------------------------------------


def route(name, url, **keys):
    s = f"[alert {name}]\ntype = webhook\nurl = {url}\n"
    for k, v in keys.items():
        s += f"{k} = {v}\n"
    return s + "\n"


def exec_probe(name, command, routes, interval="200ms"):
    s = (f"[probe {name}]\nkind = exec\ncommand = {command}\n"
         f"interval = {interval}\nrise = 1\nfall = 1\n")
    for r in routes:
        s += f"alert = {r}\n"
    return s + "\n"


def next_second():
    t = time.time()
    time.sleep(1.02 - (t % 1))


class Scenario:
    def __init__(self, d, events, hooks):
        self.d = d
        self.events = events
        self.hooks = hooks

    def named(self, name):
        return [e for e in self.events if e.get("event") == name]


def write_conf(d, body):
    d.write(body)
    # others may call (rpc.denied needs a caller that is not root)
    d.conf_path.write_text(d.conf_path.read_text().replace(
        "socket_mode = 0600", "socket_mode = 0666"))


@pytest.fixture(scope="module")
def scenario(bk_pg_session, tmp_path_factory):
    pg = bk_pg_session
    if not pg.started:
        pg.start()
    work = tmp_path_factory.mktemp("evf")
    rundir = tmpdir("opsd-evf.")
    ok, bad = Webhook(), Webhook()
    bad.mode = "fail"
    ok.up()
    bad.up()
    silent = SilentServer()
    flag = work / "api.up"
    flag.touch()
    db = pg.new_db(rows=200)
    badpw = work / "bad.pass"
    badpw.write_text("not-the-password\n")
    os.chmod(badpw, 0o600)
    body = route("ok", ok.url)
    body += route("bad", bad.url, retries=1, retry_delay="50ms",
                  timeout="2s")
    # four deliveries at a time, each hanging 1 s: from the ninth on,
    # messages wait longer than the route gives one and are dropped
    body += route("hang", f"http://127.0.0.1:{silent.port}/hook",
                  timeout="1s", retries=0)
    # a route that repeats: staleness is checked every second for it
    body += route("rep", ok.url, repeat="2s")
    body += exec_probe("api", f"test -e {flag}", ["ok", "bad"])
    # probes that go down together when hflag goes: more than two
    # rounds of deliveries, so the last ones wait too long
    hflag = work / "h.up"
    hflag.touch()
    for i in range(24):
        body += exec_probe(f"h{i}", f"test -e {hflag}", ["hang"])
    body += pg.conf_sections(db)
    body += pg.conf_sections(db, dbsection="flaky", admin=False,
                             password_file=badpw)
    body += backup_section("app", work / "app", keep_last=1, keep_daily=0,
                           keep_weekly=0, keep_monthly=0, alert="ok",
                           check="SELECT count(*) FROM users",
                           expect="> 0")
    body += backup_section("vbad", work / "vbad", alert="ok",
                           check="SELECT count(*) FROM users",
                           expect="> 100000")
    body += backup_section("flaky", work / "flaky", database="flaky",
                           verify="never", persistent="yes", retry="1s")
    body += backup_section("old", work / "old", verify="never",
                           max_age="2s", alert="rep")
    d = Daemon(work, rundir, "evf")
    write_conf(d, body)
    # a persistent job whose time passed: it runs (and fails) at start
    long_ago = int(time.time()) - 3 * 86400
    d.state_dir.mkdir(mode=0o700)
    (d.state_dir / "jobs.json").write_text(json.dumps({
        "backup flaky": {"last_run": long_ago, "last_slot": long_ago,
                         "last_ok": 1, "last_result": "long ago"}}))
    try:
        d.start()
        d.wait_event("probe.state", pred=lambda e: e.get("probe") == "api"
                     and e.get("state") == "up")
        d.wait_event("probe.state", pred=lambda e: e.get("probe") == "h23"
                     and e.get("state") == "up")
        hflag.unlink()
        # log level: probe.result is a debug record
        assert d.cli("log-level", "debug")[0] == 0
        d.wait_event("probe.result")
        assert d.cli("log-level", "info")[0] == 0
        # a call refused, a reload, a reload that fails
        rc, out, err = run(AS_NOBODY + [CLI, "-s", d.socket, "reload"])
        assert rc != 0, out + err
        assert d.cli("reload")[0] == 0
        d.proc.send_signal(signal.SIGHUP)
        d.wait_event("opsd.reload")
        d.wait_event("opsd.reloaded", pred=lambda e: True)
        good = d.conf_path.read_text()
        d.conf_path.write_text(good + "[probe broken]\nkind = nosuch\n")
        assert d.cli("reload")[0] != 0
        d.conf_path.write_text(good)
        # backups: two runs (the second prunes the first), a failed
        # verification, a restore, a verification that cannot run
        rc, out, err = d.run_backup("app")
        assert rc == 0, out + err
        next_second()
        rc, out, err = d.run_backup("app")
        assert rc == 0, out + err
        rc, out, err = d.run_backup("vbad")
        assert rc != 0, out + err
        bid = d.items("app")[0]["id"]
        target = "evf_" + bid.split("-")[-1].lower()
        rc, out, err = d.cli("backup", "restore", bid, "--into", target,
                             "--create", timeout=120)
        assert rc == 0, out + err
        pg.drop_db(target)
        pg.stop()
        try:
            rc, out, err = d.cli("backup", "verify", bid)
            assert rc != 0 and "could not verify" in err, out + err
        finally:
            pg.start()
        # a probe goes down: sent through ok, retried and failed on bad
        flag.unlink()
        d.wait_event("alert.failed", pred=lambda e: e.get("route") == "bad",
                     timeout=15)
        d.wait_event("alert.dropped", timeout=15)
        d.wait_event("alert.failed", pred=lambda e: e.get("route") ==
                     "hang", timeout=15)
        d.wait_event("backup.stale", timeout=10)
        d.wait_event("backup.retry", pred=lambda e: "message_id" not in e,
                     timeout=15)
        # kill -9 in the middle of a dump, then a new start recovers
        next_second()
        with TableLock(pg, db):
            run_id = d.rpc("backup.run", {"name": "app"})["run"]
            wait_for(lambda: pg_dump_waiting(pg, db), 15, "pg_dump to wait",
                     interval=0.05, detail=lambda: d.log()[-3000:])
            dump = [p for p in find_pg_dump(db) if proc_ppid(p) == d.pid]
            d.kill9()
        for p in dump:
            wait_for(lambda: not pid_alive(p), 10, "the orphaned pg_dump")
        d.start()
        d.wait_event("op.finished", pred=lambda e: e.get("recovered") ==
                     "true", since_start=True)
        d.wait_event("backup.interrupted", pred=lambda e:
                     e.get("backup_id") == run_id, since_start=True)
        d.stop()
        events = d.events()
        yield Scenario(d, events, {"ok": ok, "bad": bad})
    finally:
        try:
            d.stop()
        finally:
            shutil.rmtree(rundir, ignore_errors=True)
            ok.down()
            bad.down()
            silent.close()
            line = d.sanitizer_report()
            assert line is None, f"sanitizer report: {line}"


def _missing(e, fields):
    return sorted(f for f in fields if f not in e)


def test_emitted_events_carry_their_documented_fields(scenario):
    key, other, ids = parse_logging_md()
    bad = []
    for e in scenario.events:
        name = e.get("event")
        if name in key and "message_id" in e:
            assert e["message_id"] == ids[name], e
            want = key[name] - CONDITIONAL.get(name, set())
        elif name in other:
            want = other[name]
        else:
            continue
        miss = _missing(e, want)
        if miss:
            bad.append((name, miss, e))
    # the conditional ones, where their condition holds
    for e in scenario.named("op.finished"):
        if e.get("outcome") != "ok" and "error" not in e:
            bad.append(("op.finished", ["error"], e))
    for e in scenario.named("alert.failed"):
        if "attempts" in e and "alert" not in e:
            bad.append(("alert.failed", ["alert"], e))
    assert not bad, "events without their documented fields:\n" + \
        "\n".join(f"{n}: missing {m}: {e}" for n, m, e in bad[:20])


def test_every_object_event_names_its_object(scenario):
    bad = []
    for e in scenario.events:
        name = e.get("event", "")
        for prefix, fields in OBJECT_FIELDS.items():
            if name.startswith(prefix) and _missing(e, fields):
                bad.append((name, _missing(e, fields), e))
    assert not bad, "\n".join(f"{n}: no {m}: {e}" for n, m, e in bad[:20])
    # and the values are the objects of the scenario
    assert {e["backup"] for e in scenario.events
            if e["event"].startswith("backup.")} >= {"app", "vbad", "flaky",
                                                      "old"}
    assert {e["probe"] for e in scenario.named("probe.state")} >= {"api",
                                                                  "h0"}
    assert {e["route"] for e in scenario.events
            if e["event"].startswith("alert.")} >= {"ok", "bad", "hang"}


def test_a_backups_events_are_found_by_its_name(scenario):
    app = [e["event"] for e in scenario.events if e.get("backup") == "app"]
    for want in ("backup.start", "backup.succeeded", "backup.verified",
                 "backup.prune", "backup.restore", "backup.restored",
                 "backup.verify_unavailable", "backup.interrupted"):
        assert want in app, (want, sorted(set(app)))
    flaky = {e["event"] for e in scenario.events if e.get("backup") ==
             "flaky"}
    assert {"backup.failed", "backup.retry"} <= flaky, flaky
    # its job's records name the job
    assert [e.get("job") for e in scenario.named("jobs.catchup")] == \
        ["backup flaky"], scenario.named("jobs.catchup")


def test_every_event_type_is_seen_or_explained(scenario):
    key, other, _ = parse_logging_md()
    listed = list_events()
    seen = {e.get("event") for e in scenario.events}
    every = set(listed) | set(key) | set(other)
    undocumented = sorted(set(listed) - set(key))
    assert not undocumented, f"--list-events types not in the key table " \
        f"of logging.md: {undocumented}"
    missing = sorted(n for n in every if n not in seen and
                     n not in NOT_TRIGGERED)
    assert not missing, f"neither emitted nor in NOT_TRIGGERED: {missing}"
    stale = sorted(n for n in NOT_TRIGGERED if n in seen)
    assert not stale, f"in NOT_TRIGGERED but emitted: {stale}"
    unknown = sorted(n for n in NOT_TRIGGERED if n not in every)
    assert not unknown, f"NOT_TRIGGERED names no event type: {unknown}"
    undoc_seen = sorted(n for n in seen if n not in every)
    assert not undoc_seen, f"emitted but not in logging.md: {undoc_seen}"
    print(f"\nevent types: {len(every)} documented or listed, "
          f"{len(seen & every)} emitted, {len(NOT_TRIGGERED)} not "
          f"triggered")


# --- the same through a real journald ---------------------------------------

SCRIPT = journal_svc.script(textwrap.dedent("""\
    OPSD=$2 CLI=$3 CONF=$4 SOCK=$5
    "$OPSD" -c "$CONF" --log-target=journal 2>"$W/opsd.stderr" &
    OPID=$!
    for i in $(seq 500); do
        "$CLI" -s "$SOCK" status >/dev/null 2>&1 && break
        sleep 0.02
    done
    "$CLI" -s "$SOCK" log-level debug >>"$W/cli.out" 2>>"$W/cli.err"
    step log-level $?
    "$CLI" -s "$SOCK" backup run app --follow >>"$W/cli.out" 2>>"$W/cli.err"
    step backup $?
    for i in $(seq 250); do
        [ -e "$W/hook.got" ] && break
        sleep 0.02
    done
    sleep 0.3
    kill -TERM $OPID
    wait $OPID
    step opsd-exit $?
    OPID=
    journalctl --sync
    journalctl -o json --no-pager SYSLOG_IDENTIFIER=opsd >"$W/journal.json"
    step journalctl $?
    journalctl -o json --no-pager -t opsd OPSD_BACKUP=app >"$W/backup.json"
    journalctl -o json --no-pager -t opsd OPSD_PROBE=api >"$W/probe.json"
    journalctl -o json --no-pager -t opsd OPSD_ROUTE=ok >"$W/route.json"
    """))


def test_journal_records_carry_the_fields(bk_pg, tmp_path):
    journal_svc.require_tools()
    pg = bk_pg
    db = pg.new_db(rows=100)
    hook = Webhook()
    got = tmp_path / "hook.got"
    hook.up()
    rundir = tmpdir("opsd-evj.")
    d = Daemon(tmp_path, rundir, "evj")
    write_conf(d, route("ok", hook.url) +
               exec_probe("api", "false", ["ok"]) + pg.conf_sections(db) +
               backup_section("app", tmp_path / "app", alert="ok",
                              check="SELECT count(*) FROM users",
                              expect="> 0"))
    script = tmp_path / "run.sh"
    script.write_text(SCRIPT)
    p = journal_svc.start(script, tmp_path,
                          [OPSD, CLI, d.conf_path, d.socket], env())
    try:
        # the probe's alert reaches the webhook: the script may stop opsd
        wait_for(lambda: hook.received(), 20, "the probe's alert")
        got.touch()
        rc, out = journal_svc.finish(p, 60)
    except AssertionError:
        journal_svc.kill(p)
        raise
    finally:
        hook.down()
        shutil.rmtree(rundir, ignore_errors=True)
    steps = journal_svc.steps(tmp_path)
    log = journal_svc.log(tmp_path, rc, out)
    assert rc == 0 and steps.get("backup") == "0" and \
        steps.get("opsd-exit") == "0", log
    entries = journal_svc.json_lines(tmp_path / "journal.json")
    assert entries, log

    key, other, ids = parse_logging_md()
    bad = []
    by_sub = {}
    for e in entries:
        name = e.get("OPSD_EVENT", "")
        by_sub.setdefault(name.split(".")[0], set()).add(name)
        if name in key and "MESSAGE_ID" in e:
            assert e["MESSAGE_ID"] == ids[name], e
            want = key[name] - CONDITIONAL.get(name, set())
        elif name in other:
            want = other[name]
        else:
            want = set()
        for prefix, fields in OBJECT_FIELDS.items():
            if name.startswith(prefix):
                want = want | set(fields)
        miss = sorted(f for f in want if "OPSD_" + f.upper() not in e)
        if miss:
            bad.append((name, miss))
    assert not bad, bad
    for sub in ("opsd", "rpc", "probe", "alert", "backup", "op"):
        assert by_sub.get(sub), f"no {sub}.* record in the journal: " \
            f"{sorted(by_sub)}"
    # the promise: one object's records by its field
    def events_in(name):
        return {e["OPSD_EVENT"]
                for e in journal_svc.json_lines(tmp_path / name)}
    backup = events_in("backup.json")
    assert {"backup.start", "backup.succeeded", "backup.verified"} <= \
        backup, backup
    probe = events_in("probe.json")
    assert {"probe.state", "probe.result"} <= probe, probe
    rt = events_in("route.json")
    assert "alert.sent" in rt, rt
    assert not any(m in (tmp_path / "opsd.stderr").read_text()
                   for m in ("AddressSanitizer", "runtime error:",
                             "LeakSanitizer")), log


def test_restart_does_not_warn_about_its_own_jobs_json(scenario):
    assert scenario.named("jobs.state") == [], scenario.named("jobs.state")
